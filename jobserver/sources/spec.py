"""The `sources` object of a job: parsed and validated here, with no I/O.

A job's `sources` names lookups rendered before each run (see `SourceDriver`)::

    {"user": {"collection": "users", "match": {"name": "John"},
              "fields": ["name", "email", "contact:phone,address"], "single": true}}

- `collection`: a table or view (`table` or `schema.table`), checked later against the catalog.
- `match`: equality on a column (`col`) or on a key of a jsonb column (`col.key`); values are
  scalars (string, number, boolean, null = IS NULL) and only ever bound as parameters.
- `fields`: columns (`col`) or keys of a jsonb column (`col:key1,key2`, a nested object in the
  output); omitted = every column.
- `sort`: `[{"field": "col", "order": "asc"|"desc"}]` or `["-col", "col"]`.
- `limit`: 1..1000, default 100; `single: true` returns one object (limit 1) instead of a list.

At most `MAX_SOURCES` sources. `parse_sources` raises `SourceError(path, message)` with a JSON path
such as `sources.user.fields[2]`; `SOURCES_SCHEMA` is the same shape for embedding in a params
schema (the parser is the authority: it also checks the rules a schema cannot say).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_SOURCES = 10
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_FIELDS = 100
MAX_MATCH = 20
MAX_NAME = 63  # PostgreSQL's identifier length

Scalar = str | int | float | bool | None

SOURCE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# A column or table name: anything the catalog may hold except the separators of this syntax.
_NAME = r"[^\s.:,\x00-\x1f][^.:,\x00-\x1f]{0,62}"
_COLLECTION = re.compile(rf"^(?:{_NAME}\.)?{_NAME}$")
_KEYS = r"[^,\x00-\x1f]{1,255}(?:,[^,\x00-\x1f]{1,255})*"


class SourceError(ValueError):
    """A source that cannot be parsed or fetched; `path` is the JSON path of the culprit."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class FieldSpec:
    """One output entry: a column, or chosen keys of a jsonb column (`keys` not None)."""

    column: str
    keys: tuple[str, ...] | None = None


@dataclass(frozen=True)
class MatchSpec:
    """`column = value`, or `column -> key = value` when `key` is set."""

    column: str
    key: str | None
    value: Scalar


@dataclass(frozen=True)
class SortSpec:
    column: str
    descending: bool = False


@dataclass(frozen=True)
class SourceSpec:
    """One validated source; `fields` empty means every column."""

    name: str
    collection: str
    match: tuple[MatchSpec, ...] = ()
    fields: tuple[FieldSpec, ...] = ()
    single: bool = False
    sort: tuple[SortSpec, ...] = ()
    limit: int = DEFAULT_LIMIT

    @property
    def path(self) -> str:
        return f"sources.{self.name}"

    def match_shown(self) -> dict[str, Scalar]:
        """The match as the user wrote it, for error messages."""
        return {m.column if m.key is None else f"{m.column}.{m.key}": m.value for m in self.match}


_SORT_ITEM = {
    "oneOf": [
        {"type": "string", "pattern": r"^[+-]?[^.:,]+$", "maxLength": 64},
        {
            "type": "object",
            "required": ["field"],
            "additionalProperties": False,
            "properties": {
                "field": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
                "order": {"enum": ["asc", "desc"]},
            },
        },
    ]
}

SOURCES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": MAX_SOURCES,
    "propertyNames": {"pattern": SOURCE_NAME.pattern},
    "additionalProperties": {
        "type": "object",
        "required": ["collection"],
        "additionalProperties": False,
        "properties": {
            "collection": {"type": "string", "minLength": 1, "maxLength": 2 * MAX_NAME + 1},
            "match": {
                "type": "object",
                "maxProperties": MAX_MATCH,
                "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
            },
            "fields": {
                "type": "array",
                "maxItems": MAX_FIELDS,
                "items": {"type": "string", "minLength": 1},
            },
            "single": {"type": "boolean"},
            "sort": {"type": "array", "maxItems": MAX_FIELDS, "items": _SORT_ITEM},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        },
    },
}

_KNOWN = ("collection", "match", "fields", "single", "sort", "limit")


def parse_sources(value: Any, path: str = "sources") -> dict[str, SourceSpec]:
    """Validate a whole `sources` object; raises `SourceError` on the first problem."""
    if not isinstance(value, dict):
        raise SourceError(path, "expected an object of named sources")
    if len(value) > MAX_SOURCES:
        raise SourceError(path, f"at most {MAX_SOURCES} sources, got {len(value)}")
    specs: dict[str, SourceSpec] = {}
    for name, body in value.items():
        if not isinstance(name, str) or not SOURCE_NAME.match(name):
            raise SourceError(
                f"{path}.{name}", "a source name is an identifier (letters, digits, _)"
            )
        specs[name] = parse_source(name, body, f"{path}.{name}")
    return specs


