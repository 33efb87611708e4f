"""Our schema adapter agrees with plain jsonschema-rs (valid/invalid and the failing path)
wherever our 64-bit integer bounds do not apply; and the JSON body parser refuses hostile input."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from jobserver.api.jsonio import JsonInputError, format_path, parse_json
from jobserver.validation import compile_schema

SCHEMAS: list[dict[str, Any]] = [
    {"type": "integer", "minimum": -3, "maximum": 3},
    {"type": ["integer", "null"]},
    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
    {"type": "string", "minLength": 2, "maxLength": 3, "pattern": "^a"},
    {"enum": [1, "x", None, True, {"a": [1]}]},
    {"const": False},
    {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 2},
    {
        "type": "object",
        "required": ["a"],
        "additionalProperties": False,
        "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}},
    },
    {"type": "object", "additionalProperties": {"type": "integer"}, "maxProperties": 2},
]
VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    1.0,
    2.5,
    -4,
    3,
    10,
    "a",
    "ab",
    "abc",
    "abcd",
    "ba",
    [],
    [True],
    [1],
    [True, False, True],
    {},
    {"a": {}},
    {"a": {"b": 1}},
    {"a": {"b": "x"}, "c": 1},
    {"x": 1, "y": 2},
    {"x": 1, "y": 2, "z": 3},
    {"x": "s"},
    {"a": [1]},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_agrees_with_jsonschema_rs(schema: dict[str, Any]) -> None:
    ours = compile_schema(schema)
    reference = jsonschema_rs.validator_for(schema)
    for value in VALUES:
        failure = ours(value)
        errors = list(reference.iter_errors(value))
        assert (failure is None) == (not errors), (schema, value, failure, errors)
        if failure is not None:
            paths = {tuple(e.instance_path) for e in errors}
            # one failure is reported; it must be one of the reference's (or, for a missing
            # required or unknown property, its parent's path plus the name)
            assert failure[0] in paths or failure[0][:-1] in paths, (schema, value, failure)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b'{"a": "\\u0000"}', 422),
        (b'{"\\u0000": 1}', 422),
        (b'["\\udc00"]', 422),
        (b"[" * 65 + b"]" * 65, 400),
        (b'{"a":' * 70 + b"1" + b"}" * 70, 400),
        (b"1e400", 422),
        (b"NaN", 422),
        (b"{", 400),
    ],
)
def test_parse_json_rejects_hostile_input(raw: bytes, status: int) -> None:
    with pytest.raises(JsonInputError) as e:
        parse_json(raw)
    assert e.value.status == status


def test_parse_json_accepts_depth_limit_and_escapes() -> None:
    assert parse_json(b"[" * 64 + b"]" * 64)
    assert parse_json(b'{"a": "\\u00e9\\ud83d\\ude00"}') == {"a": "é😀"}
    assert format_path(["jobs", 3, "params", "m"]) == "jobs[3].params.m"
