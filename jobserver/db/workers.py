"""SQL for `workers`: each worker process records itself for the runners API and health checks.

Status: active (claiming) → stopping (SIGTERM received) → stopped; the scheduler marks a
worker whose `last_seen_at` is too old `gone`.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def worker_register(
    conn: asyncpg.Connection | asyncpg.Pool,
    worker_id: str,
    host: str,
    pid: int,
    queues: Sequence[str] | None,
    definitions: Sequence[str],
    max_concurrency: int,
) -> None:
    """Insert or refresh this worker's row (a restarted worker may reuse its id)."""
    await conn.execute(
        """
        INSERT INTO workers (id, host, pid, queues, definitions, status, running,
            max_concurrency, started_at, last_seen_at, stopped_at)
        VALUES ($1, $2, $3, $4, $5, 'active', 0, $6, now(), now(), NULL)
        ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid,
            queues = EXCLUDED.queues, definitions = EXCLUDED.definitions, status = 'active',
            running = 0, max_concurrency = EXCLUDED.max_concurrency, started_at = now(),
            last_seen_at = now(), stopped_at = NULL
        """,
        worker_id,
        host,
        pid,
        list(queues) if queues else None,
        list(definitions),
        max_concurrency,
    )


async def worker_heartbeat(
    conn: asyncpg.Connection | asyncpg.Pool, worker_id: str, running: int
) -> None:
    """Record that the worker is alive and how many jobs it runs."""
    await conn.execute(
        "UPDATE workers SET last_seen_at = now(), running = $2 WHERE id = $1", worker_id, running
    )


async def worker_set_status(
    conn: asyncpg.Connection | asyncpg.Pool, worker_id: str, status: str
) -> None:
    """Move the worker to `stopping` or `stopped` (which also stamps `stopped_at`)."""
    await conn.execute(
        """
        UPDATE workers SET status = $2, last_seen_at = now(),
            running = CASE WHEN $2 = 'stopped' THEN 0 ELSE running END,
            stopped_at = CASE WHEN $2 = 'stopped' THEN now() ELSE stopped_at END
        WHERE id = $1
        """,
        worker_id,
        status,
    )


async def worker_get(
    conn: asyncpg.Connection | asyncpg.Pool, worker_id: str
) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM workers WHERE id = $1", worker_id)
