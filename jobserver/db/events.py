"""SQL for `job_events`: the lifecycle history of each job.

Events that only restate a row are not stored: `created` comes from jobs.created_at (for a job
fired by a schedule, with the schedule and fire time as details), one
`started` per run from its attempt (stored `job_attempts` rows and the run in the `jobs` row,
see db/attempts.py), and `succeeded` from jobs.finished_at of a succeeded job. Everything else
(progress, custom, cancel_requested, cancelled, retry_scheduled, timed_out, failed,
dead_lettered, lease_expired, rescued, expired, redriven, retried, handed_back, hook_failed,
events_truncated, and `ready`: a waiting job's last parent ended, see db/dependencies.py) is a row
written in the transaction of the transition it records. A stored `created` row (schedule fires
used to write one) is ignored, so no job shows two.

`job_events_list` merges both in time order (ties: created, started, stored rows in insertion
order, succeeded) and numbers them 1, 2, ... per job: an event's id is its position in the
job's history, which only grows at the end, so `after` paginates.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from jobserver.db.attempts import ATTEMPTS_CTE
from jobserver.db.conn import Conn, ConnOrPool

# (job_id, event, worker_id, attempt, details)
EventRow = tuple[uuid.UUID, str, str | None, int | None, dict[str, Any] | None]


async def job_events_insert(conn: Conn, rows: Sequence[EventRow]) -> None:
    """Insert many events in one statement (one round trip whatever the batch size)."""
    if not rows:
        return
    job_ids, names, worker_ids, attempts, details = zip(*rows, strict=True)
    await conn.execute(
        """
        INSERT INTO job_events (job_id, event, worker_id, attempt, details)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::jsonb[])
        """,
        list(job_ids),
        list(names),
        list(worker_ids),
        list(attempts),
        list(details),
    )


async def job_events_stored(conn: ConnOrPool, job_id: uuid.UUID) -> tuple[int, bool]:
    """(custom and progress events stored for the job, whether an `events_truncated` is): what
    the worker's per-job event cap starts an attempt from (on job_events_job_idx)."""
    row = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE event IN ('custom', 'progress')),
            coalesce(bool_or(event = 'events_truncated'), false)
        FROM job_events WHERE job_id = $1
        """,
        job_id,
    )
    assert row is not None
    return int(row[0]), bool(row[1])


_LIST = f"""
WITH {ATTEMPTS_CTE}, ev AS (
    SELECT id AS sid, event, at, worker_id, attempt, details FROM job_events
    WHERE job_id = $1 AND event <> 'created'
), runs AS (
    SELECT attempt, worker_id, started_at FROM att
    UNION ALL
    SELECT attempt, worker_id, started_at FROM cur
), history AS (
    SELECT 0 AS ord, 0::bigint AS sid, 'created' AS event, j.created_at AS at,
        NULL::text AS worker_id, NULL::int AS attempt,
        CASE WHEN j.schedule_name IS NOT NULL THEN jsonb_build_object(
            'schedule', j.schedule_name, 'scheduledFor', j.scheduled_for) END AS details
    FROM j
    UNION ALL
    SELECT 1, 0, 'started', r.started_at, r.worker_id, r.attempt, NULL
    FROM runs r
    UNION ALL
    SELECT 2, sid, event, at, worker_id, attempt, details FROM ev
    UNION ALL
    SELECT 3, 0, 'succeeded', j.finished_at, j.worker_id, j.attempt, NULL
    FROM j WHERE j.status = 'succeeded' AND j.finished_at IS NOT NULL
), numbered AS (
    SELECT row_number() OVER (ORDER BY at, ord, sid, attempt) AS id, event, at, worker_id,
        attempt, details
    FROM history
)
SELECT id, $1::uuid AS job_id, event, at, worker_id, attempt, details FROM numbered
WHERE id > $2 ORDER BY id LIMIT $3
"""


async def job_events_list(
    conn: ConnOrPool, job_id: uuid.UUID, limit: int = 1000, after_id: int = 0
) -> list[asyncpg.Record]:
    """A page of the job's full history (stored and derived events), oldest first."""
    return await conn.fetch(_LIST, job_id, after_id, limit)
