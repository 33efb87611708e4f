"""SQL for `paused_queues`: the durable, fleet-wide pause of a queue.

A queue with a row here is claimed by no worker, including workers started later, until the
row is deleted (resume). The claim never reads this table: each worker keeps the set in memory
(read after its LISTEN session connects, and again when the control channel says it changed)
and passes it to the claim (see jobserver/worker/gate.py). `paused_queue_list` is the listing
other routes (a queue overview) may join with their own figures.
"""

from __future__ import annotations

import asyncpg

from jobserver.db.conn import ConnOrPool

COLUMNS = "queue, paused_at, paused_by, reason"


async def paused_queue_pause(
    conn: ConnOrPool, queue: str, paused_by: str | None, reason: str | None
) -> tuple[asyncpg.Record, bool]:
    """Pause `queue`; returns its row and whether this call paused it (False: it already was,
    and its row is kept as it was)."""
    row = await conn.fetchrow(
        f"""
        WITH new AS (
            INSERT INTO paused_queues (queue, paused_by, reason) VALUES ($1, $2, $3)
            ON CONFLICT (queue) DO NOTHING
            RETURNING {COLUMNS}
        )
        SELECT {COLUMNS}, true AS created FROM new
        UNION ALL
        SELECT {COLUMNS}, false FROM paused_queues
        WHERE queue = $1 AND NOT EXISTS (SELECT 1 FROM new)
        """,
        queue,
        paused_by,
        reason,
    )
    assert row is not None
    return row, bool(row["created"])


async def paused_queue_resume(conn: ConnOrPool, queue: str) -> asyncpg.Record | None:
    """Resume `queue`; returns the row it had (None: it was not paused)."""
    return await conn.fetchrow(
        f"DELETE FROM paused_queues WHERE queue = $1 RETURNING {COLUMNS}", queue
    )


async def paused_queue_list(
    conn: ConnOrPool, *, limit: int | None = None, after: str | None = None
) -> list[asyncpg.Record]:
    """The paused queues (queue, paused_at, paused_by, reason) by name: all of them, or a
    page of `limit` after the queue `after` (keyset paging)."""
    return await conn.fetch(
        f"SELECT {COLUMNS} FROM paused_queues WHERE $1::text IS NULL OR queue > $1"
        " ORDER BY queue LIMIT $2",
        after,
        limit,
    )


async def paused_queue_names(conn: ConnOrPool) -> list[str]:
    """The names of the paused queues (what a worker keeps in memory)."""
    return [r[0] for r in await conn.fetch("SELECT queue FROM paused_queues ORDER BY queue")]
