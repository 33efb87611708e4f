"""SQL for `credentials`: stored SSH and SMTP credentials, their secrets sealed.

`secret` holds the sealed secret fields (`jobserver.credentials.crypto`) and `key_id` the key
that sealed them; every other column is plain. Only `credential_get_sealed` reads `secret`
(the worker, which unseals it); the API's reads and writes return the plain columns alone, so
no answer can carry the sealed bytes either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from jobserver.db.conn import Conn, ConnOrPool, Queries

COLUMNS = (
    "name, kind, username, host_keys, public_key, public_key_fingerprint, secret_fields,"
    " options, key_id, created_at, updated_at, created_by, updated_by"
)


async def credential_delete(conn: ConnOrPool, name: str) -> bool:
    result = await conn.execute("DELETE FROM credentials WHERE name = $1", name)
    return result.endswith(" 1")


async def credential_lock(conn: Conn, name: str) -> str | None:
    """The kind of credential `name`, its row locked until the transaction ends (a delete
    that first checks who names it); None: no such credential."""
    kind: str | None = await conn.fetchval(
        "SELECT kind FROM credentials WHERE name = $1 FOR UPDATE", name
    )
    return kind


async def credential_get(conn: ConnOrPool, name: str) -> asyncpg.Record | None:
    """The plain columns of one credential."""
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM credentials WHERE name = $1", name)


async def credential_get_sealed(conn: ConnOrPool, name: str) -> asyncpg.Record | None:
    """One credential with its sealed secret and key id (the worker unseals it)."""
    return await conn.fetchrow(f"SELECT {COLUMNS}, secret FROM credentials WHERE name = $1", name)


async def credential_insert(
    conn: ConnOrPool,
    name: str,
    *,
    kind: str,
    username: str,
    host_keys: list[dict[str, Any]],
    public_key: str | None,
    public_key_fingerprint: str | None,
    secret_fields: list[str],
    options: dict[str, Any],
    key_id: str,
    secret: bytes,
    by: str | None,
) -> asyncpg.Record:
    """Insert a credential; a taken name raises `asyncpg.UniqueViolationError`."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO credentials (name, kind, username, host_keys, public_key,
            public_key_fingerprint, secret_fields, options, key_id, secret, created_by,
            updated_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
        RETURNING {COLUMNS}
        """,
        name,
        kind,
        username,
        host_keys,
        public_key,
        public_key_fingerprint,
        secret_fields,
        options,
        key_id,
        secret,
        by,
    )
    assert row is not None  # INSERT ... RETURNING yields its row or raises
    return row


async def credential_kinds(conn: ConnOrPool | Queries, names: Sequence[str]) -> dict[str, str]:
    """name -> kind of the credentials among `names` that exist (submission checks)."""
    rows = await conn.fetch(
        "SELECT name, kind FROM credentials WHERE name = ANY($1::text[])", list(names)
    )
    return {r["name"]: r["kind"] for r in rows}


async def credential_list(
    conn: ConnOrPool, *, limit: int = 100, after: str | None = None, kind: str | None = None
) -> list[asyncpg.Record]:
    """A page of credentials by name, after the name `after` (keyset paging)."""
    return await conn.fetch(
        f"""
        SELECT {COLUMNS} FROM credentials
        WHERE ($2::text IS NULL OR name > $2) AND ($3::text IS NULL OR kind = $3)
        ORDER BY name LIMIT $1
        """,
        limit,
        after,
        kind,
    )


async def credential_replace(
    conn: ConnOrPool,
    name: str,
    *,
    kind: str,
    username: str,
    host_keys: list[dict[str, Any]],
    public_key: str | None,
    public_key_fingerprint: str | None,
    secret_fields: list[str],
    options: dict[str, Any],
    key_id: str,
    secret: bytes,
    by: str | None,
) -> asyncpg.Record | None:
    """Replace everything of a credential but its name and kind (a rotation); None when there
    is no credential of that name and kind (the secret was sealed for that kind)."""
    return await conn.fetchrow(
        f"""
        UPDATE credentials SET username = $2, host_keys = $3, public_key = $4,
            public_key_fingerprint = $5, secret_fields = $6, options = $7, key_id = $8,
            secret = $9, updated_by = $10, updated_at = now()
        WHERE name = $1 AND kind = $11
        RETURNING {COLUMNS}
        """,
        name,
        username,
        host_keys,
        public_key,
        public_key_fingerprint,
        secret_fields,
        options,
        key_id,
        secret,
        by,
        kind,
    )
