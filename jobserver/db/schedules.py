"""SQL for `schedules` (cron and interval schedules) and the jobs they fire.

The scheduler locks due rows with SKIP LOCKED, inserts their jobs with
`schedule_jobs_insert` (db/jobs' insert with ON CONFLICT DO NOTHING on the unique index
`jobs_schedule_fire_idx` (schedule_name, scheduled_for): a fire time produces at most one job
whatever the number of schedulers, restarts or failovers) and moves `next_fire_at` forward in
the same transaction.

A schedule's runs are read back through that same index, newest fire first: for the runs
list (`schedule_runs_list`) and for the failure streak that disables a schedule
(`schedule_runs_latest_finished`, `schedule_failed_since`, `schedule_disable_failing`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from jobserver.db.conn import Conn, ConnOrPool
from jobserver.db.events import job_events_insert
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.statuses import TERMINAL_STATUSES

RUN_COLUMNS = (
    "id, status, scheduled_for, created_at, started_at, finished_at, attempt, max_attempts,"
    " last_error"
)

COLUMNS = (
    "name, cron, every_seconds, timezone, definition_key, definition_version, params, queue,"
    " priority, max_attempts, enabled, start_at, expires_at, overlap_policy, catchup_policy,"
    " catchup_limit, source, next_fire_at, last_fire_at, last_job_id, created_at, updated_at,"
    " event, tags, max_consecutive_failures, consecutive_failures, disabled_reason, disabled_at,"
    " timeout_seconds, retry_delays, rate_limit, saved_job_id, job_owner"
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
    "event",
    "tags",
    "max_consecutive_failures",
    # failure bookkeeping, cleared when a schedule is re-enabled
    "consecutive_failures",
    "disabled_reason",
    "timeout_seconds",
    "retry_delays",
    # set only for the schedule a saved job owns (jobserver.core.saved_jobs)
    "rate_limit",
    "saved_job_id",
    "job_owner",
)


async def schedule_disable_failing(
    conn: Conn, name: str, *, failures: int, reason: str, last_job_id: uuid.UUID
) -> bool:
    """Disable a schedule whose runs keep failing and record why, with a `schedule_disabled`
    event on its last failed job. False when it was already disabled (nothing written)."""
    row = await conn.fetchrow(
        """
        UPDATE schedules SET enabled = false, next_fire_at = NULL, consecutive_failures = $2,
            disabled_reason = $3, disabled_at = now(), updated_at = now()
        WHERE name = $1 AND enabled
        RETURNING name
        """,
        name,
        failures,
        reason,
    )
    if row is None:
        return False
    await job_events_insert(
        conn, [(last_job_id, "schedule_disabled", None, None, {"schedule": name, "reason": reason})]
    )
    return True


async def schedule_failed_since(
    conn: ConnOrPool, after: tuple[datetime, uuid.UUID], limit: int
) -> list[asyncpg.Record]:
    """Schedule-fired jobs that failed for good after the (failed_at, id) watermark, oldest
    first: every terminal failure is copied to `dead_letter_jobs` (its id is the job id), so
    this walks `dead_letter_jobs_failed_idx` from the watermark, never the jobs table."""
    return await conn.fetch(
        """
        SELECT d.failed_at, d.id, j.schedule_name
        FROM dead_letter_jobs d JOIN jobs j ON j.id = d.id
        WHERE d.failed_at >= $1 AND (d.failed_at, d.id) > ($1, $2)
          AND j.schedule_name IS NOT NULL
        ORDER BY d.failed_at, d.id
        LIMIT $3
        """,
        after[0],
        after[1],
        limit,
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


async def schedule_get_owned(
    conn: ConnOrPool, saved_job_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    """The schedule a saved job's trigger owns, if it has one (schedules_saved_job_idx)."""
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM schedules WHERE saved_job_id = $1"
        + (" FOR UPDATE" if lock else ""),
        saved_job_id,
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


async def schedule_jobs_label(
    conn: Conn, job_ids: Sequence[uuid.UUID], event: str | None, tags: Sequence[str] | None
) -> None:
    """Stamp the schedule's `event` and `tags` on the jobs it just fired (same transaction,
    so no worker sees them unlabelled)."""
    if job_ids and (event is not None or tags is not None):
        await conn.execute(
            "UPDATE jobs SET event = $2, tags = $3 WHERE id = ANY($1::uuid[])",
            list(job_ids),
            event,
            None if tags is None else list(tags),
        )


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
    offset: int = 0,
) -> list[asyncpg.Record]:
    """A page of schedules by name: those after the name `after` (keyset paging), or from
    `offset` (page numbers)."""
    return await conn.fetch(
        f"""
        SELECT {COLUMNS} FROM schedules
        WHERE ($3::bool IS NULL OR enabled = $3) AND ($4::text IS NULL OR definition_key = $4)
          AND ($2::text IS NULL OR name > $2)
        ORDER BY name LIMIT $1 OFFSET $5
        """,
        limit,
        after,
        enabled,
        definition_key,
        offset,
    )


