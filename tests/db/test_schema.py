"""The template database is migrated and copies are independent."""

from __future__ import annotations

import asyncpg


async def test_fresh_database_has_schema(pool: asyncpg.Pool) -> None:
    tables = {
        r["tablename"]
        for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert {"jobs", "job_events", "job_attempts", "job_definitions", "api_tokens"} <= tables
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 0


async def test_databases_are_isolated(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO jobs (definition_key, definition_version, max_attempts) VALUES ('echo', 1, 1)"
    )
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 1
