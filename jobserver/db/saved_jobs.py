"""SQL for `saved_jobs` (named, reusable job configurations) and the jobs they made.

A saved job row holds the whole configuration a client gave (trigger included); the schedule
its trigger owns (`schedules.saved_job_id`, written through db/schedules.py in the same
transaction) holds the fire bookkeeping, so every read of a saved job joins that schedule's
state: `schedule_name`, `schedule_enabled`, `next_fire_at`, `last_fire_at`, `last_job_id`,
`consecutive_failures`, `disabled_reason`, `disabled_at` (NULL without a trigger).

Its executions are the jobs whose `saved_job_id` is its id, newest first through the partial
index `jobs_saved_job_idx` (saved_job_id, id): job ids are time-ordered (UUIDv7).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from jobserver.db.conn import Conn, ConnOrPool
from jobserver.db.jobs import JOB_COLUMNS

_COLUMNS = (
    "id, owner, name, description, definition_key, definition_version, params, enabled, tags,"
    " max_attempts, timeout_seconds, retry_delays, rate_limit, cron, every_seconds, timezone,"
    " created_by,"
    " updated_by, created_at, updated_at"
)
# Columns a caller sets on insert and update (the rest is identity and bookkeeping).
WRITABLE = (
    "name",
    "description",
    "definition_key",
    "definition_version",
    "params",
    "enabled",
    "tags",
    "max_attempts",
    "timeout_seconds",
    "retry_delays",
    "rate_limit",
    "cron",
    "every_seconds",
    "timezone",
)
_SELECT = (
    "SELECT "
    + ", ".join(f"sj.{c.strip()}" for c in _COLUMNS.split(","))
    + """, s.name AS schedule_name, s.enabled AS schedule_enabled, s.next_fire_at,
        s.last_fire_at, s.last_job_id, s.consecutive_failures, s.disabled_reason, s.disabled_at
    FROM saved_jobs sj LEFT JOIN schedules s ON s.saved_job_id = sj.id"""
)

EXECUTION_COLUMNS = (
    "id, status, schedule_name, scheduled_for, retry_of, created_at, started_at, finished_at,"
    " attempt, max_attempts, result, last_error"
)


class SavedJobsExceeded(Exception):
    """The owner already keeps `count` saved jobs, its maximum."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} saved jobs")
        self.count = count


async def saved_job_count_upto(
    conn: ConnOrPool,
    cap: int,
    *,
    owner: str | None,
    enabled: bool | None = None,
    tags: Sequence[str] = (),
    definition_key: str | None = None,
    q: str | None = None,
) -> int:
    """How many saved jobs match `saved_job_list`'s filters, counting at most `cap`."""
    args: list[Any] = []
    where = _where(args, owner, enabled, tags, definition_key, q)
    args.append(cap)
    count: int = await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM saved_jobs sj WHERE {where} LIMIT ${len(args)}) t",
        *args,
    )
    return count


async def saved_job_delete(conn: ConnOrPool, saved_job_id: uuid.UUID) -> bool:
    """Delete a saved job; its schedule goes with it (ON DELETE CASCADE), its jobs stay and
    keep its id in `saved_job_id`."""
    result = await conn.execute("DELETE FROM saved_jobs WHERE id = $1", saved_job_id)
    return result.endswith(" 1")


async def saved_job_execution_get(
    conn: ConnOrPool, saved_job_id: uuid.UUID, job_id: uuid.UUID
) -> asyncpg.Record | None:
    """One job the saved job made (`JOB_COLUMNS`), or None when it made no such job."""
    return await conn.fetchrow(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND saved_job_id = $2",
        job_id,
        saved_job_id,
    )


async def saved_job_executions(
    conn: ConnOrPool,
    saved_job_id: uuid.UUID,
    *,
    limit: int,
    before: uuid.UUID | None = None,
    statuses: Sequence[str] = (),
) -> list[asyncpg.Record]:
    """A page of the jobs the saved job made, newest first (id DESC), before the id of the
    previous page's last row."""
    return await conn.fetch(
        f"""
        SELECT {EXECUTION_COLUMNS} FROM jobs
        WHERE saved_job_id = $1
          AND (cardinality($3::text[]) = 0 OR status = ANY($3::text[]))
          AND ($4::uuid IS NULL OR id < $4)
        ORDER BY id DESC
        LIMIT $2
        """,
        saved_job_id,
        limit,
        list(statuses),
        before,
    )


async def saved_job_get(
    conn: ConnOrPool, saved_job_id: uuid.UUID, *, owner: str | None = None, lock: bool = False
) -> asyncpg.Record | None:
    """One saved job with its schedule's state; with `owner`, only if it is that owner's;
    `lock` holds its row for the transaction (not the schedule's: see schedule_get_owned)."""
    return await conn.fetchrow(
        f"{_SELECT} WHERE sj.id = $1 AND ($2::text IS NULL OR sj.owner = $2)"
        + (" FOR UPDATE OF sj" if lock else ""),
        saved_job_id,
        owner,
    )


