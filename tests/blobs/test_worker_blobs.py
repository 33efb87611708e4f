"""A definition run by a real worker reads its input blob and writes outputs with ctx.blobs:
the outputs are the job's and its owner's, the input of another owner is refused."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from jobserver.blobs import BlobStore
from jobserver.config import Settings
from jobserver.db.definitions import definition_upsert
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.registry import load_modules
from tests.blobs.conftest import collect, stream
from tests.waiting import wait_for

REGISTRY = load_modules(["tests.blobs.defs"])
TEXT = b"hello blobs, " * 20_000  # 260 kB: several chunks


@pytest.fixture
async def defs(pool: asyncpg.Pool) -> asyncpg.Pool:
    async with pool.acquire() as conn:
        for d in REGISTRY.all():
            await definition_upsert(conn, d.metadata())
    return pool


async def _submit(
    pool: asyncpg.Pool, owner: str, params: dict[str, Any], max_attempts: int = 1
) -> uuid.UUID:
    job = NewJob("test.blobs.shout", 1, max_attempts=max_attempts, params=params, owner=owner)
    async with pool.acquire() as conn, conn.transaction():
        [job_id] = await job_insert_many(conn, [job])
    return job_id


async def _finished(pool: asyncpg.Pool, job_id: uuid.UUID) -> asyncpg.Record:
    async def done() -> asyncpg.Record | None:
        row = await pool.fetchrow(
            "SELECT status, attempt, result, last_error FROM jobs WHERE id = $1", job_id
        )
        return row if row is not None and row["status"] in ("succeeded", "failed") else None

    row: asyncpg.Record = await wait_for(done, within=30)
    return row


async def test_a_job_reads_its_input_and_writes_outputs(
    defs: asyncpg.Pool,
    store: BlobStore,
    fast_settings: Settings,
    start_worker: Callable[..., Awaitable[Any]],
) -> None:
    settings = replace(fast_settings, blob_dir=str(store.directory or ""))
    await start_worker(settings, registry=REGISTRY)
    upload = await store.put_stream(
        stream(TEXT), owner="alice", filename="greeting.txt", content_type="text/plain"
    )
    job = NewJob("test.blobs.shout", 1, max_attempts=1, params={"input": str(upload.id)},
                 owner="alice")  # fmt: skip
    async with defs.acquire() as conn, conn.transaction():  # the job takes its upload
        [job_id] = await job_insert_many(conn, [job])
        assert await store.attach(conn, upload.id, job_id)

    row = await _finished(defs, job_id)
    assert row["status"] == "succeeded", row["last_error"]
    result = row["result"]
    assert result["head"] == "hello"
    assert result["outputs"] == ["loud-greeting.txt"]

    loud = await store.get(uuid.UUID(result["loud"]))
    copy = await store.get(uuid.UUID(result["copy"]))
    assert loud is not None and copy is not None
    for blob in (loud, copy):
        assert (blob.job_id, blob.owner, blob.storage) == (job_id, "alice", store.storage)
    assert (loud.role, loud.content_type) == ("output", "text/plain")
    assert (copy.role, copy.filename, copy.sha256) == ("copy", "input", upload.sha256)
    assert await collect(store.read(loud)) == TEXT.upper()
    assert await collect(store.read(copy)) == TEXT
    assert {b.id for b in await store.for_job(job_id)} == {upload.id, loud.id, copy.id}


async def test_another_owners_blob_is_not_found(
    defs: asyncpg.Pool,
    lo_store: BlobStore,
    fast_settings: Settings,
    start_worker: Callable[..., Awaitable[Any]],
) -> None:
    await start_worker(fast_settings, registry=REGISTRY)
    theirs = await lo_store.put_stream(stream(b"secret"), owner="bob", filename="s")
    job_id = await _submit(defs, "alice", {"input": str(theirs.id)}, max_attempts=3)
    row = await _finished(defs, job_id)
    assert (row["status"], row["attempt"]) == ("failed", 1)  # no retry: it would not appear
    assert "blob_not_found: no such blob" in row["last_error"]
    row = await _finished(defs, await _submit(defs, "alice", {"input": "not-a-uuid"}))
    assert row["status"] == "failed"
    assert "not a blob id" in row["last_error"]
