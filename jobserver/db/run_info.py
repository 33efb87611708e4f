"""What a run of a templated job may name about itself: its job row's labels and schedule."""

from __future__ import annotations

import uuid

import asyncpg

from jobserver.db.conn import ConnOrPool

_RUN_INFO = """
SELECT queue, event, tags, created_at, schedule_name, scheduled_for, max_attempts,
    depends_on IS NOT NULL AS has_parents
FROM jobs WHERE id = $1
"""


async def job_run_info(conn: ConnOrPool, job_id: uuid.UUID) -> asyncpg.Record | None:
    """One primary-key read, made only by runs whose params name `job.` or `schedule.`."""
    row: asyncpg.Record | None = await conn.fetchrow(_RUN_INFO, job_id)
    return row