async def schedule_count_upto(
    conn: ConnOrPool, cap: int, *, enabled: bool | None, definition_key: str | None
) -> int:
    """How many schedules match `schedule_list`'s filters, counting at most `cap`."""
    count: int = await conn.fetchval(
        """
        SELECT count(*) FROM (SELECT 1 FROM schedules
            WHERE ($1::bool IS NULL OR enabled = $1) AND ($2::text IS NULL OR definition_key = $2)
            LIMIT $3) t
        """,
        enabled,
        definition_key,
        cap,
    )
    return count


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


async def schedule_now(conn: ConnOrPool) -> datetime:
    """The database clock (the failure watch starts its watermark from it)."""
    now: datetime = await conn.fetchval("SELECT now()")
    return now


async def schedule_runs_latest_finished(
    conn: ConnOrPool, name: str, limit: int, created_after: datetime | None
) -> list[asyncpg.Record]:
    """The schedule's latest finished runs, newest fire first (walks jobs_schedule_fire_idx
    backwards; unfinished runs are skipped). Runs created before `created_after` (the last
    time the schedule was disabled) no longer count."""
    return await conn.fetch(
        f"""
        SELECT {RUN_COLUMNS} FROM jobs
        WHERE schedule_name = $1 AND scheduled_for IS NOT NULL
          AND status = ANY($3::text[])
          AND ($4::timestamptz IS NULL OR created_at > $4)
        ORDER BY scheduled_for DESC
        LIMIT $2
        """,
        name,
        limit,
        list(TERMINAL_STATUSES),
        created_after,
    )


async def schedule_runs_list(
    conn: ConnOrPool,
    name: str,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
    statuses: Sequence[str] = (),
) -> list[asyncpg.Record]:
    """A page of the schedule's jobs, newest fire first (scheduled_for DESC, id DESC), after
    the (scheduled_for, id) of the previous page's last row."""
    return await conn.fetch(
        f"""
        SELECT {RUN_COLUMNS} FROM jobs
        WHERE schedule_name = $1 AND scheduled_for IS NOT NULL
          AND (cardinality($3::text[]) = 0 OR status = ANY($3::text[]))
          AND ($4::timestamptz IS NULL OR (scheduled_for, id) < ($4, $5::uuid))
        ORDER BY scheduled_for DESC, id DESC
        LIMIT $2
        """,
        name,
        limit,
        list(statuses),
        None if after is None else after[0],
        None if after is None else after[1],
    )


async def schedule_set_failures(conn: Conn, name: str, failures: int) -> None:
    """Record the current failure streak (shown as consecutiveFailures)."""
    await conn.execute(
        "UPDATE schedules SET consecutive_failures = $2 WHERE name = $1"
        " AND consecutive_failures <> $2",
        name,
        failures,
    )


async def schedule_update(
    conn: ConnOrPool, name: str, *, mark_disabled: bool = False, **values: Any
) -> asyncpg.Record | None:
    """Set the given writable columns (None is a value: it clears the column);
    `mark_disabled` sets `disabled_at` to now (the schedule is being switched off)."""
    cols = [c for c in WRITABLE if c in values]
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(cols, start=2))
    if mark_disabled:
        sets += (", " if sets else "") + "disabled_at = now()"
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


async def schedules_naming(
    conn: ConnOrPool, refs: Sequence[tuple[str, str]], value: str, limit: int
) -> list[asyncpg.Record]:
    """(name, total) of the schedules, other than saved jobs' triggers (their saved job names
    it), whose params name `value` in a param of their definition that names a stored thing:
    `refs` holds (definition key, param) pairs. The first `limit` by name; `total` counts
    them all."""
    if not refs:
        return []
    return await conn.fetch(
        """
        SELECT s.name, count(*) OVER () AS total
        FROM schedules s
        WHERE EXISTS (
            SELECT 1 FROM unnest($1::text[], $2::text[]) AS r(key, param)
            WHERE s.definition_key = r.key AND s.params ->> r.param = $3
        ) AND s.saved_job_id IS NULL
        ORDER BY s.name
        LIMIT $4
        """,
        [k for k, _ in refs],
        [p for _, p in refs],
        value,
        limit,
    )
