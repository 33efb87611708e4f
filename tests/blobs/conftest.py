"""Blob tests: a store per backend (large objects, a directory), job rows, byte streams.

`store` is parametrized over both backends, so every test that takes it runs against each;
`lo_store` and `dir_store` pin one. The worker fixtures (`start_worker`, `fast_settings`) are
the worker tests' own (tests/worker/conftest.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from jobserver.blobs import BlobStore
from tests.worker.conftest import fast_settings, start_worker  # noqa: F401 (fixtures)

MiB = 1024 * 1024


@pytest.fixture(params=["lo", "dir"])
def store(request: pytest.FixtureRequest, pool: asyncpg.Pool, tmp_path: Path) -> BlobStore:
    if request.param == "dir":
        return BlobStore(pool, directory=tmp_path / "blobs")
    return BlobStore(pool)


@pytest.fixture
def lo_store(pool: asyncpg.Pool) -> BlobStore:
    return BlobStore(pool)


@pytest.fixture
def dir_store(pool: asyncpg.Pool, tmp_path: Path) -> BlobStore:
    return BlobStore(pool, directory=tmp_path / "blobs")


async def new_job(
    pool: asyncpg.Pool,
    owner: str = "alice",
    *,
    status: str = "queued",
    worker_id: str | None = None,
    attempt: int = 0,
) -> uuid.UUID:
    """A bare job row (a held one gets the worker and attempt given)."""
    job_id: uuid.UUID = await pool.fetchval(
        "INSERT INTO jobs (definition_key, definition_version, max_attempts, owner, status,"
        " worker_id, attempt) VALUES ('echo', 1, 3, $1, $2, $3, $4) RETURNING id",
        owner,
        status,
        worker_id,
        attempt,
    )
    return job_id


async def stream(data: bytes, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), chunk):
        yield data[i : i + chunk]


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in chunks])


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


async def large_objects(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM pg_largeobject_metadata")
    return count


def files_under(root: Path) -> list[Path]:
    """Every file below root (temporary ones included)."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