def parse_source(name: str, body: Any, path: str) -> SourceSpec:
    if not isinstance(body, dict):
        raise SourceError(path, "expected an object with a collection")
    for key in body:
        if key not in _KNOWN:
            raise SourceError(f"{path}.{key}", f"unknown key; expected one of {', '.join(_KNOWN)}")
    collection = body.get("collection")
    if not isinstance(collection, str) or not _COLLECTION.match(collection):
        raise SourceError(
            f"{path}.collection", "expected a table or view name (`table` or `schema.table`)"
        )
    single = body.get("single", False)
    if not isinstance(single, bool):
        raise SourceError(f"{path}.single", "expected true or false")
    return SourceSpec(
        name=name,
        collection=collection,
        match=_parse_match(body.get("match", {}), f"{path}.match"),
        fields=_parse_fields(body.get("fields", []), f"{path}.fields"),
        single=single,
        sort=_parse_sort(body.get("sort", []), f"{path}.sort"),
        limit=_parse_limit(body.get("limit"), single, f"{path}.limit"),
    )


def _column(raw: Any, path: str) -> str:
    if not isinstance(raw, str) or not re.fullmatch(_NAME, raw):
        raise SourceError(path, f"expected a column name, got {raw!r}")
    return raw


def _parse_match(raw: Any, path: str) -> tuple[MatchSpec, ...]:
    if not isinstance(raw, dict):
        raise SourceError(path, "expected an object of column: value")
    if len(raw) > MAX_MATCH:
        raise SourceError(path, f"at most {MAX_MATCH} conditions")
    out = []
    for key, value in raw.items():
        where = f"{path}.{key}"
        if value is not None and not isinstance(value, str | int | float | bool):
            raise SourceError(where, "expected a string, number, boolean or null")
        if not isinstance(key, str):
            raise SourceError(where, "expected a column name")
        column, dot, sub = key.partition(".")
        if dot and not sub:
            raise SourceError(where, "expected `column.key` with a key after the dot")
        out.append(MatchSpec(_column(column, where), sub if dot else None, value))
    return tuple(out)


def _parse_fields(raw: Any, path: str) -> tuple[FieldSpec, ...]:
    if not isinstance(raw, list):
        raise SourceError(path, "expected a list of column names")
    if len(raw) > MAX_FIELDS:
        raise SourceError(path, f"at most {MAX_FIELDS} fields")
    out: list[FieldSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(item, str):
            raise SourceError(where, "expected `column` or `column:key1,key2`")
        column, colon, keys = item.partition(":")
        column = _column(column, where)
        if colon and not re.fullmatch(_KEYS, keys):
            raise SourceError(where, "expected `column:key1,key2` with non-empty keys")
        if column in seen:
            raise SourceError(where, f"{column} appears twice")
        seen.add(column)
        out.append(FieldSpec(column, tuple(keys.split(",")) if colon else None))
    return tuple(out)


def _parse_sort(raw: Any, path: str) -> tuple[SortSpec, ...]:
    if not isinstance(raw, list):
        raise SourceError(path, 'expected a list such as ["-created_at"]')
    if len(raw) > MAX_FIELDS:
        raise SourceError(path, f"at most {MAX_FIELDS} sort keys")
    out = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if isinstance(item, str):
            desc = item.startswith("-")
            name = item[1:] if item[:1] in ("-", "+") else item
            out.append(SortSpec(_column(name, where), desc))
        elif isinstance(item, dict):
            extra = set(item) - {"field", "order"}
            if extra:
                raise SourceError(
                    f"{where}.{sorted(extra)[0]}", "unknown key; expected field, order"
                )
            order = item.get("order", "asc")
            if order not in ("asc", "desc"):
                raise SourceError(f"{where}.order", "expected asc or desc")
            out.append(SortSpec(_column(item.get("field"), f"{where}.field"), order == "desc"))
        else:
            raise SourceError(where, 'expected "column", "-column" or {"field", "order"}')
    return tuple(out)


def _parse_limit(raw: Any, single: bool, path: str) -> int:
    if raw is None:
        return 1 if single else DEFAULT_LIMIT
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_LIMIT:
        raise SourceError(path, f"expected an integer between 1 and {MAX_LIMIT}")
    if single and raw != 1:
        raise SourceError(path, "a single source returns one row: omit limit or give 1")
    return raw
