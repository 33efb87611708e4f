"""The pure rules of `log.message` and the audit log: levels ("at least", `warning`, the
process log levels), the category rule, the bounds at submission and again once rendered, and
the literal LIKE pattern of a text search."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from jobserver.audit import (
    LEVELS,
    MESSAGE_MAX_CHARS,
    METADATA_MAX_BYTES,
    at_least,
    normalize_level,
    python_level,
)
from jobserver.db.audit_log import AuditFilter, _where, like_pattern
from jobserver.definitions.log_message import SCHEMA, check_params, entry
from jobserver.registry import PermanentError, registry
from jobserver.validation import compile_schema


@pytest.mark.parametrize(
    ("given", "stored", "python"),
    [
        ("debug", "debug", logging.DEBUG),
        ("info", "info", logging.INFO),
        ("warn", "warn", logging.WARNING),
        ("warning", "warn", logging.WARNING),
        ("error", "error", logging.ERROR),
    ],
)
def test_levels_map_to_stored_names_and_python_levels(given: str, stored: str, python: int) -> None:
    assert normalize_level(given) == stored
    assert python_level(given) == python


@pytest.mark.parametrize("bad", ["WARN", "fatal", "", None, 3, ["warn"]])
def test_unknown_levels_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="unknown level"):
        normalize_level(bad)


def test_at_least_is_the_level_and_everything_above() -> None:
    assert at_least("debug") == LEVELS
    assert at_least("info") == ("info", "warn", "error")
    assert at_least("warn") == at_least("warning") == ("warn", "error")
    assert at_least("error") == ("error",)


def test_the_definition_is_registered_as_shipped() -> None:
    d = registry.get("log.message", 1)
    assert d is not None
    assert not d.outbound
    assert d.templated == ("message", "metadata", "category")
    assert d.check_params is check_params


_schema = compile_schema(SCHEMA)


def _problems(params: dict[str, Any]) -> list[Any]:
    """What submission says: the schema's failure, else the code check's problems."""
    failure = _schema(params)
    return [failure] if failure is not None else check_params(params)


@pytest.mark.parametrize(
    "params",
    [
        {"message": "User login successful"},
        {
            "level": "warning",
            "message": "x" * MESSAGE_MAX_CHARS,
            "metadata": {"userId": 123, "ip": "192.168.1.100"},
            "category": "authentication",
        },
        {"message": "hi", "category": "billing.invoices:eu-1_x"},
        {"message": "hi {{params.metadata.who}}", "metadata": {"who": "{{job.id}}"}},
        {"message": "hi", "category": "{{params.metadata.kind}}", "metadata": {"kind": "a"}},
        {"message": "100% of {{$timestamp}}"},
    ],
)
def test_good_params_are_accepted(params: dict[str, Any]) -> None:
    assert _problems(params) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, ("message",)),  # required
        ({"message": ""}, ("message",)),
        ({"message": "x" * (MESSAGE_MAX_CHARS + 1)}, ("message",)),
        ({"message": "hi", "level": "fatal"}, ("level",)),
        ({"message": "hi", "metadata": []}, ("metadata",)),
        ({"message": "hi", "metadata": {str(i): i for i in range(101)}}, ("metadata",)),
        ({"message": "hi", "metadata": {"blob": "x" * METADATA_MAX_BYTES}}, ("metadata",)),
        ({"message": "hi", "category": "has space"}, ("category",)),
        ({"message": "hi", "category": "x" * 101}, ("category",)),
        ({"message": "hi", "category": "café"}, ("category",)),
        ({"message": "hi", "extra": 1}, ("extra",)),
        ({"message": "hi {{nope.x}}"}, ("message",)),
        ({"message": "hi {{params.missing}}"}, ("message",)),
        ({"message": "hi", "metadata": {"at": "{{$nope}}"}}, ("metadata", "at")),
        ({"message": "hi", "category": "{{params.x"}, ("category",)),
    ],
)
def test_bad_params_are_refused_naming_the_field(params: dict[str, Any], field: tuple[Any]) -> None:
    problems = _problems(params)
    assert problems, params
    assert tuple(problems[0][0]) == field, problems


def test_rendered_values_are_held_to_the_same_bounds() -> None:
    assert entry({"message": "hi"}) == ("info", "general", "hi", {})
    assert entry({"message": 3, "level": "warning", "category": "a.b"}) == ("warn", "a.b", "3", {})
    for rendered, code in [
        ({"message": "x" * (MESSAGE_MAX_CHARS + 1)}, "bad_message"),
        ({"message": ""}, "bad_message"),
        ({"message": "a\x00b"}, "bad_message"),
        ({"message": "hi", "category": "not a name"}, "bad_category"),
        ({"message": "hi", "metadata": {"blob": "x" * METADATA_MAX_BYTES}}, "bad_metadata"),
        ({"message": "hi", "level": "loud"}, "bad_level"),
    ]:
        with pytest.raises(PermanentError) as e:
            entry(rendered)
        assert e.value.code == code, rendered


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("login", "%login%"),
        ("100%", "%100\\%%"),
        ("a_b", "%a\\_b%"),
        ("back\\slash", "%back\\\\slash%"),
        ("%_\\", "%\\%\\_\\\\%"),
    ],
)
def test_text_search_is_literal(text: str, pattern: str) -> None:
    assert like_pattern(text) == pattern


def test_the_search_binds_every_value_and_writes_only_known_levels() -> None:
    args: list[Any] = []
    where = _where(AuditFilter(category="x'; DROP", levels=("warn", "error"), text="y"), args)
    assert where == "category = $1 AND level IN ('warn', 'error') AND message ILIKE $2 ESCAPE '\\'"
    assert args == ["x'; DROP", "%y%"]
    assert _where(AuditFilter(levels=LEVELS), []) == "true"  # debug and above: every row
    with pytest.raises(AssertionError):
        _where(AuditFilter(levels=("warn", "x') OR true --")), [])
