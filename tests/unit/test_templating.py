"""The template renderer: typing rule, paths, macros, errors, escaping and bounds. No database."""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid
from typing import Any

import orjson
import pytest

from jobserver.templating import (
    Limits,
    Macros,
    Placeholder,
    TemplateError,
    check_known,
    placeholders,
    render,
)

CTX: dict[str, Any] = {
    "user": {"name": "John", "email": "j@example.com", "tags": ["a", "b"]},
    "users": [{"email": "first@example.com"}, {"email": "second@example.com"}],
    "count": 3,
    "ratio": 3.5,
    "ok": True,
    "nothing": None,
    "params": {"id": 7},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{user}}", CTX["user"]),
        ("{{count}}", 3),
        ("{{ratio}}", 3.5),
        ("{{ok}}", True),
        ("{{nothing}}", None),
        ("{{ user.tags }}", ["a", "b"]),
    ],
)
def test_a_lone_placeholder_keeps_its_json_type(template: str, expected: Any) -> None:
    out = render({"v": template}, CTX)["v"]
    assert out == expected
    assert type(out) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("n={{count}}", "n=3"),
        ("{{ratio}}!", "3.5!"),
        ("is {{ok}}", "is true"),
        ("is {{nothing}}", "is null"),
        ("u: {{user.tags}}", 'u: ["a","b"]'),
        ("{{user.name}} <{{user.email}}>", "John <j@example.com>"),
        (" {{count}}", " 3"),
        ("{{count}}{{count}}", "33"),
    ],
)
def test_inside_text_a_value_is_stringified(template: str, expected: str) -> None:
    assert render(template, CTX) == expected


def test_an_object_inside_text_is_compact_json() -> None:
    assert render("x{{user}}", CTX) == 'x{"name":"John","email":"j@example.com","tags":["a","b"]}'


def test_nested_paths_and_list_indexes() -> None:
    value = {"to": "{{users.1.email}}", "list": ["{{user.tags.0}}", {"deep": "{{ users.0 }}"}]}
    assert render(value, CTX) == {
        "to": "second@example.com",
        "list": ["a", {"deep": {"email": "first@example.com"}}],
    }


def test_fast_path_returns_the_same_object() -> None:
    value = {"a": [1, "plain {text}", {"b": None}], "c": "}} {"}
    assert render(value, CTX) is value


def test_only_changed_containers_are_copied() -> None:
    untouched = {"x": [1, 2]}
    value = {"keep": untouched, "set": "{{count}}"}
    out = render(value, CTX)
    assert out == {"keep": {"x": [1, 2]}, "set": 3}
    assert out is not value and out["keep"] is untouched
    assert value["set"] == "{{count}}"  # the input is not modified


def test_keys_are_not_templated() -> None:
    assert render({"{{count}}": "{{count}}"}, CTX) == {"{{count}}": 3}


def _fixed(seed: int = 1) -> Macros:
    when = dt.datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=dt.UTC)
    return Macros(clock=lambda: when, rng=random.Random(seed))


def test_macro_formats() -> None:
    out = render(
        ["{{$timestamp}}", "{{$today}}", "{{$uuid}}", "{{$randomInt}}", "{{$randomFloat}}"],
        {},
        macros=_fixed(),
    )
    assert out[0] == "2026-12-02T01:02:03.456Z"
    assert out[1] == "2026-12-02"
    assert uuid.UUID(out[2]).version == 4 and str(uuid.UUID(out[2])) == out[2]
    assert type(out[3]) is int and 0 <= out[3] <= 999
    assert type(out[4]) is float and 0 <= out[4] < 1


def test_default_macros_read_the_utc_clock() -> None:
    before = dt.datetime.now(dt.UTC)
    stamp = render("{{$timestamp}}", {})
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert before - dt.timedelta(seconds=1) <= parsed <= dt.datetime.now(dt.UTC)
    assert render("{{$today}}", {}) in {before.date().isoformat(), dt.date.today().isoformat()}


def test_uuids_are_fresh_per_occurrence_and_per_render() -> None:
    first = render(["{{$uuid}}", "{{$uuid}}", "id {{$uuid}} {{$uuid}}"], {})
    assert first[0] != first[1]
    _, a, b = first[2].split()
    assert len({first[0], first[1], a, b}) == 4
    assert render("{{$uuid}}", {}) != render("{{$uuid}}", {})


def test_random_numbers_are_fresh_per_occurrence() -> None:
    floats = render(["{{$randomFloat}}"] * 20, {})
    assert len(set(floats)) > 1
    ints = render(["{{$randomInt}}"] * 50, {})
    assert len(set(ints)) > 1 and all(0 <= i <= 999 for i in ints)


def test_timestamp_and_today_hold_one_instant_per_render() -> None:
    ticks = iter(
        [dt.datetime(2026, 12, 2, 23, 59, 59, 999000, tzinfo=dt.UTC)]
        + [dt.datetime(2026, 12, 3, 0, 0, 1, tzinfo=dt.UTC)] * 10
    )
    macros = Macros(clock=lambda: next(ticks))
    out = render(["{{$timestamp}}", "{{$today}}", "at {{$timestamp}}"], {}, macros=macros)
    assert out == ["2026-12-02T23:59:59.999Z", "2026-12-02", "at 2026-12-02T23:59:59.999Z"]
    # the next render is the next run: it reads the clock again
    assert render("{{$today}}", {}, macros=macros) == "2026-12-03"


def test_unknown_macro_is_an_error() -> None:
    with pytest.raises(TemplateError, match=r"unknown macro \$now") as err:
        render({"a": "{{$now}}"}, {})
    assert err.value.placeholder == "{{$now}}" and err.value.location == "a"


