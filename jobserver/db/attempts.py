"""SQL for `job_attempts` as clients read them: one row per run of a job.

Stored rows record the runs that did not succeed (failed, timed_out, cancelled, lease_expired,
handed_back), written by the worker (`job_runs.py`) and the rescuer (`maintenance.py`). The run
recorded in the `jobs` row itself (attempt, worker_id, started_at, finished_at, status) is the
current one: while running, and once it succeeded, it has no stored row and is derived here. A
stored `handed_back` row whose attempt number was claimed again is superseded by that run.
"""

from __future__ import annotations

import uuid

import asyncpg

from jobserver.db.conn import ConnOrPool

# Shared with db/events.py: the stored rows that still count, and the derived current run.
ATTEMPTS_CTE = """
j AS (
    SELECT id, attempt, status, worker_id, started_at, finished_at, last_error, created_at,
        schedule_name, scheduled_for
    FROM jobs WHERE id = $1
), att AS (
    SELECT a.job_id, a.attempt, a.worker_id, a.started_at, a.finished_at, a.outcome, a.error,
        a.traceback, a.result, a.duration_ms,
        (a.outcome = 'handed_back' AND a.attempt = j.attempt AND j.status <> 'queued')
            AS superseded
    FROM job_attempts a, j WHERE a.job_id = $1
), cur AS (
    SELECT j.id AS job_id, j.attempt, j.worker_id, j.started_at,
        CASE WHEN j.status IN ('running', 'cancelling') THEN NULL ELSE j.finished_at END
            AS finished_at,
        CASE WHEN j.status IN ('running', 'cancelling') THEN 'running' ELSE j.status END
            AS outcome,
        CASE WHEN j.status = 'failed' THEN j.last_error END AS error,
        NULL::text AS traceback, NULL::jsonb AS result,
        CASE WHEN j.status IN ('running', 'cancelling') THEN NULL
            ELSE extract(epoch FROM j.finished_at - j.started_at)::float8 * 1000.0 END
            AS duration_ms
    FROM j
    WHERE j.attempt > 0 AND j.started_at IS NOT NULL
      AND j.status IN ('running', 'cancelling', 'succeeded', 'failed', 'cancelled')
      AND NOT EXISTS (SELECT 1 FROM att WHERE att.attempt = j.attempt AND NOT att.superseded)
)
"""


async def attempt_list(
    conn: ConnOrPool,
    job_id: uuid.UUID,
    *,
    after: int = 0,
    limit: int | None = None,
) -> list[asyncpg.Record]:
    """Runs of a job in attempt order (stored rows plus the derived current run): those after
    attempt `after`, at most `limit` (all when None)."""
    return await conn.fetch(
        f"""
        WITH {ATTEMPTS_CTE}
        SELECT * FROM (
            SELECT job_id, attempt, worker_id, started_at, finished_at, outcome, error,
                traceback, result, duration_ms
            FROM att WHERE NOT superseded
            UNION ALL
            SELECT job_id, attempt, worker_id, started_at, finished_at, outcome, error,
                traceback, result, duration_ms
            FROM cur
        ) runs
        WHERE attempt > $2
        ORDER BY attempt
        LIMIT $3
        """,
        job_id,
        after,
        limit,
    )
