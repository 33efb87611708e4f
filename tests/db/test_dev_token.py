"""The dev token `jobserver up` creates: once, reused while valid, never silently re-minted after
a revoke (only when asked with `replace_revoked`)."""

from __future__ import annotations

import asyncpg
import pytest

from jobserver.auth import hash_token
from jobserver.cli.up import DevTokenRevoked, ensure_dev_token


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
    with pytest.raises(DevTokenRevoked):
        await ensure_dev_token(database_url, first)
    with pytest.raises(DevTokenRevoked):  # the saved file lost: still revoked, still no new one
        await ensure_dev_token(database_url, None)
    assert await pool.fetchval("SELECT count(*) FROM api_tokens") == 1

    second = await ensure_dev_token(database_url, first, replace_revoked=True)
    assert second is not None and second != first
    names = sorted(r["name"] for r in await pool.fetch("SELECT name FROM api_tokens"))
    assert names[0] == "dev" and names[1].startswith("dev-") and len(names) == 2

    # A saved value that never existed (another database) is replaced: a dev token is active.
    third = await ensure_dev_token(database_url, "js_not_a_real_token")
    assert third not in (None, first, second)


async def test_other_tokens_do_not_count_as_a_dev_token(
    pool: asyncpg.Pool, database_url: str
) -> None:
    from jobserver.auth import create_token

    await create_token(pool, "developer", ["manage_jobs"], "dev")
    await pool.execute("UPDATE api_tokens SET revoked_at = now()")
    created = await ensure_dev_token(database_url, None)  # no dev token ever existed here
    assert created is not None
