"""SQL for `workers`: each worker process records itself for the runners API and health checks.

Status: active (claiming) → stopping (SIGTERM received) → stopped; the scheduler marks a
worker whose `last_seen_at` is too old `gone`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from jobserver.db.conn import ConnOrPool


async def worker_register(
    conn: ConnOrPool,
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


async def worker_heartbeat(conn: ConnOrPool, worker_id: str, running: int) -> None:
    """Record that the worker is alive and how many jobs it runs."""
    await conn.execute(
        "UPDATE workers SET last_seen_at = now(), running = $2 WHERE id = $1", worker_id, running
    )


async def worker_set_status(conn: ConnOrPool, worker_id: str, status: str) -> None:
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


async def worker_get(conn: ConnOrPool, worker_id: str) -> asyncpg.Record | None:
    """One worker row with `held` (see `worker_list`)."""
    return await conn.fetchrow(
        f"SELECT w.*, {_HELD} AS held FROM workers w WHERE w.id = $1", worker_id
    )


WORKER_STATUSES = ("active", "stopping", "stopped", "gone")

# The jobs a worker holds right now (running, cancelling or in its local buffer).
_HELD = """(SELECT count(*) FROM jobs j
    WHERE j.status IN ('running', 'cancelling') AND j.worker_id = w.id)"""


async def worker_list(
    conn: ConnOrPool,
    *,
    statuses: Sequence[str] = (),
    limit: int = 100,
    after: tuple[bool, datetime, str] | None = None,
    queue: str | None = None,
) -> list[asyncpg.Record]:
    """Worker rows, live ones first (active, stopping), then the most recently seen, with
    `held`: the jobs each holds right now (running, cancelling or buffered), counted on
    jobs_held_idx. `after` = (gone, last_seen_at, id) of the previous page's last row
    (keyset paging; `gone` is the row's `gone` column: not active nor stopping). `queue`:
    only the workers that take jobs of that queue (it is one of theirs, or they take all)."""
    return await conn.fetch(
        f"""
        SELECT * FROM (
            SELECT w.*, {_HELD} AS held, w.status NOT IN ('active', 'stopping') AS gone
            FROM workers w
            WHERE (cardinality($1::text[]) = 0 OR w.status = ANY($1::text[]))
              AND ($6::text IS NULL OR w.queues IS NULL OR $6 = ANY(w.queues))
        ) w
        WHERE $3::bool IS NULL OR w.gone > $3
            OR (w.gone = $3 AND (w.last_seen_at, w.id) < ($4::timestamptz, $5::text))
        ORDER BY w.gone, w.last_seen_at DESC, w.id DESC
        LIMIT $2
        """,
        list(statuses),
        limit,
        *(after if after else (None, None, None)),
        queue,
    )


LIVE_STATUSES = ("active", "stopping")


async def worker_live_ids(conn: ConnOrPool, queue: str | None = None) -> list[str]:
    """The ids of the live workers (active or stopping), those of `queue` only when given:
    the ones a command to every worker expects a reply from."""
    rows = await conn.fetch(
        """
        SELECT id FROM workers
        WHERE status IN ('active', 'stopping')
          AND ($1::text IS NULL OR queues IS NULL OR $1 = ANY(queues))
        ORDER BY id
        """,
        queue,
    )
    return [r[0] for r in rows]


async def worker_set_max_concurrency(conn: ConnOrPool, worker_id: str, n: int) -> None:
    """Record the worker's new concurrency (a reload changed it)."""
    await conn.execute("UPDATE workers SET max_concurrency = $2 WHERE id = $1", worker_id, n)