def test_missing_path_names_the_placeholder_and_its_location() -> None:
    value = {"payload": {"items": [1, 2, {"name": "hi {{ user.phone }}"}]}}
    with pytest.raises(TemplateError) as err:
        render(value, CTX)
    assert err.value.placeholder == "{{ user.phone }}"
    assert err.value.location == "payload.items[2].name"
    assert "{{ user.phone }} at payload.items[2].name" in str(err.value)
    assert "user has no key 'phone'" in str(err.value)


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{{missing}}", "the context has no key 'missing'"),
        ("{{users.5.email}}", "users has 2 items, no index 5"),
        ("{{count.x}}", "count is not an object or a list"),
        ("{{users.first}}", "users has 2 items, no index first"),
    ],
)
def test_missing_paths(template: str, why: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(why)):
        render([template], CTX)


def test_a_missing_path_at_the_top_level() -> None:
    with pytest.raises(TemplateError, match="at the top level"):
        render("{{nope}}", CTX)


def test_no_attribute_access() -> None:
    for template in ("{{__class__}}", "{{user.__class__}}", "{{user.keys}}", "{{user.name.upper}}"):
        with pytest.raises(TemplateError, match="missing path"):
            render(template, CTX)


@pytest.mark.parametrize(
    "template",
    ["{{}}", "{{ a..b }}", "{{a b}}", "{{a.-1}}", "{{a[0]}}", "{{ user.name", "{{{count}}}"],
)
def test_bad_syntax_is_an_error_not_text(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, CTX)


def test_escaping() -> None:
    assert render("\\{{count}}", CTX) == "{{count}}"
    assert render("a \\{{ b {{count}}", CTX) == "a {{ b 3"
    assert render(["\\{{user}}"], CTX) == ["{{user}}"]
    assert render("{ lone } braces {count}", CTX) == "{ lone } braces {count}"


def test_output_size_bound() -> None:
    big = {"blob": "x" * 1000}
    value = ["{{blob}}"] * 10
    assert len(render(value, big, limits=Limits(max_output_bytes=11_000))) == 10
    with pytest.raises(TemplateError, match="over 5000 bytes"):
        render(value, big, limits=Limits(max_output_bytes=5000))
    with pytest.raises(TemplateError, match="over 5000 bytes"):
        render("-".join(["{{blob}}"] * 10), big, limits=Limits(max_output_bytes=5000))


def test_output_size_is_the_json_size_of_the_result() -> None:
    value = {"a": "{{v}}", "b": "x{{v}}"}
    out = render(value, {"v": 'q"q'})
    exact = len(orjson.dumps(out))
    assert render(value, {"v": 'q"q'}, limits=Limits(max_output_bytes=exact)) == out
    with pytest.raises(TemplateError):
        render(value, {"v": 'q"q'}, limits=Limits(max_output_bytes=exact - 1))


def test_a_repeated_huge_value_fails_at_the_default_bound() -> None:
    huge = {"big": {"k": "y" * 200_000}}
    with pytest.raises(TemplateError, match="over 1048576 bytes"):
        render(["{{big}}"] * 10_000, huge)
    with pytest.raises(TemplateError, match="over 1048576 bytes"):
        render(" ".join(["{{big}}"] * 10_000), huge)


def test_depth_bound() -> None:
    deep: Any = "leaf"
    for _ in range(5):
        deep = {"d": deep}
    assert render(["{{deep}}"], {"deep": deep}, limits=Limits(max_depth=6)) == [deep]
    with pytest.raises(TemplateError, match="nested deeper than 5"):
        render(["{{deep}}"], {"deep": deep}, limits=Limits(max_depth=5))
    with pytest.raises(TemplateError, match="nested deeper than 4"):
        render(deep, {}, limits=Limits(max_depth=4))
    assert render(deep, {}, limits=Limits(max_depth=5)) is deep


def test_placeholder_count_bound() -> None:
    value = ["{{count}}"] * 5 + ["\\{{ escapes do not count"] * 5
    assert render(value, CTX, limits=Limits(max_placeholders=5))[:5] == [3] * 5
    with pytest.raises(TemplateError, match="more than 4 placeholders"):
        render(value, CTX, limits=Limits(max_placeholders=4))
    with pytest.raises(TemplateError, match="more than 10000 placeholders"):
        render("{{count}}" * 10_001, CTX)


def test_placeholders_lists_expressions_and_locations() -> None:
    value = {
        "url": "https://x/{{ params.id }}",
        "body": {"items": [{"to": "{{sources.user.email}}"}, "\\{{not one}}", "{{$uuid}}"]},
        "{{key}}": "plain",
    }
    found = placeholders(value)
    assert found == [
        Placeholder("params.id", "url"),
        Placeholder("sources.user.email", "body.items[0].to"),
        Placeholder("$uuid", "body.items[2]"),
    ]
    assert [p.root for p in found] == ["params", "sources", "$uuid"]
    assert [p.is_macro for p in found] == [False, False, True]
    assert placeholders({"a": "no braces"}) == []
    with pytest.raises(TemplateError, match="unknown macro"):
        placeholders(["{{$nope}}"])


def test_check_known() -> None:
    value = {"id": "{{params.id}}", "to": "{{sources.user.email}}", "at": "{{$timestamp}}"}
    check_known(value, {"params": {"id": 1}}, {"params"})
    with pytest.raises(TemplateError) as err:
        check_known({"x": ["{{params.other}}"]}, {"params": {"id": 1}}, {"params"})
    assert err.value.placeholder == "{{params.other}}" and err.value.location == "x[0]"
    assert "params has no key 'other'" in str(err.value)
    with pytest.raises(TemplateError, match="the context has no key 'params'"):
        check_known(value, {}, {"params"})
    check_known(value, {}, set())
