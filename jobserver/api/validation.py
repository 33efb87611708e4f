"""Fast JSON Schema checks for request bodies, queries and job params.

`compile_schema(schema)` turns a schema into a function `check(value) -> (path, message) | None`.
The common subset (type, properties, required, additionalProperties, items, min/max,
exclusive bounds, length, pattern, enum, const, plus annotations) compiles to plain Python
closures, several times faster than a generic validator: a batch of 1000 jobs is checked in a
few milliseconds. A schema using anything else falls back to `jsonschema` (Draft 2020-12), so the
result is the same; only speed differs. `format` is an annotation, as in jsonschema's default.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import jsonschema

from jobserver.api.jsonio import dumps

Path = tuple[str | int, ...]
Failure = tuple[Path, str]
Check = Callable[[Any], Failure | None]

_ANNOTATIONS = {
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
    "contentMediaType",
}
_SUPPORTED = _ANNOTATIONS | {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "enum",
    "const",
    "pattern",
    "minProperties",
    "maxProperties",
}

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


class Unsupported(Exception):
    """The schema uses a keyword the fast path does not implement."""


# Exact Python types json.loads produces for a JSON Schema type (bool is not an integer).
_EXACT = {"string": str, "object": dict, "array": list, "boolean": bool, "null": type(None)}


def _is_type(value: Any, name: str) -> bool:
    if name == "string":
        return isinstance(value, str)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, int | float)
    raise Unsupported(f"type {name}")


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _accept(v: Any) -> Failure | None:
    return None


_STRING_KEYS = _ANNOTATIONS | {"type", "minLength", "maxLength", "pattern"}
_NUMBER_KEYS = _ANNOTATIONS | {
    "type",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
}


def _fused_string(schema: dict[str, Any]) -> Check:
    """`{"type": "string", minLength?, maxLength?, pattern?}` as one function: same checks,
    order and messages as the general path, a fraction of its calls (the common field)."""
    lo = schema.get("minLength")
    hi = schema.get("maxLength")
    pat = schema.get("pattern")
    rx = re.compile(pat) if pat is not None else None

    def check_string(v: Any) -> Failure | None:
        if type(v) is not str:
            return (), "must be a string"
        if lo is not None and len(v) < lo:
            return (), f"must have at least {lo} characters"
        if hi is not None and len(v) > hi:
            return (), f"must have at most {hi} characters"
        if rx is not None and rx.search(v) is None:
            return (), f"must match {pat}"
        return None

    return check_string


def _fused_number(schema: dict[str, Any]) -> Check:
    """`{"type": "integer"|"number", bounds?}` as one function (see `_fused_string`)."""
    integer = schema["type"] == "integer"
    want = "must be an integer" if integer else "must be a number"
    bounds = [(schema[key], fails, word) for key, fails, word in _BOUNDS if key in schema]

    def check_number(v: Any) -> Failure | None:
        t = type(v)
        if t is not int and not (t is float and (not integer or v.is_integer())):
            return (), want
        for bound, fails, word in bounds:
            if fails(v, bound):
                return (), f"must be {word} {bound}"
        return None

    return check_number


def _compile(schema: Any) -> Check:
    if schema is True or schema == {}:
        return _accept
    if isinstance(schema, dict):
        keys = schema.keys()
        kind = schema.get("type")
        if kind == "string" and keys <= _STRING_KEYS:
            return _fused_string(schema)
        if kind in ("integer", "number") and keys <= _NUMBER_KEYS:
            return _fused_number(schema)
    if schema is False:
        return lambda v: ((), "is not allowed")
    if not isinstance(schema, dict):
        raise Unsupported("schema is not an object")
    unknown = set(schema) - _SUPPORTED
    if unknown:
        raise Unsupported(", ".join(sorted(unknown)))
    checks: list[Check] = []

    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        for t in types:
            _is_type(None, t)  # raises Unsupported for unknown names
        want = " or ".join(_TYPE_NAMES.get(t, t) for t in types)

        exact = {_EXACT[t] for t in types if t in _EXACT}
        slow = [t for t in types if t not in _EXACT]

        def check_type(v: Any) -> Failure | None:
            if type(v) in exact:  # the common case: one exact-type test, no loop
                return None
            for t in slow:
                if _is_type(v, t):
                    return None
            return (), f"must be {want}"

        checks.append(check_type)

    if "enum" in schema:
        options = list(schema["enum"])
        shown = ", ".join(dumps(o) for o in options[:20])

        def check_enum(v: Any) -> Failure | None:
            if any(_json_equal(v, o) for o in options):
                return None
            return (), f"must be one of {shown}"

        checks.append(check_enum)

    if "const" in schema:
        const = schema["const"]

        def check_const(v: Any) -> Failure | None:
            return None if _json_equal(v, const) else ((), f"must be {dumps(const)}")

        checks.append(check_const)

    checks.extend(_numeric(schema))
    checks.extend(_string(schema))
    checks.extend(_array(schema))
    checks.extend(_object(schema))

    if not checks:
        return _accept
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2 and schema.get("type") == "object":
        # {"type": "object", ...properties}: the type test inline, one call per value
        check_props = checks[1]

        def check_typed_object(v: Any) -> Failure | None:
            if type(v) is not dict:
                return (), "must be an object"
            return check_props(v)

        return check_typed_object

    def check_all(v: Any) -> Failure | None:
        for c in checks:
            failure = c(v)
            if failure is not None:
                return failure
        return None

    return check_all


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


_BOUNDS: tuple[tuple[str, Callable[[Any, Any], bool], str], ...] = (
    ("minimum", lambda v, b: v < b, ">="),
    ("maximum", lambda v, b: v > b, "<="),
    ("exclusiveMinimum", lambda v, b: v <= b, ">"),
    ("exclusiveMaximum", lambda v, b: v >= b, "<"),
)


def _numeric(schema: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    for key, fails, word in _BOUNDS:
        if key in schema:
            bound = schema[key]

            def check(v: Any, bound: Any = bound, fails: Any = fails, word: str = word) -> Any:
                if _is_num(v) and fails(v, bound):
                    return (), f"must be {word} {bound}"
                return None

            out.append(check)
    return out


def _string(schema: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    if "minLength" in schema:
        n = schema["minLength"]
        out.append(
            lambda v: (
                ((), f"must have at least {n} characters")
                if isinstance(v, str) and len(v) < n
                else None
            )
        )
    if "maxLength" in schema:
        m = schema["maxLength"]
        out.append(
            lambda v: (
                ((), f"must have at most {m} characters")
                if isinstance(v, str) and len(v) > m
                else None
            )
        )
    if "pattern" in schema:
        rx = re.compile(schema["pattern"])
        pat = schema["pattern"]
        out.append(
            lambda v: (
                ((), f"must match {pat}") if isinstance(v, str) and rx.search(v) is None else None
            )
        )
    return out


def _array(schema: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    if "minItems" in schema:
        n = schema["minItems"]
        out.append(
            lambda v: (
                ((), f"must have at least {n} items")
                if isinstance(v, list) and len(v) < n
                else None
            )
        )
    if "maxItems" in schema:
        m = schema["maxItems"]
        out.append(
            lambda v: (
                ((), f"must have at most {m} items") if isinstance(v, list) and len(v) > m else None
            )
        )
    if "items" in schema:
        item = _compile(schema["items"])

        def check_items(v: Any) -> Failure | None:
            if isinstance(v, list):
                for i, x in enumerate(v):
                    failure = item(x)
                    if failure is not None:
                        return (i, *failure[0]), failure[1]
            return None

        out.append(check_items)
    return out


def _object(schema: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    required = list(schema.get("required", ()))
    props = {k: _compile(s) for k, s in schema.get("properties", {}).items()}
    extra = schema.get("additionalProperties", True)
    extra_check = None if extra is True or extra is False else _compile(extra)
    if "minProperties" in schema or "maxProperties" in schema:
        lo, hi = schema.get("minProperties", 0), schema.get("maxProperties")
        out.append(
            lambda v: (
                ((), f"must have between {lo} and {hi} properties")
                if isinstance(v, dict) and (len(v) < lo or (hi is not None and len(v) > hi))
                else None
            )
        )
    if not required and not props and extra is True:
        return out

    def check_object(v: Any) -> Failure | None:
        if not isinstance(v, dict):
            return None
        for r in required:
            if r not in v:
                return (r,), "is required"
        for k, x in v.items():
            c = props.get(k)
            if c is None:
                if extra is False:
                    return (k,), "unknown field"
                if extra_check is None:
                    continue
                c = extra_check
            elif c is _accept:
                continue
            failure = c(x)
            if failure is not None:
                return (k, *failure[0]), failure[1]
        return None

    out.append(check_object)
    return out


def _fallback(schema: dict[str, Any]) -> Check:
    validator = jsonschema.Draft202012Validator(schema)

    def check(v: Any) -> Failure | None:
        err = jsonschema.exceptions.best_match(validator.iter_errors(v))
        if err is None:
            return None
        return tuple(err.absolute_path), err.message[:500]

    return check


def compile_schema(schema: dict[str, Any] | bool | None) -> Check:
    """A checker for `schema` (None accepts anything)."""
    if schema is None:
        return lambda v: None
    try:
        return _compile(schema)
    except Unsupported:
        assert isinstance(schema, dict)
        return _fallback(schema)


@lru_cache(maxsize=512)
def _compile_cached(key: str) -> Check:
    import json

    return compile_schema(json.loads(key))


def compile_schema_cached(schema: dict[str, Any] | None) -> Check:
    """`compile_schema` memoised by the schema's canonical JSON (definition schemas)."""
    if schema is None:
        return lambda v: None
    import json

    return _compile_cached(json.dumps(schema, sort_keys=True))
