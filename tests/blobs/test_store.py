"""BlobStore on both backends: round trips with sha256, byte ranges, the cap (nothing left
behind), attach inside a transaction, the fence of a worker's output, delete."""

from __future__ import annotations

import asyncio
import hashlib
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from jobserver.blobs import Blob, BlobFenced, BlobNotFound, BlobStore, BlobTooLarge
from jobserver.db.blobs import Fence
from tests.blobs.conftest import (
    MiB,
    collect,
    files_under,
    large_objects,
    new_job,
    random_bytes,
    stream,
)


async def _rows(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM blobs")
    return count


async def test_round_trip_keeps_bytes_size_and_sha256(store: BlobStore) -> None:
    data = random_bytes(3 * MiB + 12345)  # several pieces of every backend, and a short last
    blob = await store.put_stream(
        stream(data, 100_000),
        owner="alice",
        filename="../clip.mp4",
        content_type="video/mp4",
    )
    assert blob.size == len(data)
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert (blob.owner, blob.job_id, blob.role) == ("alice", None, "input")
    assert (blob.filename, blob.content_type) == ("clip.mp4", "video/mp4")
    assert blob.storage == store.storage
    assert await store.get(blob.id) == blob
    assert await collect(store.read(blob)) == data
    assert await store.get(uuid.uuid4()) is None


async def test_the_row_says_where_the_bytes_are(
    lo_store: BlobStore, dir_store: BlobStore, pool: asyncpg.Pool
) -> None:
    lo = await lo_store.put_stream(stream(b"large object"), owner="a", filename="a")
    d = await dir_store.put_stream(stream(b"a file"), owner="a", filename="b")
    row = await pool.fetchrow("SELECT storage, lo_oid, path FROM blobs WHERE id = $1", lo.id)
    assert row is not None and row["storage"] == "lo" and row["path"] is None
    assert await pool.fetchval(
        "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = $1", row["lo_oid"]
    )
    row = await pool.fetchrow("SELECT storage, lo_oid, path FROM blobs WHERE id = $1", d.id)
    assert row is not None and row["storage"] == "dir" and row["lo_oid"] is None
    assert row["path"] == f"{d.id.hex[:2]}/{d.id}"
    assert dir_store.directory is not None
    file = dir_store.directory / row["path"]
    assert file.read_bytes() == b"a file"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE(file.parent.stat().st_mode) == 0o700
    # a large object is readable whatever the store's BLOB_DIR; a file needs BLOB_DIR
    assert await collect(dir_store.read(lo)) == b"large object"
    with pytest.raises(BlobNotFound, match="BLOB_DIR"):
        lo_store.read(d)


async def test_empty_blob(store: BlobStore) -> None:
    blob = await store.put_stream(stream(b""), owner="alice", filename="empty.txt")
    assert (blob.size, blob.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert await collect(store.read(blob)) == b""
    assert await collect(store.read(blob, 0, 10)) == b""


async def test_ranges(store: BlobStore) -> None:
    data = random_bytes(MiB + 777)
    blob = await store.put_stream(stream(data), owner="alice", filename="r.bin")
    n = len(data)
    cases = [
        (0, None),
        (0, 1),
        (100, 200),
        (0, n),
        (n - 1, n),
        (n - 1, None),
        (5, 5),  # empty
        (n, None),  # starts at the end: empty
        (n + 10, n + 20),  # past the end: empty
        (n - 10, n + 1000),  # runs past the end: cut at the end
        (12345, 12345 + 600_000),  # across piece boundaries
    ]
    for start, end in cases:
        got = await collect(store.read(blob, start, end))
        assert got == data[start:end], (start, end)
    small = [c async for c in store.read(blob, 10, 10 + 1000, chunk_size=300)]
    assert [len(c) for c in small] == [300, 300, 300, 100]
    assert b"".join(small) == data[10:1010]
    for bad in ((-1, None), (10, 5)):
        with pytest.raises(ValueError):
            store.read(blob, *bad)
    with pytest.raises(ValueError):
        store.read(blob, chunk_size=0)


async def _nothing_left(store: BlobStore, pool: asyncpg.Pool, los_before: int) -> None:
    assert await _rows(pool) == 0
    assert await large_objects(pool) == los_before
    if store.directory is not None:
        assert files_under(store.directory) == []


async def test_the_cap_keeps_nothing(store: BlobStore, pool: asyncpg.Pool) -> None:
    los = await large_objects(pool)
    capped = BlobStore(pool, directory=store.directory, max_bytes=MiB)
    with pytest.raises(BlobTooLarge) as e:
        await capped.put_stream(stream(random_bytes(MiB + 1)), owner="a", filename="big")
    assert e.value.limit == MiB
    await _nothing_left(store, pool, los)
    # the smaller of the call's cap and the store's wins
    with pytest.raises(BlobTooLarge) as e:
        await capped.put_stream(stream(b"x" * 101), owner="a", filename="f", max_bytes=100)
    assert e.value.limit == 100
    with pytest.raises(BlobTooLarge) as e:
        await capped.put_stream(stream(random_bytes(2 * MiB)), owner="a", filename="f",
                                max_bytes=10 * MiB)  # fmt: skip
    assert e.value.limit == MiB
    await _nothing_left(store, pool, los)
    exact = await capped.put_stream(stream(b"y" * MiB), owner="a", filename="exact")
    assert exact.size == MiB  # at the cap is allowed


async def test_a_failing_source_keeps_nothing(store: BlobStore, pool: asyncpg.Pool) -> None:
    los = await large_objects(pool)

    async def broken() -> AsyncIterator[bytes]:
        yield random_bytes(2 * MiB)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.put_stream(broken(), owner="a", filename="f")
    await _nothing_left(store, pool, los)


async def test_a_cancelled_upload_keeps_nothing(store: BlobStore, pool: asyncpg.Pool) -> None:
    los = await large_objects(pool)
    waiting = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield random_bytes(MiB)
        waiting.set()
        await asyncio.Event().wait()  # until cancelled
        yield b""

    task = asyncio.create_task(store.put_stream(stalls(), owner="a", filename="f"))
    await asyncio.wait_for(waiting.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _nothing_left(store, pool, los)
    # the pool's connections are still good
    assert await pool.fetchval("SELECT 1") == 1


async def test_put_file_and_to_file(store: BlobStore, tmp_path: Path) -> None:
    data = random_bytes(2 * MiB + 3)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    blob = await store.put_file(src, owner="bob", filename="in.bin", content_type="x/y")
    assert (blob.size, blob.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    out = await store.to_file(blob, tmp_path / "out.bin")
    assert out.read_bytes() == data
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


async def test_attach_in_the_job_transaction(store: BlobStore, pool: asyncpg.Pool) -> None:
    blob = await store.put_stream(stream(b"in"), owner="alice", filename="in")
    job = await new_job(pool)

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        async with pool.acquire() as conn, conn.transaction():
            assert await store.attach(conn, blob.id, job)
            raise Rollback
    got = await store.get(blob.id)
    assert got is not None and got.job_id is None  # rolled back with the transaction

    async with pool.acquire() as conn, conn.transaction():
        assert await store.attach(conn, blob.id, job)
    got = await store.get(blob.id)
    assert got is not None and got.job_id == job
    assert await store.for_job(job) == [got]
    assert await store.for_job(job, "output") == []

    other = await new_job(pool)
    async with pool.acquire() as conn:
        assert not await store.attach(conn, blob.id, other)  # attached already
        assert not await store.attach(conn, uuid.uuid4(), other)  # no such blob
        second = await store.put_stream(stream(b"2"), owner="alice", filename="2")
        assert not await store.attach(conn, second.id, other, owner="mallory")
        assert await store.attach(conn, second.id, other, owner="alice")


async def test_fenced_output_needs_the_held_attempt(store: BlobStore, pool: asyncpg.Pool) -> None:
    los = await large_objects(pool)
    held = await new_job(pool, status="running", worker_id="w1", attempt=2)
    out = await store.put_stream(
        stream(b"result"), owner="alice", filename="out", job_id=held, role="output",
        fence=Fence("w1", 2),
    )  # fmt: skip
    assert (out.job_id, out.role) == (held, "output")
    for fence in (Fence("w2", 2), Fence("w1", 1)):  # another worker, an older attempt
        with pytest.raises(BlobFenced):
            await store.put_stream(
                stream(b"zombie"), owner="alice", filename="z", job_id=held, role="output",
                fence=fence,
            )  # fmt: skip
    assert [b.id for b in await store.for_job(held)] == [out.id]
    assert await large_objects(pool) == los + (store.storage == "lo")
    if store.directory is not None:
        assert len(files_under(store.directory)) == 1


async def test_delete(store: BlobStore, pool: asyncpg.Pool) -> None:
    los = await large_objects(pool)
    blob = await store.put_stream(stream(b"bye"), owner="a", filename="f")
    assert await store.delete(blob.id)
    assert not await store.delete(blob.id)
    assert await store.get(blob.id) is None
    await _nothing_left(store, pool, los)
    assert await pool.fetchval("SELECT count(*) FROM blob_garbage") == 0  # removed at once
    with pytest.raises(BlobNotFound):
        await collect(store.read(blob))


async def test_a_blob_deleted_while_read(store: BlobStore) -> None:
    """A large object read piece by piece stops with BlobNotFound; an open file reads on to
    its end (POSIX keeps an unlinked file for the descriptor that has it open)."""
    data = random_bytes(2 * MiB)
    blob = await store.put_stream(stream(data), owner="a", filename="f")
    chunks = store.read(blob, chunk_size=64 * 1024)  # several round trips
    first = await anext(chunks)
    assert first == data[: len(first)]
    assert await store.delete(blob.id)
    if store.storage == "lo":
        with pytest.raises(BlobNotFound):
            async for _ in chunks:
                pass
    else:
        assert first + await collect(chunks) == data


def test_blob_compares_on_what_clients_see() -> None:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    a = Blob(uuid.UUID(int=1), "o", None, "input", "f", "x/y", 1, "00", now)
    assert a == Blob(uuid.UUID(int=1), "o", None, "input", "f", "x/y", 1, "00", now, "dir")


async def test_a_large_object_read_ahead_is_exact_and_a_short_one_fails(
    lo_store: BlobStore, pool: asyncpg.Pool
) -> None:
    """Several round trips in flight (READ_AHEAD): every range comes back exact, and a large
    object cut shorter than its row (in the middle of a later batch) is BlobNotFound, never
    a gap or a short file."""
    data = random_bytes(7 * MiB + 123)  # more than READ_AHEAD batches of READ_BATCH pieces
    blob = await lo_store.put_stream(stream(data), owner="alice", filename="big.bin")
    for start, end in ((0, None), (1, 5 * MiB + 7), (3 * MiB - 1, 3 * MiB + 1)):
        assert await collect(lo_store.read(blob, start, end)) == data[start:end]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT lo_truncate(lo_open($1, 131072), $2)", blob.lo_oid, 5 * MiB)
    got = bytearray()
    with pytest.raises(BlobNotFound, match="shorter than its row"):
        async for chunk in lo_store.read(blob):
            got += chunk
    assert bytes(got) == data[: len(got)] and len(got) <= 5 * MiB
