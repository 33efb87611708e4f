"""The asyncpg connection pool every process uses, with JSON codecs set on each connection.

Options come from `Settings`: DB_POOL_MAX, DB_POOL_IDLE_TIMEOUT_MS (idle connections closed after),
DB_POOL_CONNECTION_TIMEOUT_MS (connect timeout). A pool made with `acquire_timeout` (the API's,
from DB_ACQUIRE_TIMEOUT_MS) bounds every wait for a connection, `pool.fetch(...)` and the other
shortcuts included: past it, `PoolBusy` is raised instead of waiting on (the API answers 503
`database_busy`). Pools without one wait as asyncpg does (workers, scheduler).

Releasing a connection costs no round trip: asyncpg's default reset sends `RESET ALL; UNLISTEN *;
pg_advisory_unlock_all(); CLOSE ALL` on every release, which roughly doubled the round trips of
short work (an API request, a worker's event write). Pooled connections carry no session state
to undo: every SET is `SET LOCAL`, every advisory lock a transaction lock, LISTEN lives on its
own connections, no cursor outlives its transaction (`tests/unit/test_session_state.py` keeps
it so). asyncpg still rolls back a transaction left open and drops listeners on release.

JSON and JSONB values go through the codec (jobserver/codec.py): written with its strict
encoder (NaN and infinities refused before they reach the server, integers past 64 bits exact),
read back as Python objects.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from jobserver.codec import dumps_stored, loads
from jobserver.config import Settings
from jobserver.db.urls import asyncpg_url

Pool = asyncpg.Pool
Connection = asyncpg.Connection


class PoolBusy(Exception):
    """Every connection of the pool stayed in use for the whole acquire timeout."""


class TimedPool(asyncpg.Pool):
    """An asyncpg pool whose every acquire waits at most `acquire_timeout` seconds."""

    acquire_timeout: float | None = None

    async def _acquire(self, timeout: float | None) -> asyncpg.pool.PoolConnectionProxy:  # noqa: ASYNC109
        # asyncpg routes acquire() and every pool shortcut (fetch, execute, ...) through here.
        limit = timeout if timeout is not None else self.acquire_timeout
        if limit is None:
            return await super()._acquire(None)  # type: ignore[misc, no-any-return]
        try:
            async with asyncio.timeout(limit) as window:
                return await super()._acquire(None)  # type: ignore[misc, no-any-return]
        except TimeoutError as e:
            if window.expired():
                raise PoolBusy(f"no database connection free within {limit:g} s") from None
            raise e


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pools' reset: nothing to send (see the module docstring)."""


async def init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=dumps_stored, decoder=loads, schema="pg_catalog")


async def connect(url: str, **kwargs: Any) -> asyncpg.Connection:
    """One connection outside any pool (LISTEN sessions, admin work)."""
    conn: asyncpg.Connection = await asyncpg.connect(asyncpg_url(url), **kwargs)
    await init_connection(conn)
    return conn


async def create_pool(
    url: str,
    settings: Settings | None = None,
    *,
    min_size: int = 1,
    max_size: int | None = None,
    acquire_timeout: float | None = None,
    **options: Any,
) -> TimedPool:
    """A started pool; `acquire_timeout` (seconds) bounds every wait for a connection."""
    s = settings or Settings()
    pool = TimedPool(
        asyncpg_url(url),
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        min_size=min_size,
        max_size=max_size or s.db_pool_max,
        max_queries=50000,
        max_inactive_connection_lifetime=s.db_pool_idle_timeout_ms / 1000,
        timeout=s.db_pool_connection_timeout_ms / 1000,
        init=options.pop("init", init_connection),
        reset=options.pop("reset", keep_session),
        loop=None,
        **options,
    )
    pool.acquire_timeout = acquire_timeout
    await pool
    return pool
