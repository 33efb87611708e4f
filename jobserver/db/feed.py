"""SQL for the job feed (migration 0019): which jobs changed, for GET /v1/stream.

The statements that change a job's status or progress end with `announce(...)` over the ids
they changed: while some API process has stream subscribers (a live row in
`job_feed_readers`) it sends those ids on FEED_CHANNEL, delivered at commit; otherwise it costs
one probe of that (empty) table. The API's one LISTEN session per process reads the announced
jobs (`feed_jobs`) and tells each subscriber what it may see.

- `announce(ids_sql)`: the SQL expression to put in a statement
- `feed_reader_renew` / `feed_reader_drop`: an API process starts, keeps or stops the feed
- `feed_jobs`: the announced jobs' current state, in one read
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from jobserver.db.conn import ConnOrPool

_LIVE_READER = "EXISTS (SELECT FROM job_feed_readers WHERE expires_at > now())"


def announce(ids_sql: str) -> str:
    """A scalar SQL expression that announces the jobs `ids_sql` (a SELECT of job ids) on the
    feed when some API reads it, and is NULL otherwise: the ids are not even gathered then."""
    return f"(SELECT job_feed(ARRAY({ids_sql})) WHERE {_LIVE_READER})"


async def feed_reader_renew(conn: ConnOrPool, reader: str, seconds: float) -> None:
    """Mark `reader` (an API process) as streaming for `seconds`; readers gone for an hour are
    removed on the way (an API killed without its drop)."""
    await conn.execute(
        """
        WITH old AS (
            DELETE FROM job_feed_readers WHERE expires_at < now() - interval '1 hour'
        )
        INSERT INTO job_feed_readers (reader, expires_at)
        VALUES ($1, now() + make_interval(secs => $2))
        ON CONFLICT (reader) DO UPDATE SET expires_at = EXCLUDED.expires_at
        """,
        reader,
        float(seconds),
    )


async def feed_reader_drop(conn: ConnOrPool, reader: str) -> None:
    """`reader` has no subscribers left: the statements stop announcing (unless others read)."""
    await conn.execute("DELETE FROM job_feed_readers WHERE reader = $1", reader)


async def feed_jobs(conn: ConnOrPool, ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    """(id, owner, queue, status, progress, attempt, definition_key, definition_version,
    updated_at) of the jobs `ids` that still exist."""
    return await conn.fetch(
        """
        SELECT id, owner, queue, status, progress, attempt, definition_key,
            definition_version, updated_at
        FROM jobs WHERE id = ANY($1::uuid[])
        """,
        list(ids),
    )
