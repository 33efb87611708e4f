"""Blob lifetime: bytes go with their row (a pruned job's cascade frees the large object at
once and queues the file, which the pruner's sweep removes), unattached blobs expire, and the
scheduler daemon wires BLOB_DIR and BLOB_UNATTACHED_SECONDS into the pruner."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from jobserver.blobs import BlobStore
from jobserver.config import ConfigError, Settings
from jobserver.scheduler.daemon import SchedulerDaemon
from jobserver.scheduler.pruner import Pruner
from tests.blobs.conftest import files_under, large_objects, new_job, stream
from tests.scheduler.helpers import insert_job

DAY = 86400.0


async def _garbage(pool: asyncpg.Pool) -> list[str]:
    return [r["path"] for r in await pool.fetch("SELECT path FROM blob_garbage ORDER BY id")]


async def _age(pool: asyncpg.Pool, blob_id: object, seconds: float) -> None:
    await pool.execute(
        "UPDATE blobs SET created_at = now() - make_interval(secs => $2) WHERE id = $1",
        blob_id,
        seconds,
    )


async def test_a_pruned_job_frees_its_large_objects(
    lo_store: BlobStore, pool: asyncpg.Pool
) -> None:
    los = await large_objects(pool)
    old = await insert_job(pool, status="succeeded", finished_ago=8 * DAY)
    new = await insert_job(pool, status="succeeded", finished_ago=1 * DAY)
    for job in (old, old, new):
        await lo_store.put_stream(stream(b"x" * 5000), owner="a", filename="f", job_id=job)
    assert await large_objects(pool) == los + 3
    result = await Pruner(pool).run_once()
    assert result["pruned"] == 1
    assert "blob_files" not in result and "blobs_unattached" not in result
    assert [b.job_id for b in await lo_store.for_job(new)] == [new]
    assert await lo_store.for_job(old) == []
    assert await large_objects(pool) == los + 1  # unlinked by the trigger, in the same delete
    assert await _garbage(pool) == []


async def test_a_pruned_job_queues_its_files_and_the_sweep_removes_them(
    dir_store: BlobStore, pool: asyncpg.Pool
) -> None:
    assert dir_store.directory is not None
    old = await insert_job(pool, status="cancelled", finished_ago=8 * DAY)
    blobs = [
        await dir_store.put_stream(stream(b"bytes"), owner="a", filename="f", job_id=old)
        for _ in range(3)
    ]
    assert len(files_under(dir_store.directory)) == 3
    await pool.execute("DELETE FROM jobs WHERE id = $1", old)  # the cascade
    queued = await _garbage(pool)
    assert sorted(queued) == sorted(f"{b.id.hex[:2]}/{b.id}" for b in blobs)
    assert len(files_under(dir_store.directory)) == 3  # only queued so far

    # a scheduler without BLOB_DIR leaves the queue to one that has it
    assert "blob_files" not in await Pruner(pool).run_once()
    assert len(await _garbage(pool)) == 3

    (dir_store.directory / queued[0]).unlink()  # a file gone already just drops its row
    pruner = Pruner(pool, blob_dir=dir_store.directory, batch=2)
    result = await pruner.run_once()
    assert result["blob_files"] == 3
    assert await _garbage(pool) == []
    assert files_under(dir_store.directory) == []
    assert "blob_files" not in await pruner.run_once()


async def test_the_sweep_never_leaves_blob_dir(
    dir_store: BlobStore, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    await pool.execute(
        "INSERT INTO blob_garbage (path) VALUES ($1), ('../precious.txt'), ('ab/../../x')",
        str(victim),
    )
    assert await dir_store.sweep_garbage() == 3  # rows of other shapes are dropped untouched
    assert victim.read_text() == "keep me"
    assert await _garbage(pool) == []


async def test_unattached_blobs_expire(store: BlobStore, pool: asyncpg.Pool) -> None:
    los = await large_objects(pool)
    stale = await store.put_stream(stream(b"stale"), owner="a", filename="s")
    fresh = await store.put_stream(stream(b"fresh"), owner="a", filename="f")
    taken = await store.put_stream(stream(b"taken"), owner="a", filename="t")
    job = await new_job(pool)
    async with pool.acquire() as conn:
        assert await store.attach(conn, taken.id, job)
    await _age(pool, stale.id, 2 * 3600)
    await _age(pool, taken.id, 2 * 3600)
    await _age(pool, fresh.id, 600)

    pruner = Pruner(pool, blob_unattached_seconds=3600, blob_dir=store.directory)
    result = await pruner.run_once()
    assert result["blobs_unattached"] == 1
    assert await store.get(stale.id) is None
    assert await store.get(fresh.id) is not None
    assert await store.get(taken.id) is not None
    if store.directory is not None:
        assert result["blob_files"] == 1  # its file went in the same run
        assert len(files_under(store.directory)) == 2
    else:
        assert await large_objects(pool) == los + 2
    assert "blobs_unattached" not in await pruner.run_once()


async def test_expiry_skips_a_blob_being_attached(lo_store: BlobStore, pool: asyncpg.Pool) -> None:
    blob = await lo_store.put_stream(stream(b"racing"), owner="a", filename="r")
    await _age(pool, blob.id, 2 * 3600)
    job = await new_job(pool)
    async with pool.acquire() as conn, conn.transaction():
        assert await lo_store.attach(conn, blob.id, job)  # row locked until commit
        assert await lo_store.delete_unattached(3600) == 0
    assert await lo_store.delete_unattached(3600) == 0  # attached now: never expires
    got = await lo_store.get(blob.id)
    assert got is not None and got.job_id == job


async def test_expiry_goes_in_bounded_batches(lo_store: BlobStore, pool: asyncpg.Pool) -> None:
    for _ in range(5):
        blob = await lo_store.put_stream(stream(b"x"), owner="a", filename="x")
        await _age(pool, blob.id, 7200)
    assert await lo_store.delete_unattached(3600, batch=2, max_batches=2) == 4
    assert await lo_store.delete_unattached(3600, batch=2, max_batches=2) == 1


def test_settings() -> None:
    s = Settings()
    assert (s.blob_dir, s.blob_max_bytes, s.blob_unattached_seconds) == ("", 10 * 1024**3, 3600)
    env = {"BLOB_DIR": "/srv/blobs", "BLOB_MAX_BYTES": "1000", "BLOB_UNATTACHED_SECONDS": "60"}
    s = Settings.from_env(env)
    assert (s.blob_dir, s.blob_max_bytes, s.blob_unattached_seconds) == ("/srv/blobs", 1000, 60)
    for bad in ({"BLOB_MAX_BYTES": "0"}, {"BLOB_UNATTACHED_SECONDS": "0"}, {"BLOB_MAX_BYTES": "x"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Settings.from_env(bad)


async def test_the_daemon_wires_the_blob_settings(pool: asyncpg.Pool, tmp_path: Path) -> None:
    settings = replace(Settings(), blob_dir=str(tmp_path), blob_unattached_seconds=120.0)
    [pruner] = [s for s in SchedulerDaemon(settings, pool).services if isinstance(s, Pruner)]
    assert pruner.blob_unattached_seconds == 120.0
    assert pruner.blobs.directory == tmp_path
    [pruner] = [s for s in SchedulerDaemon(Settings(), pool).services if isinstance(s, Pruner)]
    assert pruner.blob_unattached_seconds == 3600.0
    assert pruner.blobs.directory is None
