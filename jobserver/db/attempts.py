"""SQL for `job_attempts` as clients read them: one row per run of a job.

Rows are written by workers (claim, finish) in `job_runs.py` and by the rescuer; this module
only reads them.
"""

from __future__ import annotations

import uuid

import asyncpg


async def attempt_list(
    conn: asyncpg.Connection | asyncpg.Pool, job_id: uuid.UUID
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT job_id, attempt, worker_id, started_at, finished_at, outcome, error, traceback,
            result, duration_ms
        FROM job_attempts WHERE job_id = $1 ORDER BY attempt
        """,
        job_id,
    )
