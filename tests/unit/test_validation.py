"""The schema adapter over jsonschema-rs: full Draft 2020-12, ECMA-262 regex, 64-bit integer
fields (integral floats stored as ints), our (path, message) contract, meta-schema checks."""

from __future__ import annotations

from typing import Any

import pytest

from jobserver.registry import Definition, DefinitionError, check_params_schema
from jobserver.validation import (
    INT_MAX,
    INT_MIN,
    SchemaError,
    compile_schema,
    compile_schema_cached,
    schema_problem,
)

QUEUE = {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,100}$"}


def test_patterns_are_ecma_262() -> None:
    check = compile_schema(QUEUE)
    assert check("default") is None
    # Python's `$` also matches before a trailing newline; ECMA-262's only at the end
    assert check("default\n") == ((), "must match ^[A-Za-z0-9._:-]{1,100}$")
    digits = compile_schema({"type": "string", "pattern": "^\\d+$"})
    assert digits("42") is None
    assert digits("\u0661\u0662") is not None  # Arabic-Indic digits: \d is ASCII in ECMA-262


@pytest.mark.parametrize("value", [1e308, -1e308, 1.5, 2**63, -(2**63) - 1, 1e19, True, "1"])
def test_integer_fields_refuse_fractions_huge_values_and_other_types(value: Any) -> None:
    check = compile_schema({"type": "object", "properties": {"n": {"type": "integer"}}})
    failure = check({"n": value})
    assert failure is not None and failure[0] == ("n",), failure


def test_huge_integer_message_names_the_range() -> None:
    check = compile_schema({"type": "integer"})
    assert check(1e308) == ((), f"must be an integer from {INT_MIN} to {INT_MAX}")
    assert check(INT_MAX) is None and check(INT_MIN) is None
    assert check(1.5) == ((), "must be an integer")


def test_a_tighter_bound_of_the_schema_is_kept() -> None:
    check = compile_schema({"type": "integer", "minimum": 1, "maximum": 100})
    assert check(101) == ((), "must be <= 100")
    assert check(0) == ((), "must be >= 1")
    nullable = compile_schema({"type": ["integer", "null"]})
    assert nullable(None) is None and nullable(1e308) is not None
    assert compile_schema({"type": ["integer", "number"]})(1e308) is None  # numbers may be big


def test_integral_floats_pass_and_become_ints_in_place() -> None:
    schema = {
        "$defs": {"n": {"type": "integer"}},
        "type": "object",
        "properties": {
            "ref": {"$ref": "#/$defs/n"},
            "list": {"type": "array", "items": {"type": "integer"}},
            "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "number"}]},
            "deep": {"type": "object", "additionalProperties": {"type": "integer"}},
            "both": {"allOf": [{"type": "integer"}, {"minimum": 0}]},
            "num": {"type": "number"},
        },
    }
    value: dict[str, Any] = {
        "ref": 2.0,
        "list": [1.0, 2, 3.0],
        "pair": [4.0, 5.0],
        "deep": {"a": 6.0},
        "both": 7.0,
        "num": 8.0,
    }
    assert compile_schema(schema)(value) is None
    # equal as numbers either way; what changes is the type
    assert value == {"ref": 2, "list": [1, 2, 3], "pair": [4, 5], "deep": {"a": 6}, "both": 7} | {
        "num": 8
    }
    assert [type(x) for x in value["list"]] == [int, int, int]
    assert type(value["ref"]) is int and type(value["deep"]["a"]) is int
    assert type(value["pair"][1]) is float and type(value["num"]) is float  # numbers untouched


