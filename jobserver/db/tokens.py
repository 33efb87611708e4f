"""SQL for `api_tokens`: hashed bearer tokens with scopes and an owner."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from jobserver.db.conn import ConnOrPool


async def token_get_by_hash(conn: ConnOrPool, token_hash: str) -> asyncpg.Record | None:
    """The token row for a hash, revoked or not (callers check `revoked_at`)."""
    return await conn.fetchrow(
        "SELECT id, name, scopes, owner, revoked_at FROM api_tokens WHERE token_hash = $1",
        token_hash,
    )


async def token_insert(
    conn: ConnOrPool, name: str, token_hash: str, prefix: str, scopes: Sequence[str], owner: str
) -> uuid.UUID:
    token_id: uuid.UUID = await conn.fetchval(
        """
        INSERT INTO api_tokens (name, token_hash, prefix, scopes, owner)
        VALUES ($1, $2, $3, $4, $5) RETURNING id
        """,
        name,
        token_hash,
        prefix,
        list(scopes),
        owner,
    )
    return token_id


async def token_list(conn: ConnOrPool) -> list[asyncpg.Record]:
    """Every token without its hash: name, prefix, scopes, owner and timestamps."""
    return await conn.fetch(
        """
        SELECT id, name, prefix, scopes, owner, created_at, last_used_at, revoked_at
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