async def saved_job_insert(
    conn: Conn,
    saved_job_id: uuid.UUID,
    owner: str,
    by: str,
    *,
    max_per_owner: int | None,
    **values: Any,
) -> None:
    """Insert a saved job (in the caller's transaction). A name the owner already uses raises
    `asyncpg.UniqueViolationError`; with `max_per_owner`, an owner already at it raises
    `SavedJobsExceeded` (checked under a per-owner advisory lock, so two concurrent creations
    cannot both pass)."""
    if max_per_owner is not None:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('jobserver.saved_jobs:' || $1, 0))",
            owner,
        )
        count: int = await conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM saved_jobs WHERE owner = $1 LIMIT $2) s",
            owner,
            max_per_owner,
        )
        if count >= max_per_owner:
            raise SavedJobsExceeded(count)
    cols = [c for c in WRITABLE if c in values]
    placeholders = "".join(f", ${i}" for i in range(5, len(cols) + 5))
    await conn.execute(
        f"""
        INSERT INTO saved_jobs (id, owner, created_by, updated_by{"".join(", " + c for c in cols)})
        VALUES ($1, $2, $3, $4{placeholders})
        """,
        saved_job_id,
        owner,
        by,
        by,
        *[values[c] for c in cols],
    )


def _where(
    args: list[Any],
    owner: str | None,
    enabled: bool | None,
    tags: Sequence[str],
    definition_key: str | None,
    q: str | None,
) -> str:
    """The list filters as SQL conditions joined with AND, appending their parameters."""
    conds: list[str] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if owner is not None:  # saved_jobs_owner_name_idx
        conds.append(f"sj.owner = {arg(owner)}")
    if enabled is not None:
        conds.append(f"sj.enabled = {arg(enabled)}")
    if tags:
        conds.append(f"sj.tags @> {arg(list(tags))}::text[]")
    if definition_key is not None:
        conds.append(f"sj.definition_key = {arg(definition_key)}")
    if q is not None:  # text in the name, any case (no pattern: % and _ are plain characters)
        conds.append(f"strpos(lower(sj.name), lower({arg(q)})) > 0")
    return " AND ".join(conds) if conds else "true"


async def saved_job_list(
    conn: ConnOrPool,
    *,
    owner: str | None,
    limit: int,
    after: tuple[str, uuid.UUID] | None = None,
    offset: int = 0,
    enabled: bool | None = None,
    tags: Sequence[str] = (),
    definition_key: str | None = None,
    q: str | None = None,
) -> list[asyncpg.Record]:
    """A page of saved jobs in (name, id) order, with their schedules' state: those after the
    (name, id) `after` (keyset paging), or from `offset` (page numbers)."""
    args: list[Any] = []
    where = _where(args, owner, enabled, tags, definition_key, q)
    if after is not None:
        args.extend(after)
        where += f" AND (sj.name, sj.id) > (${len(args) - 1}, ${len(args)})"
    args.append(limit)
    sql = f"{_SELECT} WHERE {where} ORDER BY sj.name, sj.id LIMIT ${len(args)}"
    if offset:
        args.append(offset)
        sql += f" OFFSET ${len(args)}"
    return await conn.fetch(sql, *args)


async def saved_job_update(conn: Conn, saved_job_id: uuid.UUID, by: str, **values: Any) -> bool:
    """Set the given writable columns (None is a value: it clears the column) and
    `updated_by`; a name the owner already uses raises `asyncpg.UniqueViolationError`."""
    cols = [c for c in WRITABLE if c in values]
    sets = "".join(f", {c} = ${i}" for i, c in enumerate(cols, start=3))
    result = await conn.execute(
        f"UPDATE saved_jobs SET updated_by = $2, updated_at = now(){sets} WHERE id = $1",
        saved_job_id,
        by,
        *[values[c] for c in cols],
    )
    return result.endswith(" 1")


async def saved_jobs_naming(
    conn: ConnOrPool, refs: Sequence[tuple[str, str]], value: str, limit: int
) -> list[asyncpg.Record]:
    """(id, name, owner, total) of the saved jobs whose params name `value` in a param of
    their definition that names a stored thing: `refs` holds (definition key, param) pairs.
    The first `limit` by id; `total` counts them all (a delete refused while some do)."""
    if not refs:
        return []
    return await conn.fetch(
        """
        SELECT sj.id, sj.name, sj.owner, count(*) OVER () AS total
        FROM saved_jobs sj
        WHERE EXISTS (
            SELECT 1 FROM unnest($1::text[], $2::text[]) AS r(key, param)
            WHERE sj.definition_key = r.key AND sj.params ->> r.param = $3
        )
        ORDER BY sj.id
        LIMIT $4
        """,
        [k for k, _ in refs],
        [p for _, p in refs],
        value,
        limit,
    )
