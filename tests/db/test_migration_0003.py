"""Migration 0003 on data written before it: internal owners move to `system:*`, stored
`call.api` definitions are marked outbound (their fingerprint kept), and it downgrades back."""

from __future__ import annotations

import asyncio

import asyncpg

from jobserver.db import migrate
from jobserver.db.urls import asyncpg_url

DEFAULT_OWNER_JOB = (
    "INSERT INTO jobs (definition_key, definition_version, max_attempts) VALUES ('echo', 1, 1)"
)


async def test_0003_moves_internal_owners_and_marks_call_api(empty_database_url: str) -> None:
    await migrate.upgrade_async(empty_database_url, "0002")
    conn = await asyncpg.connect(asyncpg_url(empty_database_url))
    try:
        for key in ("call.api", "echo"):
            await conn.execute(
                "INSERT INTO job_definitions (key, version, fingerprint) VALUES ($1, 1, 'f')", key
            )
        await conn.execute(
            "INSERT INTO jobs (definition_key, definition_version, max_attempts, owner)"
            " VALUES ('echo', 1, 1, 'scheduler'), ('echo', 1, 1, 'alice')"
        )
        await conn.execute(DEFAULT_OWNER_JOB)
        await asyncio.to_thread(migrate.upgrade, empty_database_url, "0003")
        owners = [r[0] for r in await conn.fetch("SELECT owner FROM jobs ORDER BY owner")]
        assert owners == ["alice", "system:anonymous", "system:scheduler"]
        flags = dict(await conn.fetch("SELECT key, outbound FROM job_definitions"))
        assert flags == {"call.api": True, "echo": False}
        await conn.execute(DEFAULT_OWNER_JOB)
        anonymous = "SELECT count(*) FROM jobs WHERE owner = 'system:anonymous'"
        assert await conn.fetchval(anonymous) == 2
        await asyncio.to_thread(migrate.downgrade, empty_database_url, "0002")
        owners = [r[0] for r in await conn.fetch("SELECT DISTINCT owner FROM jobs ORDER BY 1")]
        assert owners == ["alice", "anonymous", "scheduler"]
    finally:
        await conn.close()
