"""BlobStore.receiving: an upload written into the store while it arrives, kept only by
`commit`. With BLOB_DIR the spool file is the blob's own temporary name, renamed into place;
with large objects each batch goes to a large object whose transaction commits with the row.
Leaving without commit keeps nothing; a crash between a directory blob's row and its rename
leaves what the pruner sweeps."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import asyncpg
import pytest

from jobserver.blobs import BlobStore, BlobTooLarge
from jobserver.blobs.store import Receiving
from jobserver.db import blobs as sql
from jobserver.scheduler.pruner import Pruner
from tests.blobs.conftest import MiB, collect, files_under, large_objects


async def spool(r: Receiving, data: bytes, piece: int = MiB) -> None:
    """What receive_form does: write the spool file, give every batch to the tee."""
    with r.path.open("xb") as f:
        for i in range(0, len(data), piece):
            f.write(data[i : i + piece])
            await r.tee([data[i : i + piece]])


async def test_a_committed_upload_is_the_blob(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(3 * MiB + 5)
    async with store.receiving(owner="a", spool_dir=tmp_path) as r:
        await spool(r, data)
        blob = await r.commit(
            filename="in.mkv",
            content_type="video/x-matroska",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
    assert (blob.size, blob.filename, blob.storage) == (len(data), "in.mkv", store.storage)
    assert await collect(store.read(blob)) == data
    if store.directory is not None:
        # renamed into place: the one file is the blob's, no temporary name left
        assert r.path.parent.parent == store.directory
        assert files_under(store.directory) == [store.directory / str(blob.path)]
    else:
        assert r.path.parent == tmp_path  # the caller removes its spool file


async def test_leaving_without_commit_keeps_nothing(
    store: BlobStore, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    los = await large_objects(pool)
    with pytest.raises(RuntimeError, match="probe says no"):
        async with store.receiving(owner="a", spool_dir=tmp_path) as r:
            await spool(r, os.urandom(2 * MiB))
            r.path.unlink()  # the caller's part (receive_form removes its spool file)
            raise RuntimeError("probe says no")
    assert await large_objects(pool) == los  # the large object rolled back
    assert await pool.fetchval("SELECT count(*) FROM blobs") == 0
    assert files_under(store.directory or tmp_path) == []


async def test_past_the_cap_the_tee_refuses(
    pool: asyncpg.Pool, tmp_path: Path, store: BlobStore
) -> None:
    capped = BlobStore(pool, directory=store.directory, max_bytes=MiB)
    los = await large_objects(pool)
    with pytest.raises(BlobTooLarge):
        async with capped.receiving(owner="a", spool_dir=tmp_path) as r:
            try:
                await spool(r, os.urandom(MiB + 1), piece=MiB // 2)
            finally:
                r.path.unlink()
    assert await large_objects(pool) == los
    assert await pool.fetchval("SELECT count(*) FROM blobs") == 0


async def test_a_crash_between_row_and_rename_is_swept_by_the_pruner(
    dir_store: BlobStore, pool: asyncpg.Pool
) -> None:
    """The state a process killed after the row insert leaves: the row (unattached) and the
    bytes still under the temporary name. The pruner expires the row, the trigger queues its
    path, and the sweep removes the temporary name too."""
    assert dir_store.directory is not None
    async with dir_store.receiving(owner="a") as r:
        await spool(r, b"half-kept upload")
        temp = r.path
        draft = r._draft  # the row commit would insert, as commit inserts it first
        row = sql.NewBlob(
            **{**draft.__dict__, "size": 16, "sha256": "0" * 64, "storage": "dir"},
        )
        row = sql.NewBlob(**{**row.__dict__, "path": f"{draft.id.hex[:2]}/{draft.id}"})
        assert await sql.blob_insert(pool, row) is not None
        # ... and here the process dies: no rename, no cleanup
    assert temp.exists()
    await pool.execute("UPDATE blobs SET created_at = now() - interval '2 hours'")
    totals = await Pruner(
        pool, blob_dir=dir_store.directory, blob_unattached_seconds=3600
    ).run_once()
    assert totals.get("blobs_unattached") == 1 and totals.get("blob_files") == 1, totals
    assert files_under(dir_store.directory) == []
    assert await pool.fetchval("SELECT count(*) FROM blob_garbage") == 0
