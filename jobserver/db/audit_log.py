"""SQL for `audit_log`: the structured rows `log.message` jobs write, searched by `GET /v1/logs`.

- `audit_log_write`: one row for the job a worker holds, fenced like every write a worker makes
  about its job (`status in (running, cancelling) AND worker_id = me AND attempt = n`), with
  the job's owner and definition read from its row in the same statement. One row per job:
  an attempt that finds the row of an earlier one (written, then the worker died before its
  ack) answers that row instead of writing a second one.
- `audit_log_list` / `audit_log_count_upto`: the search, newest first by (created_at, id).
  The statement holds only the conditions a search gives (values are always bind
  parameters), so each combination of filters gets a plan of its own that can use its index:
  `audit_log_created_idx` for the time window, `audit_log_category_idx` for a category,
  `audit_log_serious_idx` (a partial index) for warn and error, `audit_log_job_idx` for a job,
  and the trigram index `audit_log_message_trgm_idx` for text in the message.
- `audit_log_prune`: one batch of rows older than the retention, oldest first.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from jobserver.audit import LEVELS
from jobserver.db.conn import ConnOrPool

COLUMNS = "id, created_at, level, category, message, metadata, job_id, owner, definition"

_WRITE = """
WITH job AS (
    -- the fence: only the worker holding this attempt writes about the job
    SELECT j.owner, j.definition_key || '@' || j.definition_version AS definition
    FROM jobs j
    WHERE j.id = $1 AND j.status IN ('running', 'cancelling') AND j.worker_id = $2
      AND j.attempt = $3
), ins AS (
    INSERT INTO audit_log (level, category, message, metadata, job_id, owner, definition)
    SELECT $4, $5, $6, $7, $1, job.owner, job.definition FROM job
    ON CONFLICT (job_id) WHERE job_id IS NOT NULL DO NOTHING
    RETURNING id, created_at, owner
)
SELECT id, created_at, owner, true AS written FROM ins
UNION ALL
-- an earlier attempt of the job wrote its row: that row is the job's
SELECT a.id, a.created_at, a.owner, false FROM audit_log a
WHERE a.job_id = $1 AND EXISTS (SELECT 1 FROM job) AND NOT EXISTS (SELECT 1 FROM ins)
"""


async def audit_log_write(
    conn: ConnOrPool,
    *,
    job_id: uuid.UUID,
    worker_id: str,
    attempt: int,
    level: str,
    category: str,
    message: str,
    metadata: dict[str, Any],
) -> asyncpg.Record | None:
    """Write the job's row; returns (id, created_at, owner, written) — `written` is false
    when an earlier attempt's row was found — or None when this worker no longer holds the
    job."""
    row: asyncpg.Record | None = await conn.fetchrow(
        _WRITE, job_id, worker_id, attempt, level, category, message, metadata
    )
    return row


@dataclass(frozen=True)
class AuditFilter:
    """A search of the audit log; None (or empty) means "any"."""

    category: str | None = None
    levels: tuple[str, ...] = ()  # from jobserver.audit.at_least: a suffix of LEVELS
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive
    text: str | None = None  # found anywhere in the message, ignoring case
    job_id: uuid.UUID | None = None


def like_pattern(text: str) -> str:
    """An ILIKE pattern (escape character `\\`) that finds `text` anywhere, taken literally:
    `%`, `_` and `\\` in it match only themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(flt: AuditFilter, args: list[Any]) -> str:
    """The WHERE clause of `flt`: only the conditions it gives, each value a bind parameter
    appended to `args`. Levels are written out (they come from LEVELS, never from a client)
    so that the planner can match `audit_log_serious_idx`'s predicate."""

    def bind(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    conds: list[str] = []
    if flt.category is not None:
        conds.append(f"category = {bind(flt.category)}")
    if flt.levels and set(flt.levels) != set(LEVELS):
        assert set(flt.levels) <= set(LEVELS), flt.levels
        conds.append("level IN (" + ", ".join(f"'{lv}'" for lv in flt.levels) + ")")
    if flt.since is not None:
        conds.append(f"created_at >= {bind(flt.since)}")
    if flt.until is not None:
        conds.append(f"created_at < {bind(flt.until)}")
    if flt.text is not None:
        conds.append(f"message ILIKE {bind(like_pattern(flt.text))} ESCAPE '\\'")
    if flt.job_id is not None:
        conds.append(f"job_id = {bind(flt.job_id)}")
    return " AND ".join(conds) if conds else "true"


async def audit_log_list(
    conn: ConnOrPool,
    flt: AuditFilter,
    *,
    limit: int,
    after: tuple[dt.datetime, int] | None = None,
    offset: int = 0,
) -> list[asyncpg.Record]:
    """A page of matching rows, newest first (created_at DESC, id DESC): those after `after`
    = (created_at, id) of the previous page's last row (keyset paging), skipping `offset`
    rows (page numbers; the API bounds it)."""
    args: list[Any] = []
    where = _where(flt, args)
    if after is not None:
        args.extend(after)
        where += f" AND (created_at, id) < (${len(args) - 1}, ${len(args)})"
    args.extend((limit, offset))
    return await conn.fetch(
        f"SELECT {COLUMNS} FROM audit_log WHERE {where}"
        f" ORDER BY created_at DESC, id DESC LIMIT ${len(args) - 1} OFFSET ${len(args)}",
        *args,
    )


async def audit_log_count_upto(conn: ConnOrPool, flt: AuditFilter, cap: int) -> int:
    """How many rows match `flt`, counting at most `cap`."""
    args: list[Any] = []
    where = _where(flt, args)
    args.append(cap)
    count: int = await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM audit_log WHERE {where} LIMIT ${len(args)}) t",
        *args,
    )
    return count


async def audit_log_prune(conn: ConnOrPool, *, older_than_days: int, limit: int) -> int:
    """Delete up to `limit` rows created more than `older_than_days` days ago, oldest first
    (walks `audit_log_created_idx`); returns how many went."""
    result: str = await conn.execute(
        """
        DELETE FROM audit_log WHERE id IN (
            SELECT id FROM audit_log
            WHERE created_at < now() - make_interval(days => $1)
            ORDER BY created_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        """,
        older_than_days,
        limit,
    )
    return int(result.split()[-1])
