"""One list envelope and one paging model for every list route.

Every list answers `{"items": [...], "nextCursor": "<opaque>" | null}` and takes `limit`
(1..the route's maximum) and `cursor` (the previous page's `nextCursor`). Paging is keyset:
a cursor holds the sort key of the last item shown, so pages stay stable while rows are
inserted and no page costs an OFFSET scan. `nextCursor` is null on the last page.

A cursor is opaque to clients: URL-safe base64 of a small JSON array `[scope, *key]`, where
`scope` names the list (and its sort order), so a cursor of one list or order is refused by
another. A cursor that does not decode, belongs to another list or holds the wrong kinds of
values is a 422 naming `cursor`. Cursors are not signed, so a client can forge one (decode it,
change a value, encode it again): every value is therefore checked to be one the database
accepts for its column, so a forged cursor is a 422 and never a 500 — `int` within 32 bits
(`integer` columns), `bigint` within 64 bits, a time zone-aware `datetime` that converts to
UTC, text without NUL or lone surrogates, a `uuid`, a `bool`.

A route lists through `Pager`: `pager.after(query)` gives the decoded key to continue after
(None on the first page), `pager.page(rows, limit, key, render)` takes the rows fetched with
`limit + 1` and builds the envelope.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jobserver.codec import dumps_answer_text, loads
from jobserver.core.errors import RuleError

Kind = Literal["int", "bigint", "str", "uuid", "datetime", "bool"]
MAX_CURSOR = 1000
_INT_RANGES: dict[str, tuple[int, int]] = {
    "int": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}


def page_query(default: int, maximum: int, properties: dict[str, Any]) -> dict[str, Any]:
    """The query schema of a list route: its filters plus `limit` and `cursor`."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **properties,
            "limit": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
            "cursor": {
                "type": "string",
                "maxLength": MAX_CURSOR,
                "pattern": "^[A-Za-z0-9_-]*$",
                "description": "the nextCursor of the previous page (opaque, URL-safe)",
            },
        },
    }


def list_schema(item: dict[str, Any]) -> dict[str, Any]:
    """The answer schema of a list route."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["items", "nextCursor"],
        "properties": {
            "items": {"type": "array", "items": item},
            "nextCursor": {
                "type": ["string", "null"],
                "description": "pass as `cursor` for the next page; null on the last page",
            },
        },
    }


def _encode_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _decode_value(kind: Kind, value: Any) -> Any:
    bounds = _INT_RANGES.get(kind)
    if bounds is not None:
        if type(value) is not int or not bounds[0] <= value <= bounds[1]:
            raise ValueError
        return value
    if kind == "bool":
        if type(value) is not bool:
            raise ValueError
        return value
    if type(value) is not str:
        raise ValueError
    if kind == "uuid":
        return uuid.UUID(value)
    if kind == "datetime":
        parsed = dt.datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError
        return parsed.astimezone(dt.UTC)  # OverflowError at the ends of the calendar
    if "\x00" in value:
        raise ValueError
    value.encode("utf-8")  # UnicodeEncodeError (a ValueError) on lone surrogates
    return value


def encode_cursor(scope: str, key: Sequence[Any]) -> str:
    raw = dumps_answer_text([scope, *(_encode_value(v) for v in key)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str, kinds: Sequence[Kind]) -> tuple[Any, ...]:
    """The key in `cursor`; RuleError("cursor") unless it is a cursor of `scope`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise RuleError("cursor", "not a cursor from this API") from None
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise RuleError("cursor", "not a cursor from this API")
    if data[0] != scope:
        raise RuleError("cursor", "belongs to another list or sort order")
    if len(data) != len(kinds) + 1:
        raise RuleError("cursor", "not a cursor from this API")
    try:
        return tuple(_decode_value(k, v) for k, v in zip(kinds, data[1:], strict=True))
    except (ValueError, TypeError, OverflowError):
        raise RuleError("cursor", "not a cursor from this API") from None


@dataclass(frozen=True)
class Pager:
    """The paging of one list: its cursor scope and the kinds of its sort key."""

    scope: str
    kinds: tuple[Kind, ...]

    def after(self, q: dict[str, Any]) -> tuple[Any, ...] | None:
        """The key to continue after (`q["cursor"]` decoded), None on the first page."""
        cursor = q.get("cursor")
        return None if cursor is None else decode_cursor(cursor, self.scope, self.kinds)

    def page(
        self,
        rows: Sequence[Any],
        limit: int,
        key: Callable[[Any], Sequence[Any]],
        render: Callable[[Any], Any],
    ) -> dict[str, Any]:
        """The envelope of `rows` (fetched with `limit + 1`: one more says a page follows)."""
        shown = rows[:limit]
        next_cursor = (
            encode_cursor(self.scope, key(shown[-1])) if len(rows) > limit and shown else None
        )
        return {"items": [render(r) for r in shown], "nextCursor": next_cursor}
