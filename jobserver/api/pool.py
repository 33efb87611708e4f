"""The API's connection pool: no eager connection (the API starts even while the database is
down, and `/readyz` answers 503 until it is back), no reset query on release (one round
trip per request instead of two), and every acquire bounded by DB_ACQUIRE_TIMEOUT_MS: a request
that finds every connection busy that long is a 503 `database_busy`, never a hang."""

from __future__ import annotations

from typing import Any

import asyncpg

from jobserver.config import Settings
from jobserver.db.pool import create_pool


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Handlers leave no session state (LISTEN, advisory locks, SET) on pooled connections,
    so the per-release RESET round trip asyncpg does by default is skipped."""


async def create_api_pool(url: str, settings: Settings, name: str | None = None) -> asyncpg.Pool:
    """The pool; `name` is its sessions' application_name (pg_stat_activity shows it)."""
    extra: dict[str, Any] = {}
    if name is not None:
        extra["server_settings"] = {"application_name": name}
    return await create_pool(
        url,
        settings,
        min_size=0,
        acquire_timeout=settings.db_acquire_timeout_ms / 1000,
        reset=_no_reset,
        **extra,
    )
