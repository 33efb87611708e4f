"""SQL for `api_tokens`: hashed bearer tokens with scopes and an owner."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from jobserver.db.conn import ConnOrPool


async def token_get_by_hash(conn: ConnOrPool, token_hash: str) -> asyncpg.Record | None:
    """The token row for a hash, revoked or not (callers check `revoked_at`), with its owner's
    queued quota (`owner_max_queued`: the smallest max_queued of the owner's active tokens)."""
    return await conn.fetchrow(
        """
        SELECT t.id, t.name, t.scopes, t.owner, t.revoked_at,
            (SELECT min(o.max_queued) FROM api_tokens o
             WHERE o.owner = t.owner AND o.revoked_at IS NULL) AS owner_max_queued
        FROM api_tokens t WHERE t.token_hash = $1
        """,
        token_hash,
    )


async def token_insert(
    conn: ConnOrPool,
    name: str,
    token_hash: str,
    prefix: str,
    scopes: Sequence[str],
    owner: str,
    *,
    max_running: int | None = None,
    max_queued: int | None = None,
) -> uuid.UUID:
    token_id: uuid.UUID = await conn.fetchval(
        """
        INSERT INTO api_tokens (name, token_hash, prefix, scopes, owner, max_running, max_queued)
        VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
        """,
        name,
        token_hash,
        prefix,
        list(scopes),
        owner,
        max_running,
        max_queued,
    )
    return token_id


async def token_set_quotas(
    conn: ConnOrPool, name: str, max_running: int | None, max_queued: int | None
) -> bool:
    """Set (None: clear, back to the defaults) an active token's quotas; False when no active
    token has that name."""
    result = await conn.execute(
        "UPDATE api_tokens SET max_running = $2, max_queued = $3"
        " WHERE name = $1 AND revoked_at IS NULL",
        name,
        max_running,
        max_queued,
    )
    return result.endswith(" 1")


async def token_list(conn: ConnOrPool) -> list[asyncpg.Record]:
    """Every token without its hash: name, prefix, scopes, owner, quotas and timestamps."""
    return await conn.fetch(
        """
        SELECT id, name, prefix, scopes, owner, max_running, max_queued, created_at,
            last_used_at, revoked_at
        FROM api_tokens ORDER BY created_at, name
        """
    )


async def token_revoke(conn: ConnOrPool, name: str) -> bool:
    """Revoke by name; False when no active token has that name."""
    result = await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", name
    )
    return result.endswith(" 1")


async def token_touch(conn: ConnOrPool, token_ids: Sequence[uuid.UUID]) -> None:
    """Record use; the API calls it at most once a minute per token."""
    await conn.execute(
        "UPDATE api_tokens SET last_used_at = now() WHERE id = ANY($1::uuid[])", list(token_ids)
    )


async def token_quotas_exist(conn: ConnOrPool) -> bool:
    """Whether some active token gives its owner a running quota (claims then count them)."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM api_tokens"
            " WHERE max_running IS NOT NULL AND revoked_at IS NULL)"
        )
    )
