"""SQL for `job_events`: the lifecycle history of each job, written in the transaction that
makes the transition it records."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

# (job_id, event, worker_id, attempt, details)
EventRow = tuple[uuid.UUID, str, str | None, int | None, dict[str, Any] | None]


async def job_events_insert(conn: asyncpg.Connection, rows: Sequence[EventRow]) -> None:
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


async def job_events_list(
    conn: asyncpg.Connection | asyncpg.Pool, job_id: uuid.UUID, limit: int = 1000, after_id: int = 0
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT id, job_id, event, at, worker_id, attempt, details FROM job_events
        WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3
        """,
        job_id,
        after_id,
        limit,
    )
