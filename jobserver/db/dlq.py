"""SQL for `dead_letter_jobs`: jobs that used up their attempts, kept with their full history."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg


async def dlq_insert_from_jobs(conn: asyncpg.Connection, job_ids: Sequence[uuid.UUID]) -> int:
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