def test_an_invalid_value_is_not_rewritten() -> None:
    value = {"a": 1.0, "b": "x"}
    check = compile_schema(
        {"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "type": "object"}
    )
    assert check(value) == (("b",), "must be an integer")
    assert type(value["a"]) is float


# (schema, value, path, message): today's messages, kept
MESSAGES: list[tuple[Any, Any, tuple[str | int, ...], str]] = [
    ({"type": "string"}, 1, (), "must be a string"),
    ({"type": ["string", "null"]}, 1, (), "must be a string or null"),
    ({"type": "object"}, [], (), "must be an object"),
    ({"required": ["a"]}, {}, ("a",), "is required"),
    ({"properties": {"a": {"required": ["b"]}}}, {"a": {}}, ("a", "b"), "is required"),
    ({"additionalProperties": False}, {"x": 1}, ("x",), "unknown field"),
    ({"unevaluatedProperties": False}, {"x": 1}, ("x",), "unknown field"),
    ({"minLength": 2}, "a", (), "must have at least 2 characters"),
    ({"maxLength": 1}, "ab", (), "must have at most 1 character"),
    ({"pattern": "^a"}, "b", (), "must match ^a"),
    ({"minimum": 3}, 2, (), "must be >= 3"),
    ({"maximum": 3}, 4, (), "must be <= 3"),
    ({"exclusiveMinimum": 0}, 0, (), "must be > 0"),
    ({"exclusiveMaximum": 10}, 10, (), "must be < 10"),
    ({"enum": ["low", "high", None]}, "mid", (), 'must be one of "low", "high", null'),
    ({"const": False}, True, (), "must be false"),
    ({"minItems": 1}, [], (), "must have at least 1 item"),
    ({"maxItems": 2}, [1, 2, 3], (), "must have at most 2 items"),
    ({"minProperties": 1}, {}, (), "must have at least 1 property"),
    ({"items": {"type": "boolean"}}, [True, 1], (1,), "must be a boolean"),
    (False, 1, (), "is not allowed"),
    ({"uniqueItems": True}, [1, 1], (), "must not contain duplicate items"),
    ({"multipleOf": 5}, 7, (), "must be a multiple of 5"),
]


@pytest.mark.parametrize(("schema", "value", "path", "message"), MESSAGES)
def test_failures_name_the_path_and_say_what_to_do(
    schema: Any, value: Any, path: tuple[str | int, ...], message: str
) -> None:
    assert compile_schema(schema)(value) == (path, message)


def test_messages_do_not_echo_the_value() -> None:
    secret = "s3cret-" * 1000
    failure = compile_schema({"anyOf": [{"type": "integer"}, {"maxLength": 3}]})(secret)
    assert failure is not None and "s3cret" not in failure[1], failure


def test_all_of_draft_2020_12_no_fallback() -> None:
    check = compile_schema(
        {
            "type": "object",
            "prefixItems": [{"type": "string"}],
            "properties": {
                "kind": {"enum": ["a", "b"]},
                "pair": {"prefixItems": [{"type": "string"}], "items": False},
            },
            "dependentRequired": {"kind": ["pair"]},
            "if": {"properties": {"kind": {"const": "a"}}},
            "then": {"properties": {"pair": {"minItems": 1}}},
            "unevaluatedProperties": False,
        }
    )
    assert check({"kind": "b", "pair": []}) is None
    assert check({"kind": "a", "pair": []}) == (("pair",), "must have at least 1 item")
    assert check({"kind": "b"}) == (("pair",), "is required")
    assert check({"pair": ["x", "y"]}) is not None  # items: false past the prefix
    assert check({"other": 1}) == (("other",), "unknown field")


def test_format_is_an_annotation() -> None:
    assert compile_schema({"type": "string", "format": "date-time"})("yesterday") is None


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"type": "no-such-type"}, 'at type: "no-such-type" is not a JSON Schema type'),
        ({"properties": {"n": {"type": "strin"}}}, "at properties.n.type:"),
        ({"minimum": "x"}, 'at minimum: "x" is not of type "number"'),
        ({"pattern": "[a-"}, "at pattern:"),
        ({"$ref": "#/$defs/missing"}, "/$defs/missing"),
        ({"$ref": "https://example.invalid/s.json"}, "Retrieval is disabled"),  # no network
    ],
)
def test_schemas_are_checked_against_the_meta_schema(schema: Any, says: str) -> None:
    problem = schema_problem(schema)
    assert problem is not None and says in problem, problem
    with pytest.raises(SchemaError):
        compile_schema(schema)


def test_registry_refuses_an_invalid_params_schema_with_the_reason() -> None:
    async def run(params: Any, ctx: Any) -> None:
        """Never runs."""

    bad = Definition(key="bad", version=1, run=run, params_schema={"type": "no-such-type"})
    with pytest.raises(DefinitionError, match=r"bad@1: invalid params_schema: at type: "):
        check_params_schema(bad)
    check_params_schema(Definition(key="ok", version=1, run=run, params_schema={"type": "object"}))


def test_cached_checkers_are_shared_and_a_broken_stored_schema_refuses_values() -> None:
    one = compile_schema_cached({"type": "object", "required": ["a"]})
    assert one is compile_schema_cached({"required": ["a"], "type": "object"})
    broken = compile_schema_cached({"type": "object", "properties": {"a": {"pattern": "[a-"}}})
    failure = broken({"a": "x"})
    assert failure is not None and "params schema is invalid" in failure[1]
    assert compile_schema_cached(None)(object()) is None
