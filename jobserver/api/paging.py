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

Page numbers, for the routes that opt in (`page_query(..., numbered=True)`,
`list_schema(..., numbered=True)`): `page` (1-based) instead of `cursor` (both: a 422 naming
both). `page_number(query, limit)` gives the page's offset; the route fetches `limit + 1` rows
at that OFFSET; `await pager.numbered(rows, number, count, key, render)` adds `page`, `limit`,
`total`, `totalPages` and `totalAtLeast` to the envelope (and `nextCursor`, so a client can go
on with the cursor), calling the route's `count()` (at most `COUNT_LIMIT` rows) only when the
page does not tell the total itself (it is full, or empty past the end). When the count passes
`COUNT_CAP`, `total` and `totalPages` are null and `totalAtLeast` is `COUNT_CAP`; otherwise
`totalAtLeast` equals `total`. Page
numbers reach the first `MAX_PAGE_OFFSET` rows (an OFFSET scan costs every row it skips):
a page starting past them is a 422 naming `page` that says to use the cursor. Without `page`
an answer is exactly the keyset one, with no count query.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jobserver.codec import dumps_answer_text, loads
from jobserver.core.errors import RuleError

Kind = Literal["int", "bigint", "str", "uuid", "datetime", "bool"]
MAX_CURSOR = 1000
COUNT_CAP = 10_000
COUNT_LIMIT = COUNT_CAP + 1  # count this many to know whether the total passes the cap
MAX_PAGE_OFFSET = 10_000
_INT_RANGES: dict[str, tuple[int, int]] = {
    "int": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}


def page_query(
    default: int, maximum: int, properties: dict[str, Any], *, numbered: bool = False
) -> dict[str, Any]:
    """The query schema of a list route: its filters plus `limit` and `cursor` (and `page`
    when `numbered`)."""
    paging: dict[str, Any] = {
        "limit": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
        "cursor": {
            "type": "string",
            "maxLength": MAX_CURSOR,
            "pattern": "^[A-Za-z0-9_-]*$",
            "description": "the nextCursor of the previous page (opaque, URL-safe)",
        },
    }
    if numbered:
        paging["page"] = {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_PAGE_OFFSET,
            "description": f"page number from 1, instead of cursor (not both); the answer adds"
            f" page, limit, total, totalPages and totalAtLeast. Pages reach the first"
            f" {MAX_PAGE_OFFSET:,} rows ((page - 1) * limit below {MAX_PAGE_OFFSET:,}, else a"
            f" 422 naming page): use cursor past them",
        }
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {**properties, **paging},
    }


_COUNT = {"type": ["integer", "null"], "minimum": 0}
NUMBERED_FIELDS: dict[str, Any] = {
    "page": {"type": "integer", "minimum": 1, "description": "the page asked for"},
    "limit": {"type": "integer", "minimum": 1},
    "total": {**_COUNT, "description": f"matching rows; null past {COUNT_CAP:,}"},
    "totalPages": {**_COUNT, "description": f"pages of `limit`; null past {COUNT_CAP:,} rows"},
    "totalAtLeast": {
        "type": "integer",
        "minimum": 0,
        "description": f"a lower bound of total: total itself, or {COUNT_CAP:,} past the cap",
    },
}


def list_schema(item: dict[str, Any], *, numbered: bool = False) -> dict[str, Any]:
    """The answer schema of a list route (with the page-number fields, present only when the
    request gave `page`, when `numbered`)."""
    properties: dict[str, Any] = {
        "items": {"type": "array", "items": item},
        "nextCursor": {
            "type": ["string", "null"],
            "description": "pass as `cursor` for the next page; null on the last page",
        },
    }
    if numbered:
        properties.update(NUMBERED_FIELDS)
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["items", "nextCursor"],
        "properties": properties,
    }


@dataclass(frozen=True)
class PageNumber:
    """A page asked for by number: `page` (from 1) of `limit` rows."""

    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit

    def known_total(self, rows: Sequence[Any]) -> int | None:
        """The total when the page itself tells it (`rows` fetched with `limit + 1`): a page
        that is not full and not past the end. None: count."""
        if len(rows) <= self.limit and (rows or self.offset == 0):
            return self.offset + len(rows)
        return None


def page_number(q: dict[str, Any], limit: int) -> PageNumber | None:
    """The page asked for by `q["page"]`, None when paging by cursor. RuleError naming both
    with a cursor, naming `page` past MAX_PAGE_OFFSET rows."""
    page = q.get("page")
    if page is None:
        return None
    if q.get("cursor") is not None:
        raise RuleError("page, cursor", "give page or cursor, not both")
    number = PageNumber(page, limit)
    if number.offset >= MAX_PAGE_OFFSET:
        raise RuleError(
            "page",
            f"page {page} of {limit} rows starts past row {MAX_PAGE_OFFSET:,}: page numbers"
            f" reach the first {MAX_PAGE_OFFSET:,} rows; use cursor (nextCursor) to go further",
        )
    return number


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

    async def numbered(
        self,
        rows: Sequence[Any],
        number: PageNumber,
        count: Callable[[], Awaitable[int]],
        key: Callable[[Any], Sequence[Any]],
        render: Callable[[Any], Any],
    ) -> dict[str, Any]:
        """`page` plus the page-number fields. `count()` counts the matching rows up to
        COUNT_LIMIT; it is called only when the page does not tell the total itself."""
        out = self.page(rows, number.limit, key, render)
        total = number.known_total(rows)
        capped = False
        if total is None:
            total = await count()
            capped = total > COUNT_CAP
        out["page"] = number.page
        out["limit"] = number.limit
        out["total"] = None if capped else total
        out["totalPages"] = None if capped else -(-total // number.limit)
        out["totalAtLeast"] = COUNT_CAP if capped else total
        return out
