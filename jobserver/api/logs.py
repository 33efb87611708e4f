"""`GET /v1/logs` (`view_jobs`): search the audit log that `log.message` jobs write.

Filters, each optional, all combined: `category` (exact), `level` (that level and above:
`warn` returns warn and error; `warning` is `warn`), `since` (inclusive) and `until`
(exclusive), both RFC 3339 date-times with an offset (`2026-12-02T07:00:00Z`,
`...+01:00`), `q` (text found anywhere in the message, ignoring case; `%`, `_` and `\\` are
matched literally), `jobId`. Newest first, keyset-paged by (createdAt, id) with `limit` and
`cursor` -> `nextCursor`, or `page` numbers (see `jobserver.api.paging`). A bad filter is a
422 naming it (`until` when it is not after `since`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.errors import invalid
from jobserver.api.jsonio import json_response
from jobserver.api.keys import POOL_KEY, QUERY_KEY
from jobserver.api.paging import COUNT_LIMIT, Pager, page_number
from jobserver.api.request import uuid_query
from jobserver.audit import at_least
from jobserver.db.audit_log import AuditFilter, audit_log_count_upto, audit_log_list

LOGS = Pager("logs", ("datetime", "bigint"))
# RFC 3339 section 5.6 (a space for the T, as its note allows); at most microseconds, which
# is what PostgreSQL keeps.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def parse_rfc3339(value: str, field: str) -> dt.datetime:
    """An RFC 3339 date-time with its offset, in UTC; a 422 naming `field` otherwise."""
    if not _RFC3339.fullmatch(value):
        raise invalid(
            field,
            f"{value[:64]!r} is not an RFC 3339 date-time with an offset"
            " (e.g. 2026-12-02T07:00:00Z or 2026-12-02T08:00:00.5+01:00)",
        )
    try:
        return dt.datetime.fromisoformat(value.upper()).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise invalid(field, f"{value!r} is not a date-time that exists") from None


def _filter(q: dict[str, Any]) -> AuditFilter:
    since = parse_rfc3339(q["since"], "since") if "since" in q else None
    until = parse_rfc3339(q["until"], "until") if "until" in q else None
    if since is not None and until is not None and until <= since:
        raise invalid("until", f"must be after since ({q['since']})")
    job_id = uuid_query(q, "jobId")
    return AuditFilter(
        category=q.get("category"),
        levels=at_least(q["level"]) if "level" in q else (),
        since=since,
        until=until,
        text=q.get("q"),
        job_id=job_id,
    )


def log_json(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"],
        "createdAt": r["created_at"],
        "level": r["level"],
        "category": r["category"],
        "message": r["message"],
        "metadata": r["metadata"],
        "jobId": r["job_id"],
        "owner": r["owner"],
        "definition": r["definition"],
    }


def _key(r: asyncpg.Record) -> tuple[Any, ...]:
    return (r["created_at"], r["id"])


async def list_logs(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    flt = _filter(q)
    limit = q.get("limit", 100)
    number = page_number(q, limit)
    after = LOGS.after(q)
    pool = request.app[POOL_KEY]
    rows = await audit_log_list(
        pool,
        flt,
        limit=limit + 1,
        after=None if after is None else (after[0], after[1]),
        offset=0 if number is None else number.offset,
    )
    if number is None:
        return json_response(LOGS.page(rows, limit, _key, log_json))

    async def count() -> int:
        return await audit_log_count_upto(pool, flt, COUNT_LIMIT)

    return json_response(await LOGS.numbered(rows, number, count, _key, log_json))
