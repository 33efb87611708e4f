"""SQL for `job_definitions`: published by `register-definitions`, read by the API."""

from __future__ import annotations

from typing import Any

import asyncpg

from jobserver.db.conn import Conn, ConnOrPool, Queries

COLUMNS = (
    "key, version, default_max_attempts, timeout_seconds, concurrency_limit, params_schema,"
    " description, backoff, fingerprint, outbound, rate_limit, registered_at, updated_at"
)


async def definition_get(
    conn: ConnOrPool | Queries, key: str, version: int | None = None
) -> asyncpg.Record | None:
    """One definition; `version=None` means the latest registered version of `key`."""
    if version is None:
        return await conn.fetchrow(
            f"SELECT {COLUMNS} FROM job_definitions WHERE key = $1 ORDER BY version DESC LIMIT 1",
            key,
        )
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM job_definitions WHERE key = $1 AND version = $2", key, version
    )


async def definition_list(conn: ConnOrPool) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {COLUMNS} FROM job_definitions ORDER BY key, version")


async def definition_upsert(conn: Conn, meta: dict[str, Any]) -> str:
    """Insert a definition, or report how it compares with the stored one.

    Returns "created", "unchanged", or "conflict" (same key+version, different metadata: the
    stored row is kept, never silently overwritten).
    """
    row = await conn.fetchrow(
        """
        INSERT INTO job_definitions (key, version, default_max_attempts, timeout_seconds,
            concurrency_limit, params_schema, description, backoff, fingerprint, outbound,
            rate_limit)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (key, version) DO NOTHING
        RETURNING fingerprint
        """,
        meta["key"],
        meta["version"],
        meta["default_max_attempts"],
        meta["timeout_seconds"],
        meta["concurrency_limit"],
        meta["params_schema"],
        meta["description"],
        meta["backoff"],
        meta["fingerprint"],
        meta.get("outbound", False),
        meta.get("rate_limit"),
    )
    if row is not None:
        return "created"
    stored = await conn.fetchval(
        "SELECT fingerprint FROM job_definitions WHERE key = $1 AND version = $2",
        meta["key"],
        meta["version"],
    )
    return "unchanged" if stored == meta["fingerprint"] else "conflict"


async def definition_replace(conn: Conn, meta: dict[str, Any]) -> None:
    """Overwrite a definition's metadata (`register-definitions --force`)."""
    await conn.execute(
        """
        UPDATE job_definitions SET default_max_attempts = $3, timeout_seconds = $4,
            concurrency_limit = $5, params_schema = $6, description = $7, backoff = $8,
            fingerprint = $9, outbound = $10, rate_limit = $11, updated_at = now()
        WHERE key = $1 AND version = $2
        """,
        meta["key"],
        meta["version"],
        meta["default_max_attempts"],
        meta["timeout_seconds"],
        meta["concurrency_limit"],
        meta["params_schema"],
        meta["description"],
        meta["backoff"],
        meta["fingerprint"],
        meta.get("outbound", False),
        meta.get("rate_limit"),
    )
