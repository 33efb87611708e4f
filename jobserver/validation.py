"""JSON Schema (Draft 2020-12) checks for request bodies, queries and job params.

One adapter over jsonschema-rs, used by the registry (schemas checked when published), the API
(bodies, queries, params) and any other producer:

- `compile_schema(schema)` -> `check(value) -> (path, message) | None`; `path` is the failing
  instance location as a tuple (`("jobs", 3, "params", "message")`) that callers format as
  the `field` of a 422, and `message` a short sentence a person can act on ("must be an
  integer"). Raises `SchemaError` for a schema that is not valid against its meta-schema.
- `compile_schema_cached(schema)`: the same, memoised by canonical schema text (definition
  schemas, read from the database on every cache refresh); a stored schema that no longer
  compiles gives a check that refuses every value with the reason, instead of raising.
- `schema_problem(schema)`: why a schema cannot be used (meta-schema, regex, `$ref`), or None.

Semantics, all of them jsonschema-rs's: the full Draft 2020-12 vocabulary (the dialect a
schema's `$schema` names is honoured); ECMA-262 regular expressions (`$` is the end of the
text, `\\d` is ASCII); `format` is an annotation (not asserted); `$ref` resolves inside the
schema only, never over the network. Two additions of ours on integer fields (a subschema
whose `type` is, or lists, "integer" without "number"): values must fit in 64 bits (1e308
is refused, as every integer column and client we have is 64-bit), and an integral float that
passes (JSON Schema counts 1.0 as an integer) is rewritten in place as an int, so what is
stored is an int.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import jsonschema_rs

from jobserver.codec import canonical, dumps_answer_text, loads

Path = tuple[str | int, ...]
Failure = tuple[Path, str]
Check = Callable[[Any], Failure | None]
Convert = Callable[[Any], None]

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
CACHE_SIZE = 512
MAX_MESSAGE = 500

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
}
# Keywords whose value is one subschema, a list of them, or a name -> subschema map.
_ONE = (
    "additionalProperties",
    "items",
    "additionalItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
)
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems")
_NAMED = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


class SchemaError(ValueError):
    """A schema that cannot be compiled; `message` says where and why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _accept(value: Any) -> Failure | None:
    return None


