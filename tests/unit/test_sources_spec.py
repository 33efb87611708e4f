"""parse_sources: the shapes it accepts, the JSON path of what it refuses, and the schema."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from jobserver.sources.spec import (
    SOURCES_SCHEMA,
    FieldSpec,
    MatchSpec,
    SortSpec,
    SourceError,
    parse_sources,
)

EXAMPLE = {
    "user": {
        "collection": "users",
        "match": {"name": "John"},
        "fields": ["name", "email", "contact:phone,address"],
        "single": True,
    }
}


def test_the_issue_example() -> None:
    spec = parse_sources(EXAMPLE)["user"]
    assert spec.collection == "users"
    assert spec.match == (MatchSpec("name", None, "John"),)
    assert spec.fields == (
        FieldSpec("name"),
        FieldSpec("email"),
        FieldSpec("contact", ("phone", "address")),
    )
    assert spec.single and spec.limit == 1


def test_arrays_sort_both_forms_and_default_limit() -> None:
    specs = parse_sources(
        {
            "a": {"collection": "s.users", "sort": ["-age", "name", "+id"]},
            "b": {"collection": "users", "sort": [{"field": "age", "order": "desc"}], "limit": 7},
        }
    )
    assert specs["a"].sort == (SortSpec("age", True), SortSpec("name"), SortSpec("id"))
    assert specs["a"].limit == 100 and not specs["a"].single
    assert specs["b"].sort == (SortSpec("age", True),) and specs["b"].limit == 7


def test_match_on_a_jsonb_key() -> None:
    spec = parse_sources({"u": {"collection": "users", "match": {"contact.city": "Oslo"}}})["u"]
    assert spec.match == (MatchSpec("contact", "city", "Oslo"),)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ([], "sources"),
        ({"1bad": {"collection": "users"}}, "sources.1bad"),
        ({"u": {"collection": ""}}, "sources.u.collection"),
        ({"u": {"collection": "a.b.c"}}, "sources.u.collection"),
        ({"u": {}}, "sources.u.collection"),
        ({"u": {"collection": "users", "colour": 1}}, "sources.u.colour"),
        ({"u": {"collection": "users", "fields": ["a", "b", 3]}}, "sources.u.fields[2]"),
        ({"u": {"collection": "users", "fields": ["a", "c:"]}}, "sources.u.fields[1]"),
        ({"u": {"collection": "users", "fields": ["a", "a:x"]}}, "sources.u.fields[1]"),
        ({"u": {"collection": "users", "match": {"a": [1]}}}, "sources.u.match.a"),
        ({"u": {"collection": "users", "match": {"a.": 1}}}, "sources.u.match.a."),
        ({"u": {"collection": "users", "sort": ["a", 5]}}, "sources.u.sort[1]"),
        (
            {"u": {"collection": "users", "sort": [{"field": "a", "order": "up"}]}},
            "sources.u.sort[0].order",
        ),
        ({"u": {"collection": "users", "limit": 0}}, "sources.u.limit"),
        ({"u": {"collection": "users", "limit": 1001}}, "sources.u.limit"),
        ({"u": {"collection": "users", "limit": True}}, "sources.u.limit"),
        ({"u": {"collection": "users", "single": True, "limit": 5}}, "sources.u.limit"),
        ({"u": {"collection": "users", "single": "yes"}}, "sources.u.single"),
        ({f"s{i}": {"collection": "t"} for i in range(11)}, "sources"),
    ],
)
def test_refusals_name_the_path(value: Any, path: str) -> None:
    with pytest.raises(SourceError) as e:
        parse_sources(value)
    assert e.value.path == path
    assert str(e.value).startswith(path + ": ")


def test_the_schema_agrees_with_the_parser() -> None:
    validator = jsonschema_rs.validator_for(SOURCES_SCHEMA)
    assert validator.is_valid(EXAMPLE)
    assert validator.is_valid({"a": {"collection": "users", "sort": ["-age"], "limit": 5}})
    for bad in (
        {"u": {}},
        {"u": {"collection": "users", "limit": 0}},
        {"u": {"collection": "users", "match": {"a": {}}}},
        {f"s{i}": {"collection": "t"} for i in range(11)},
        {"1bad": {"collection": "users"}},
    ):
        assert not validator.is_valid(bad)
        with pytest.raises(SourceError):
            parse_sources(bad)
