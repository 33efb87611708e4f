"""SQL for `scheduler_leader`: the lease row that makes one scheduler process the leader.

One row per election name. A candidate takes the row when it is free or its lease expired, and
the holder extends it; both in one statement, judged by the database clock (`now()`), so hosts'
clocks never need to agree.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from jobserver.db.conn import ConnOrPool


async def leader_acquire_or_renew(
    conn: ConnOrPool, name: str, holder: str, lease_seconds: float
) -> datetime | None:
    """Take or extend the lease; returns its new expiry when `holder` is leader, else None."""
    expires: datetime | None = await conn.fetchval(
        """
        INSERT INTO scheduler_leader AS l (name, holder, acquired_at, lease_expires_at)
        VALUES ($1, $2, now(), now() + make_interval(secs => $3))
        ON CONFLICT (name) DO UPDATE SET
            holder = EXCLUDED.holder,
            acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at
                ELSE now() END,
            lease_expires_at = EXCLUDED.lease_expires_at
        WHERE l.holder = EXCLUDED.holder OR l.lease_expires_at < now()
        RETURNING lease_expires_at
        """,
        name,
        holder,
        lease_seconds,
    )
    return expires


async def leader_get(conn: ConnOrPool, name: str) -> asyncpg.Record | None:
    """The current row (holder, acquired_at, lease_expires_at, expired), expired or not."""
    return await conn.fetchrow(
        """
        SELECT name, holder, acquired_at, lease_expires_at, lease_expires_at < now() AS expired
        FROM scheduler_leader WHERE name = $1
        """,
        name,
    )


async def leader_release(
    conn: ConnOrPool, name: str, holder: str, channel: str | None = None
) -> bool:
    """Give the lease up (graceful shutdown); NOTIFY `channel` so followers take over at once."""
    released = await conn.fetchval(
        """
        WITH d AS (DELETE FROM scheduler_leader WHERE name = $1 AND holder = $2 RETURNING name)
        SELECT count(*) FROM d
        """,
        name,
        holder,
    )
    if released and channel:
        await conn.execute("SELECT pg_notify($1, $2)", channel, name)
    return bool(released)
