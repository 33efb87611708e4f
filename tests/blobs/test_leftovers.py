"""What a process killed mid-upload leaves (a temporary name under BLOB_DIR, a spool file of
an upload into large objects) is removed by the pruner once older than the bound; a fresh
in-flight file and every file not of our own naming stay. Real files, a real pruner run;
ages are set with os.utime."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import asyncpg

from jobserver.blobs import BlobStore, leftovers
from jobserver.blobs.store import Receiving
from jobserver.config import Settings
from jobserver.scheduler.daemon import SchedulerDaemon
from jobserver.scheduler.pruner import Pruner
from tests.blobs.conftest import MiB, stream

HOUR = 3600.0


def age(path: Path, seconds: float) -> None:
    """Make the file's mtime (and atime) `seconds` old (the link itself for a symlink)."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


async def die_mid_upload(store: BlobStore, spool_dir: Path | None = None) -> Path:
    """The state an API killed while receiving leaves: the spool file half written, no row,
    nobody to remove it (on a crash the context's cleanup never runs; leaving it without
    commit and without unlinking is the same on disk)."""
    async with store.receiving(owner="a", spool_dir=spool_dir) as r:
        await write_some(r)
        return r.path


async def write_some(r: Receiving) -> None:
    data = os.urandom(MiB + 7)
    with r.path.open("xb") as f:
        f.write(data)
    await r.tee([data])


def test_the_bound_is_blob_unattached_seconds_with_a_floor() -> None:
    assert leftovers.bound(HOUR) == HOUR
    assert leftovers.bound(1.0) == leftovers.MIN_SECONDS == 900.0


async def test_the_pruner_removes_old_temporary_names_under_blob_dir(
    dir_store: BlobStore, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    root = dir_store.directory
    assert root is not None
    old = await die_mid_upload(dir_store)
    age(old, 2 * HOUR)
    fresh = await die_mid_upload(dir_store)  # a live upload, written to just now
    recent = await die_mid_upload(dir_store)
    age(recent, 10 * 60)  # quiet for 10 minutes: under the 15-minute floor
    kept_blob = await dir_store.put_stream(stream(b"a kept blob"), owner="a", filename="k")
    assert kept_blob.path is not None
    age(root / kept_blob.path, 2 * HOUR)  # a blob's own file is never a leftover

    # foreign names, all old: a wrong shard, no uuid, a suffix, at the root, a link, a dir
    shard = old.parent
    other = uuid.uuid4()
    while other.hex[:2] == shard.name:
        other = uuid.uuid4()
    outside = tmp_path / "outside"
    outside.write_bytes(b"not ours")
    foreign = [
        shard / f".{other}.tmp",
        shard / ".not-a-uuid.tmp",
        shard / f".{uuid.UUID(hex=shard.name + '3' * 30)}.tmp.bak",
        shard / f"{uuid.uuid4()}.tmp",
        root / f".{uuid.uuid4()}.tmp",
        shard / "notes.txt",
    ]
    for p in foreign:
        p.write_bytes(b"x")
    link = shard / f".{uuid.UUID(hex=shard.name + '1' * 30)}.tmp"
    link.symlink_to(outside)
    folder = shard / f".{uuid.UUID(hex=shard.name + '2' * 30)}.tmp"
    folder.mkdir()
    for p in [*foreign, link, folder, outside]:
        age(p, 2 * HOUR)

    totals = await Pruner(pool, blob_dir=root, blob_unattached_seconds=HOUR).run_once()

    assert totals.get("blob_temp_files") == 1, totals
    assert not old.exists()
    assert fresh.exists() and recent.exists()
    assert (root / kept_blob.path).exists()
    assert all(p.exists() for p in foreign), [p for p in foreign if not p.exists()]
    assert link.is_symlink() and outside.read_bytes() == b"not ours"
    assert folder.is_dir()
    assert await pool.fetchval("SELECT count(*) FROM blobs") == 1


async def test_the_pruner_removes_old_spool_files_of_ours_only(
    lo_store: BlobStore, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    old = await die_mid_upload(lo_store, spool_dir)
    assert old.parent == spool_dir and old.name.startswith(leftovers.SPOOL_PREFIX)
    age(old, 2 * HOUR)
    fresh = await die_mid_upload(lo_store, spool_dir)
    foreign = [
        spool_dir / f"upload-{uuid.uuid4()}",  # not our prefix
        spool_dir / f"{leftovers.SPOOL_PREFIX}{uuid.uuid4()}.part",
        spool_dir / f"{leftovers.SPOOL_PREFIX}abc123",
        spool_dir / "video.mp4",
    ]
    for p in foreign:
        p.write_bytes(b"x")
    folder = spool_dir / leftovers.spool_name()
    folder.mkdir()
    link = spool_dir / leftovers.spool_name()
    link.symlink_to(tmp_path / "elsewhere")
    for p in [*foreign, folder, link]:
        age(p, 2 * HOUR)

    pruner = Pruner(pool, spool_dir=spool_dir, blob_unattached_seconds=HOUR)
    totals = await pruner.run_once()

    assert totals.get("spool_files") == 1, totals
    assert not old.exists()
    assert fresh.exists()
    assert all(p.exists() for p in foreign)
    assert folder.is_dir() and link.is_symlink()
    assert await pool.fetchval("SELECT count(*) FROM blobs") == 0

    # the next sweep waits a quarter of the bound: a run right after lists nothing
    again = await die_mid_upload(lo_store, spool_dir)
    age(again, 2 * HOUR)
    assert "spool_files" not in await pruner.run_once()
    assert again.exists()
    pruner._leftovers_due = 0.0  # as if that quarter had passed
    assert (await pruner.run_once()).get("spool_files") == 1
    assert not again.exists()


async def test_a_missing_directory_sweeps_nothing(pool: asyncpg.Pool, tmp_path: Path) -> None:
    totals = await Pruner(
        pool, blob_dir=tmp_path / "no-blobs", spool_dir=tmp_path / "no-spool"
    ).run_once()
    assert "blob_temp_files" not in totals and "spool_files" not in totals


async def test_the_daemon_sweeps_the_upload_spool_directory(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    settings = replace(Settings(), video_upload_dir=str(tmp_path), blob_unattached_seconds=1.0)
    [pruner] = [s for s in SchedulerDaemon(settings, pool).services if isinstance(s, Pruner)]
    assert (pruner.spool_dir, pruner.leftover_seconds) == (tmp_path, leftovers.MIN_SECONDS)
    [pruner] = [s for s in SchedulerDaemon(Settings(), pool).services if isinstance(s, Pruner)]
    assert pruner.spool_dir == Path(tempfile.gettempdir())
