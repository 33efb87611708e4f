"""SQL for `dead_letter_jobs`: jobs that used up their attempts, kept with their full history."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from jobserver.db.conn import Conn, ConnOrPool


async def dlq_insert_from_jobs(conn: Conn, job_ids: Sequence[uuid.UUID]) -> int:
    """Copy failed jobs (and their attempt history) into the DLQ.

    Call it inside the transaction that sets those jobs `failed`, so a job is never failed
    without its DLQ row. Returns the number of rows copied.
    """
    if not job_ids:
        return 0
    result = await conn.execute(
        """
        INSERT INTO dead_letter_jobs (id, definition_key, definition_version, queue, params, owner,
            priority, attempts, max_attempts, last_error, history, created_at, failed_at)
        SELECT j.id, j.definition_key, j.definition_version, j.queue, j.params, j.owner,
            j.priority, j.attempt, j.max_attempts, j.last_error,
            COALESCE((SELECT jsonb_agg(jsonb_build_object(
                    'attempt', a.attempt, 'workerId', a.worker_id, 'startedAt', a.started_at,
                    'finishedAt', a.finished_at, 'outcome', a.outcome, 'error', a.error,
                    'traceback', a.traceback, 'durationMs', a.duration_ms) ORDER BY a.attempt)
                FROM job_attempts a WHERE a.job_id = j.id), '[]'::jsonb),
            j.created_at, COALESCE(j.finished_at, now())
        FROM jobs j
        WHERE j.id = ANY($1::uuid[]) AND j.status = 'failed'
        ON CONFLICT (id) DO UPDATE SET attempts = EXCLUDED.attempts,
            last_error = EXCLUDED.last_error, history = EXCLUDED.history,
            failed_at = EXCLUDED.failed_at, redriven_at = NULL, redriven_job_id = NULL
        """,
        list(job_ids),
    )
    return int(result.split()[-1])


DLQ_COLUMNS = (
    "id, definition_key, definition_version, queue, params, owner, priority, attempts,"
    " max_attempts, last_error, history, created_at, failed_at, redriven_at, redriven_job_id"
)


async def dlq_count(conn: ConnOrPool, *, waiting_only: bool = True) -> int:
    """DLQ size (rows not redriven yet, unless `waiting_only` is False)."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM dead_letter_jobs WHERE NOT $1 OR redriven_at IS NULL",
            waiting_only,
        )
    )


async def dlq_delete(conn: ConnOrPool, dlq_id: uuid.UUID) -> bool:
    """Discard a DLQ row (the failed job itself stays until the pruner's retention)."""
    result = await conn.execute("DELETE FROM dead_letter_jobs WHERE id = $1", dlq_id)
    return result.endswith(" 1")


async def dlq_get(
    conn: ConnOrPool, dlq_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {DLQ_COLUMNS} FROM dead_letter_jobs WHERE id = $1"
        + (" FOR UPDATE" if lock else ""),
        dlq_id,
    )


async def dlq_list(
    conn: ConnOrPool,
    *,
    definition_key: str | None = None,
    redriven: bool | None = None,
    limit: int = 100,
    after: tuple[datetime, uuid.UUID] | None = None,
    offset: int = 0,
) -> list[asyncpg.Record]:
    """A page of DLQ rows, newest failure first: those after `after` = (failed_at, id) of
    the previous page's last row (keyset paging on dead_letter_jobs_failed_idx), skipping
    `offset` rows (page numbers; the API bounds it)."""
    return await conn.fetch(
        f"""
        SELECT {DLQ_COLUMNS} FROM dead_letter_jobs
        WHERE ($1::text IS NULL OR definition_key = $1)
          AND ($2::bool IS NULL OR (redriven_at IS NOT NULL) = $2)
          AND ($4::timestamptz IS NULL OR (failed_at, id) < ($4, $5::uuid))
        ORDER BY failed_at DESC, id DESC LIMIT $3 OFFSET $6
        """,
        definition_key,
        redriven,
        limit,
        after[0] if after else None,
        after[1] if after else None,
        offset,
    )


async def dlq_count_upto(
    conn: ConnOrPool, cap: int, *, definition_key: str | None, redriven: bool | None
) -> int:
    """How many DLQ rows match `dlq_list`'s filters, counting at most `cap`."""
    count: int = await conn.fetchval(
        """
        SELECT count(*) FROM (SELECT 1 FROM dead_letter_jobs
            WHERE ($1::text IS NULL OR definition_key = $1)
              AND ($2::bool IS NULL OR (redriven_at IS NOT NULL) = $2)
            LIMIT $3) t
        """,
        definition_key,
        redriven,
        cap,
    )
    return count


async def dlq_mark_redriven(conn: Conn, dlq_id: uuid.UUID, new_job_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE dead_letter_jobs SET redriven_at = now(), redriven_job_id = $2 WHERE id = $1",
        dlq_id,
        new_job_id,
    )


async def dlq_original_exists(conn: Conn, job_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM jobs WHERE id = $1", job_id))