def _is_integer_schema(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "integer":
        return True
    return isinstance(kind, list) and "integer" in kind and "number" not in kind


def _bounded(schema: Any) -> Any:
    """A copy of `schema` whose integer subschemas are bounded to 64 bits (see module doc)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if _is_integer_schema(out):
        out["minimum"] = _tighter(out.get("minimum"), INT_MIN, max)
        out["maximum"] = _tighter(out.get("maximum"), INT_MAX, min)
    for key in _ONE:
        if key in out:
            value = out[key]
            out[key] = [_bounded(s) for s in value] if isinstance(value, list) else _bounded(value)
    for key in _MANY:
        if isinstance(out.get(key), list):
            out[key] = [_bounded(s) for s in out[key]]
    for key in _NAMED:
        if isinstance(out.get(key), dict):
            out[key] = {name: _bounded(s) for name, s in out[key].items()}
    return out


def _tighter(bound: Any, limit: int, pick: Callable[[Any, Any], Any]) -> Any:
    """`bound` narrowed to `limit` (a non-number is left for the meta-schema to refuse)."""
    if bound is None:
        return limit
    if isinstance(bound, bool) or not isinstance(bound, int | float):
        return bound
    return pick(bound, limit)


def _resolve(root: Any, ref: str) -> Any:
    """A local `$ref` ("#/$defs/n") inside `root`, or None (remote, or not found)."""
    if not ref.startswith("#"):
        return None
    node = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


# What a subschema asks of the converter: whether its value is an integer (a float there is
# replaced by its parent), and a walker that fixes the containers inside it in place.
Node = tuple[bool, Convert | None]
_NOTHING: Node = (False, None)


def _chain(walkers: list[Convert]) -> Convert | None:
    if len(walkers) <= 1:
        return walkers[0] if walkers else None

    def walk_all(value: Any) -> None:
        for walk in walkers:
            walk(value)

    return walk_all


def _converter(root: Any) -> Convert | None:
    """A function rewriting, in place, the integral floats at the integer positions of a
    *valid* instance, or None when the schema has none. Follows properties,
    additionalProperties, items, prefixItems, allOf and local `$ref`; not the branches of
    anyOf/oneOf/if (which one applied is not known), nor recursion past its first level.
    Integer leaves are tested inline (one `type(...) is float` per field), as the converter
    runs on every valid batch."""
    building: set[int] = set()

    def node(schema: Any) -> Node:
        if not isinstance(schema, dict) or id(schema) in building:
            return _NOTHING
        building.add(id(schema))
        try:
            parts = [node(s) for s in schema.get("allOf", ()) if isinstance(s, dict)]
            if isinstance(schema.get("$ref"), str):
                parts.append(node(_resolve(root, schema["$ref"])))
            parts.append((_is_integer_schema(schema), _object(schema)))
            parts.append((False, _array(schema)))
        finally:
            building.discard(id(schema))
        return any(p[0] for p in parts), _chain([p[1] for p in parts if p[1] is not None])

    def _object(schema: dict[str, Any]) -> Convert | None:
        props = schema.get("properties")
        known = props if isinstance(props, dict) else {}
        nodes = {k: node(s) for k, s in known.items()}
        int_keys = tuple(k for k, (is_int, _) in nodes.items() if is_int)
        nested = tuple((k, walk) for k, (_, walk) in nodes.items() if walk is not None)
        # additionalProperties applies to names patternProperties leaves: not followed then
        extra_int, extra = _NOTHING
        if not schema.get("patternProperties"):
            extra_int, extra = node(schema.get("additionalProperties"))
        if not int_keys and not nested and not extra_int and extra is None:
            return None

        def walk_object(value: Any) -> None:
            if type(value) is not dict:
                return
            get = value.get
            for k in int_keys:
                if type(get(k)) is float:
                    value[k] = int(value[k])
            for k, walk in nested:
                if k in value:
                    walk(value[k])
            if extra_int or extra is not None:
                for k, x in value.items():
                    if k in known:
                        continue
                    if extra_int and type(x) is float:
                        value[k] = int(x)
                    elif extra is not None:
                        extra(x)

        return walk_object

    def _array(schema: dict[str, Any]) -> Convert | None:
        prefix_schemas = schema.get("prefixItems")
        prefix = [node(s) for s in prefix_schemas] if isinstance(prefix_schemas, list) else []
        rest_int, rest = node(schema.get("items"))
        if not rest_int and rest is None and not any(i or w for i, w in prefix):
            return None
        start = len(prefix)

        def walk_array(value: Any) -> None:
            if type(value) is not list:
                return
            for i, (is_int, walk) in enumerate(prefix[: len(value)]):
                if is_int and type(value[i]) is float:
                    value[i] = int(value[i])
                elif walk is not None:
                    walk(value[i])
            if rest_int:
                for i in range(start, len(value)):
                    if type(value[i]) is float:
                        value[i] = int(value[i])
            elif rest is not None:
                for x in value[start:] if start else value:
                    rest(x)

        return walk_array

    return node(root)[1]  # a root that is itself an integer has no holder to fix


def _validator(schema: dict[str, Any] | bool) -> jsonschema_rs.Validator:
    try:
        return jsonschema_rs.validator_for(_bounded(schema), validate_formats=False, offline=True)
    except jsonschema_rs.ValidationError as e:  # refused by the meta-schema
        raise SchemaError(_schema_message(e)) from None
    except (ValueError, jsonschema_rs.ReferencingError) as e:
        raise SchemaError(str(e)[:MAX_MESSAGE]) from None


def _schema_message(error: jsonschema_rs.ValidationError) -> str:
    """Where in the schema and what is wrong, e.g. `at properties.n.type: "strin" is not a
    JSON Schema type (...)`."""
    path = error.instance_path
    message = error.message
    if path and path[-1] == "type" and error.kind.name == "anyOf":
        shown = dumps_answer_text(error.instance)[:100]
        message = f"{shown} is not a JSON Schema type (expected {', '.join(sorted(_TYPE_NAMES))})"
    where = _dotted(path)
    return (f"at {where}: {message}" if where else message)[:MAX_MESSAGE]


def _dotted(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _bound(word: str, limit: Any) -> str:
    if limit in (INT_MAX, INT_MIN):
        return f"must be an integer from {INT_MIN} to {INT_MAX}"
    return f"must be {word} {limit}"


_SINGULAR = {"characters": "character", "items": "item", "properties": "property"}


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n != 1 else f"1 {_SINGULAR[unit]}"


def _at(node: Any, path: Path | list[str | int]) -> Any:
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _unknown_name(error: jsonschema_rs.ValidationError, schema: Any, value: Any) -> Any:
    """The first name `additionalProperties: false` refused, when jsonschema-rs reports it as
    a false schema at the object (it does when the object has no `properties`)."""
    obj = _at(value, error.instance_path)
    parent = _at(schema, error.schema_path[:-1])
    if type(obj) is not dict or not isinstance(parent, dict):
        return None
    known = parent.get("properties") or {}
    return next((k for k in obj if k not in known), None)


def _failure(error: jsonschema_rs.ValidationError, schema: Any, value: Any) -> Failure:
    """Our (path, message) for jsonschema-rs's error: its kind says what failed, so the
    message is ours (no echo of the value, which may be large or secret)."""
    path: Path = tuple(error.instance_path)
    kind = error.kind
    if kind.name == "falseSchema" and error.schema_path[-1:] == ["additionalProperties"]:
        name = _unknown_name(error, schema, value)
        if name is not None:
            return (*path, name), "unknown field"
    match kind:
        case jsonschema_rs.ValidationErrorKind.Type(types=types):
            names = sorted(types, key=lambda t: t == "null")  # "a string or null"
            return path, "must be " + " or ".join(_TYPE_NAMES.get(t, t) for t in names)
        case jsonschema_rs.ValidationErrorKind.Required(property=name):
            return (*path, name), "is required"
        case jsonschema_rs.ValidationErrorKind.AdditionalProperties(unexpected=names):
            return (*path, names[0]), "unknown field"
        case jsonschema_rs.ValidationErrorKind.UnevaluatedProperties(unexpected=names):
            return (*path, names[0]), "unknown field"
        case jsonschema_rs.ValidationErrorKind.MinLength(limit=n):
            return path, f"must have at least {_count(n, 'characters')}"
        case jsonschema_rs.ValidationErrorKind.MaxLength(limit=n):
            return path, f"must have at most {_count(n, 'characters')}"
        case jsonschema_rs.ValidationErrorKind.Pattern(pattern=pattern):
            return path, f"must match {pattern}"
        case jsonschema_rs.ValidationErrorKind.Minimum(limit=n):
            return path, _bound(">=", n)
        case jsonschema_rs.ValidationErrorKind.Maximum(limit=n):
            return path, _bound("<=", n)
        case jsonschema_rs.ValidationErrorKind.ExclusiveMinimum(limit=n):
            return path, f"must be > {n}"
        case jsonschema_rs.ValidationErrorKind.ExclusiveMaximum(limit=n):
            return path, f"must be < {n}"
        case jsonschema_rs.ValidationErrorKind.MultipleOf(multiple_of=n):
            return path, f"must be a multiple of {n}"
        case jsonschema_rs.ValidationErrorKind.Enum(options=options):
            shown = ", ".join(dumps_answer_text(o) for o in options[:20])
            return path, f"must be one of {shown}"[:MAX_MESSAGE]
        case jsonschema_rs.ValidationErrorKind.Constant(expected_value=value):
            return path, f"must be {dumps_answer_text(value)}"[:MAX_MESSAGE]
        case jsonschema_rs.ValidationErrorKind.MinItems(limit=n):
            return path, f"must have at least {_count(n, 'items')}"
        case jsonschema_rs.ValidationErrorKind.MaxItems(limit=n):
            return path, f"must have at most {_count(n, 'items')}"
        case jsonschema_rs.ValidationErrorKind.MinProperties(limit=n):
            return path, f"must have at least {_count(n, 'properties')}"
        case jsonschema_rs.ValidationErrorKind.MaxProperties(limit=n):
            return path, f"must have at most {_count(n, 'properties')}"
        case jsonschema_rs.ValidationErrorKind.UniqueItems():
            return path, "must not contain duplicate items"
        case jsonschema_rs.ValidationErrorKind.FalseSchema():
            return path, "is not allowed"
        case jsonschema_rs.ValidationErrorKind.Not():
            return path, "matches a schema it must not match"
        case jsonschema_rs.ValidationErrorKind.AnyOf():
            return path, "does not match any of the allowed schemas (anyOf)"
        case jsonschema_rs.ValidationErrorKind.OneOfNotValid():
            return path, "does not match any of the allowed schemas (oneOf)"
        case jsonschema_rs.ValidationErrorKind.OneOfMultipleValid():
            return path, "matches more than one of the schemas where exactly one must (oneOf)"
        case jsonschema_rs.ValidationErrorKind.Contains():
            return path, "does not contain a matching item"
        case jsonschema_rs.ValidationErrorKind.Format(format=name):
            return path, f"must be a valid {name}"
    return path, error.message[:MAX_MESSAGE]


def compile_schema(schema: dict[str, Any] | bool | None) -> Check:
    """A checker for `schema` (None accepts anything); `SchemaError` if it does not compile."""
    if schema is None or schema is True or schema == {}:
        return _accept
    validator = _validator(schema)
    is_valid = validator.is_valid
    iter_errors = validator.iter_errors
    convert = _converter(schema)

    if convert is None:

        def check(value: Any) -> Failure | None:
            if is_valid(value):
                return None
            return _failure(next(iter(iter_errors(value))), schema, value)

        return check

    def check_and_convert(value: Any) -> Failure | None:
        if is_valid(value):
            convert(value)
            return None
        return _failure(next(iter(iter_errors(value))), schema, value)

    return check_and_convert


def schema_problem(schema: dict[str, Any] | bool | None) -> str | None:
    """Why `schema` cannot be used (meta-schema, regex or `$ref`), or None when it compiles."""
    if schema is None:
        return None
    try:
        _validator(schema)
    except SchemaError as e:
        return e.message
    return None


@lru_cache(maxsize=CACHE_SIZE)
def _compile_cached(key: str) -> Check:
    try:
        return compile_schema(loads(key))
    except SchemaError as e:
        reason = f"cannot be checked: the definition's params schema is invalid ({e.message})"

        def refuse(value: Any) -> Failure | None:
            return (), reason[:MAX_MESSAGE]

        return refuse


def compile_schema_cached(schema: dict[str, Any] | None) -> Check:
    """`compile_schema` memoised by the schema's canonical JSON (at most `CACHE_SIZE`)."""
    if schema is None:
        return _accept
    return _compile_cached(canonical(schema))
