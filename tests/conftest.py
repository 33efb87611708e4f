"""Test harness: a real PostgreSQL, a migrated template database, a fresh database per test.

PostgreSQL is found in this order: JOBSERVER_TEST_DATABASE_URL (a server where we may create
databases); a throwaway testcontainers container when a Docker engine answers; otherwise a
throwaway cluster from the local binaries (`jobserver.testing.cluster.LocalCluster`).
Migrations run once into `jobserver_template`; the `database_url` fixture copies it per test.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from jobserver.config import Settings
from jobserver.db import migrate
from jobserver.db.pool import create_pool
from jobserver.db.urls import asyncpg_url, with_database
from jobserver.testing.cluster import LocalCluster

TEMPLATE = "jobserver_template"


@dataclass
class PgServer:
    """Where the tests' PostgreSQL is and, when we started it ourselves, its handle."""

    admin_url: str
    cluster: LocalCluster | None = None


def _docker_server() -> Iterator[PgServer] | None:
    try:
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:15", driver=None)
        container.start()
    except Exception:  # no Docker engine answers, or no image: fall back to the local binaries
        return None

    def gen() -> Iterator[PgServer]:
        try:
            yield PgServer(asyncpg_url(container.get_connection_url()))
        finally:
            container.stop()

    return gen()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    url = os.environ.get("JOBSERVER_TEST_DATABASE_URL")
    if url:
        yield PgServer(url)
        return
    docker = _docker_server()
    if docker is not None:
        yield from docker
        return
    cluster = LocalCluster(fast=True).start()
    try:
        yield PgServer(cluster.url(), cluster)
    finally:
        cluster.stop()


async def _admin(server: PgServer) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_url(server.admin_url))


@pytest.fixture(scope="session")
async def template_url(pg_server: PgServer) -> str:
    conn = await _admin(pg_server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await conn.close()
    url = with_database(pg_server.admin_url, TEMPLATE)
    await migrate.upgrade_async(url)
    return url


_counter = itertools.count()


async def create_test_database(server: PgServer) -> str:
    """A fresh, migrated database copied from the template; returns its URL."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    conn = await _admin(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    finally:
        await conn.close()
    return with_database(server.admin_url, name)


async def drop_test_database(server: PgServer, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await _admin(server)
    try:
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def database_url(pg_server: PgServer, template_url: str) -> AsyncIterator[str]:
    url = await create_test_database(pg_server)
    yield url
    await drop_test_database(pg_server, url)


async def create_empty_database(server: PgServer, prefix: str = "e") -> str:
    """A fresh database with no schema at all (migration and `jobserver up` tests)."""
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    conn = await _admin(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server.admin_url, name)


@pytest.fixture
async def empty_database_url(pg_server: PgServer) -> AsyncIterator[str]:
    url = await create_empty_database(pg_server)
    yield url
    await drop_test_database(pg_server, url)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, worker_id="test-worker")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(database_url, Settings(), max_size=10)
    yield p
    await p.close()


@pytest.fixture
def traversable_dir() -> Iterator[Path]:
    """A fresh directory under /tmp, mode 0755, that every OS user can traverse (pytest's own
    tmp_path lies below a 0700 directory: the embedded database's user could not reach it)."""
    d = Path(tempfile.mkdtemp(prefix="jobserver-t-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# A source table for templated jobs, read through the process's source driver
# (`jobserver.sources.shared`) pointed at the test database.
PEOPLE_USER = {
    "collection": "people",
    "match": {"name": "John"},
    "fields": ["name", "email", "contact:phone"],
    "single": True,
}


@pytest.fixture
async def people(pool: asyncpg.Pool, database_url: str) -> AsyncIterator[None]:
    """`people`: John (a phone in `contact`) and Eve (an email with CR/LF in it)."""
    from jobserver.sources import shared

    await pool.execute(
        """
        CREATE TABLE people (name text, email text, contact jsonb);
        INSERT INTO people VALUES ('John', 'john@example.com', '{"phone": "555-0100"}'),
                                  ('Eve', E'eve\\r\\nX-Injected: 1', '{}');
        """
    )
    shared.configure(database_url)
    yield
    await shared.close_all()
    shared.configure(None)
