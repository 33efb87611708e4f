"""The asyncpg connection pool every process uses, with JSON codecs set on each connection.

Options come from `Settings`: DB_POOL_MAX, DB_POOL_IDLE_TIMEOUT_MS (idle connections closed after),
DB_POOL_CONNECTION_TIMEOUT_MS (connect timeout). JSON and JSONB values go through the codec
(jobserver/codec.py): written with its strict encoder (NaN and infinities refused before they
reach the server, integers past 64 bits exact), read back as Python objects.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from jobserver.codec import dumps_stored, loads
from jobserver.config import Settings
from jobserver.db.urls import asyncpg_url

Pool = asyncpg.Pool
Connection = asyncpg.Connection


async def init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=dumps_stored, decoder=loads, schema="pg_catalog")


async def connect(url: str, **kwargs: Any) -> asyncpg.Connection:
    """One connection outside any pool (LISTEN sessions, admin work)."""
    conn: asyncpg.Connection = await asyncpg.connect(asyncpg_url(url), **kwargs)
    await init_connection(conn)
    return conn


async def create_pool(
    url: str, settings: Settings | None = None, *, min_size: int = 1, max_size: int | None = None
) -> asyncpg.Pool:
    s = settings or Settings()
    pool = await asyncpg.create_pool(
        asyncpg_url(url),
        min_size=min_size,
        max_size=max_size or s.db_pool_max,
        max_inactive_connection_lifetime=s.db_pool_idle_timeout_ms / 1000,
        timeout=s.db_pool_connection_timeout_ms / 1000,
        init=init_connection,
    )
    assert pool is not None
    return pool
