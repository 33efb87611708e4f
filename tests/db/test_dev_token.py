"""The dev token `jobserver up` creates: once, reused while valid, replaced when revoked."""

from __future__ import annotations

import asyncpg

from jobserver.auth import hash_token
from jobserver.cli.up import ensure_dev_token


async def test_dev_token_lifecycle(pool: asyncpg.Pool, database_url: str) -> None:
    first = await ensure_dev_token(database_url, None)
    assert first is not None
    row = await pool.fetchrow(
        "SELECT name, scopes, owner FROM api_tokens WHERE token_hash = $1", hash_token(first)
    )
    assert row is not None
    assert (row["name"], row["scopes"], row["owner"]) == ("dev", ["manage_jobs", "outbound"], "dev")

    assert await ensure_dev_token(database_url, first) == first

    await pool.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = 'dev'")
    second = await ensure_dev_token(database_url, first)
    assert second is not None and second != first
    names = sorted(r["name"] for r in await pool.fetch("SELECT name FROM api_tokens"))
    assert names[0] == "dev" and names[1].startswith("dev-") and len(names) == 2

    # A saved value that never existed (another database) is replaced too.
    third = await ensure_dev_token(database_url, "js_not_a_real_token")
    assert third not in (None, first, second)
