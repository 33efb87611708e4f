"""The API's connection pool: no eager connection (the API starts even while the database is
down, and `/readyz` answers 503 until it is back) and no reset query on release (one round
trip per request instead of two)."""

from __future__ import annotations

import asyncpg

from jobserver.config import Settings
from jobserver.db.pool import init_connection
from jobserver.db.urls import asyncpg_url


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Handlers leave no session state (LISTEN, advisory locks, SET) on pooled connections,
    so the per-release RESET round trip asyncpg does by default is skipped."""


async def create_api_pool(url: str, settings: Settings) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        asyncpg_url(url),
        min_size=0,
        max_size=settings.db_pool_max,
        max_inactive_connection_lifetime=settings.db_pool_idle_timeout_ms / 1000,
        timeout=settings.db_pool_connection_timeout_ms / 1000,
        init=init_connection,
        reset=_no_reset,
    )
    assert pool is not None
    return pool
