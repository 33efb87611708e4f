"""Migrations vs the declared schema: applying every migration yields `tables.metadata` exactly.

Alembic's autogenerate comparison diffs the migrated database against the metadata (tables,
columns, types, nullability, server defaults, indexes, unique and foreign keys). A schema change
made in only one of the two places fails here. A second test round-trips downgrade base and
upgrade head on a fresh database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from jobserver.db import migrate
from jobserver.db.tables import metadata
from jobserver.db.urls import asyncpg_url


def _sync_url(url: str) -> str:
    return "postgresql+psycopg://" + asyncpg_url(url).split("://", 1)[1]


@pytest.fixture
def sync_engine_factory() -> Iterator[Any]:
    engines: list[sa.Engine] = []

    def make(url: str) -> sa.Engine:
        engine = sa.create_engine(_sync_url(url), poolclass=sa.pool.NullPool)
        engines.append(engine)
        return engine

    yield make
    for e in engines:
        e.dispose()


def _normalize_default(text: str | None) -> str | None:
    """`'x'::text` and `x` are the same default; strip casts PostgreSQL adds on its own."""
    if text is None:
        return None
    out = text.strip().strip("()")
    for cast in ("::text[]", "::text", "::jsonb", "::integer", "::character varying"):
        if out.endswith(cast):
            out = out[: -len(cast)]
    return out.replace('"', "")


def _compare_server_default(
    context: MigrationContext,
    inspected_column: Any,
    metadata_column: Any,
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool:
    """True when the defaults differ (after normalising the casts PostgreSQL adds)."""
    return _normalize_default(inspected_default) != _normalize_default(rendered_metadata_default)


def _database_diffs(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": _compare_server_default,
                "include_name": lambda name, type_, parent: (
                    not (type_ == "table" and name == "alembic_version")
                ),
            },
        )
        return list(compare_metadata(ctx, metadata))


async def test_migrations_match_metadata(empty_database_url: str, sync_engine_factory: Any) -> None:
    await migrate.upgrade_async(empty_database_url)
    diffs = _database_diffs(sync_engine_factory(empty_database_url))
    assert diffs == [], "schema drift between migrations and jobserver.db.tables:\n" + "\n".join(
        map(repr, diffs)
    )


async def test_drift_is_detected(empty_database_url: str, sync_engine_factory: Any) -> None:
    """The comparison itself can fail: an index dropped behind Alembic's back shows up."""
    await migrate.upgrade_async(empty_database_url)
    conn = await asyncpg.connect(asyncpg_url(empty_database_url))
    try:
        await conn.execute("DROP INDEX jobs_owner_idx")
        await conn.execute("ALTER TABLE jobs ALTER COLUMN priority SET DEFAULT 7")
    finally:
        await conn.close()
    diffs = repr(_database_diffs(sync_engine_factory(empty_database_url)))
    assert "jobs_owner_idx" in diffs
    assert "priority" in diffs


async def test_downgrade_base_then_upgrade_head(
    empty_database_url: str, sync_engine_factory: Any
) -> None:
    await migrate.upgrade_async(empty_database_url)
    await asyncio.to_thread(migrate.downgrade, empty_database_url, "base")
    conn = await asyncpg.connect(asyncpg_url(empty_database_url))
    try:
        left = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'alembic_version'"
        )
        types = await conn.fetch(
            "SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
            " WHERE n.nspname = 'public' AND t.typtype = 'e'"
        )
    finally:
        await conn.close()
    assert [r["tablename"] for r in left] == []
    assert [r["typname"] for r in types] == []
    await migrate.upgrade_async(empty_database_url)
    assert _database_diffs(sync_engine_factory(empty_database_url)) == []
