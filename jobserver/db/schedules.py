"""SQL for `schedules` (cron and interval schedules) and the jobs they fire.

The scheduler locks due rows with SKIP LOCKED, inserts their jobs with
`schedule_jobs_insert` (db/jobs' insert with ON CONFLICT DO NOTHING on the unique index
`jobs_schedule_fire_idx` (schedule_name, scheduled_for): a fire time produces at most one job
whatever the number of schedulers, restarts or failovers) and moves `next_fire_at` forward in
the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from jobserver.db.conn import Conn, ConnOrPool
from jobserver.db.jobs import NewJob, job_insert_many

COLUMNS = (
    "name, cron, every_seconds, timezone, definition_key, definition_version, params, queue,"
    " priority, max_attempts, enabled, start_at, expires_at, overlap_policy, catchup_policy,"
    " catchup_limit, source, next_fire_at, last_fire_at, last_job_id, created_at, updated_at"
)
# Columns a caller may set on insert/update (everything but bookkeeping).
WRITABLE = (
    "cron",
    "every_seconds",
    "timezone",
    "definition_key",
    "definition_version",
    "params",
    "queue",
    "priority",
    "max_attempts",
    "enabled",
    "start_at",
    "expires_at",
    "overlap_policy",
    "catchup_policy",
    "catchup_limit",
    "source",
    "next_fire_at",
)


async def schedule_delete(conn: ConnOrPool, name: str) -> bool:
    result = await conn.execute("DELETE FROM schedules WHERE name = $1", name)
    return result.endswith(" 1")


async def schedule_due_lock(conn: Conn, limit: int) -> list[asyncpg.Record]:
    """Enabled schedules due now (or never planned), locked for this transaction.

    Rows another scheduler holds are skipped; each row also carries `db_now`, the clock the
    caller must plan with.
    """
    return await conn.fetch(
        f"""
        SELECT now() AS db_now, {COLUMNS} FROM schedules
        WHERE enabled AND (next_fire_at IS NULL OR next_fire_at <= now())
        ORDER BY next_fire_at NULLS FIRST
        LIMIT $1
        FOR UPDATE SKIP LOCKED
        """,
        limit,
    )


async def schedule_get(conn: ConnOrPool, name: str, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM schedules WHERE name = $1" + (" FOR UPDATE" if lock else ""),
        name,
    )


async def schedule_insert(conn: ConnOrPool, name: str, **values: Any) -> asyncpg.Record:
    """Insert a schedule; a duplicate name raises `asyncpg.UniqueViolationError`."""
    cols = [c for c in WRITABLE if c in values]
    placeholders = ", ".join(f"${i}" for i in range(2, len(cols) + 2))
    row = await conn.fetchrow(
        f"""
        INSERT INTO schedules (name{"".join(", " + c for c in cols)})
        VALUES ($1{", " if cols else ""}{placeholders})
        RETURNING {COLUMNS}
        """,
        name,
        *[values[c] for c in cols],
    )
    assert row is not None  # INSERT ... RETURNING yields its row or raises
    return row


async def schedule_job_status(conn: ConnOrPool, job_id: uuid.UUID) -> str | None:
    """Status of a schedule's last job (overlap policy `skip`); None when it is gone."""
    status: str | None = await conn.fetchval("SELECT status FROM jobs WHERE id = $1", job_id)
    return status


async def schedule_jobs_insert(conn: Conn, jobs: Sequence[NewJob]) -> list[uuid.UUID]:
    """Insert schedule-fired jobs through the one job insert path, skipping fire times that
    already have their job (exactly once per schedule and fire time). Returns the ids inserted;
    one NOTIFY when there are any. Their `created` event is derived like every job's
    (db/events.py), with the schedule and fire time as its details."""
    return await job_insert_many(conn, jobs, skip_fired=True)


async def schedule_list(
    conn: ConnOrPool,
    *,
    limit: int = 100,
    after: str | None = None,
    enabled: bool | None = None,
    definition_key: str | None = None,
) -> list[asyncpg.Record]:
    """A page of schedules by name: those after the name `after` (keyset paging)."""
    return await conn.fetch(
        f"""
        SELECT {COLUMNS} FROM schedules
        WHERE ($3::bool IS NULL OR enabled = $3) AND ($4::text IS NULL OR definition_key = $4)
          AND ($2::text IS NULL OR name > $2)
        ORDER BY name LIMIT $1
        """,
        limit,
        after,
        enabled,
        definition_key,
    )


async def schedule_mark_fired(
    conn: Conn,
    name: str,
    *,
    next_fire_at: datetime | None,
    last_fire_at: datetime | None = None,
    last_job_id: uuid.UUID | None = None,
    disable: bool = False,
) -> None:
    """Move a schedule on after a tick (or a manual trigger); `disable` ends an expired one."""
    await conn.execute(
        """
        UPDATE schedules SET next_fire_at = $2,
            last_fire_at = COALESCE($3, last_fire_at),
            last_job_id = COALESCE($4, last_job_id),
            enabled = enabled AND NOT $5,
            updated_at = now()
        WHERE name = $1
        """,
        name,
        next_fire_at,
        last_fire_at,
        last_job_id,
        disable,
    )


async def schedule_update(conn: ConnOrPool, name: str, **values: Any) -> asyncpg.Record | None:
    """Set the given writable columns (None is a value: it clears the column)."""
    cols = [c for c in WRITABLE if c in values]
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(cols, start=2))
    return await conn.fetchrow(
        f"""
        UPDATE schedules SET {sets}{", " if sets else ""}updated_at = now()
        WHERE name = $1 RETURNING {COLUMNS}
        """,
        name,
        *[values[c] for c in cols],
    )


async def schedule_upsert_code(conn: Conn, name: str, **values: Any) -> str:
    """Create or refresh a schedule declared in code (`source` = 'code').

    Returns "created", "updated" or "unchanged". A same-named schedule created over the API
    is left alone ("conflict"). Timing changes reset `next_fire_at` to the given value.
    """
    current = await schedule_get(conn, name, lock=True)
    if current is None:
        await schedule_insert(conn, name, source="code", **values)
        return "created"
    if current["source"] != "code":
        return "conflict"
    changed = {k: v for k, v in values.items() if k != "next_fire_at" and current[k] != v}
    if not changed:
        return "unchanged"
    if {"cron", "every_seconds", "timezone", "start_at", "enabled"} & changed.keys():
        changed["next_fire_at"] = values.get("next_fire_at")
    await schedule_update(conn, name, **changed)
    return "updated"
