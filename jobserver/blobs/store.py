"""`BlobStore`: files any definition can take and produce, seen alike by every host.

    store = BlobStore.from_settings(pool, settings)     # BLOB_DIR, BLOB_MAX_BYTES
    blob = await store.put_stream(chunks, owner="team-a", filename="in.mp4",
                                  content_type="video/mp4")      # role "input", unattached
    async with pool.acquire() as conn, conn.transaction():
        job_id = ...                                     # the job insert
        await store.attach(conn, blob.id, job_id)        # the job's now (False: gone/taken)
    async for chunk in store.read(blob, 0, 1024): ...    # bytes [start, end)
    await store.to_file(blob, Path("/tmp/in.mp4"))
    async with store.receiving(owner="team-a") as r:     # an upload to check first
        ...write r.path, give each batch to r.tee...
        blob = await r.commit(filename=..., content_type=..., size=..., sha256=...)

New blobs go where this process is configured to put them: files under BLOB_DIR when set,
else PostgreSQL large objects (see backends.py). Every blob is read from where it was stored,
so a store reads large objects whatever its BLOB_DIR; a directory blob needs BLOB_DIR (else
`BlobNotFound` saying so).

Writes stream: the size and sha256 are computed on the way, nothing holds the whole blob, and
a stream that passes the cap (the smaller of `max_bytes` and BLOB_MAX_BYTES) raises
`BlobTooLarge` with nothing left behind (no row, no large object, no file). The file name is
made safe (`names.safe_filename`), the content type checked (`names.safe_content_type`).

Lifetime: a blob attached to a job goes with the job (the pruner deletes jobs; the rows cascade
and the trigger `blobs_free` frees the bytes: large objects at once, files through the
`blob_garbage` queue). `delete_unattached` removes blobs no job took in time and
`sweep_garbage` removes queued files (the scheduler's pruner calls both; see
jobserver/scheduler/pruner.py); `delete` removes one blob, and its file at once when this
process has BLOB_DIR.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import tempfile
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from jobserver.blobs.backends import (
    FILE_PIECE,
    Directory,
    Incoming,
    LargeObjects,
    write_local_file,
)
from jobserver.blobs.leftovers import spool_name
from jobserver.blobs.models import DEFAULT_MAX_BYTES, Blob, BlobNotFound, BlobOptions
from jobserver.blobs.names import DEFAULT_CONTENT_TYPE, check_role, safe_content_type, safe_filename
from jobserver.blobs.streams import Tally, file_chunks
from jobserver.db import blobs as sql
from jobserver.db.conn import Conn

if TYPE_CHECKING:
    from jobserver.config import Settings


class BlobStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        directory: Path | str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes!r}")
        self.pool = pool
        self.max_bytes = max_bytes
        self.directory = Path(directory) if directory else None
        self._lo = LargeObjects(pool)
        self._dir = Directory(pool, self.directory) if self.directory else None

    @classmethod
    def from_options(cls, pool: asyncpg.Pool, options: BlobOptions) -> BlobStore:
        return cls(pool, directory=options.directory, max_bytes=options.max_bytes)

    @classmethod
    def from_settings(cls, pool: asyncpg.Pool, settings: Settings) -> BlobStore:
        return cls.from_options(pool, BlobOptions.from_settings(settings))

    @property
    def storage(self) -> str:
        """Where new blobs go: 'dir' (BLOB_DIR) or 'lo' (large objects)."""
        return "dir" if self._dir is not None else "lo"

    # -- writing ------------------------------------------------------------------------------

    async def put_stream(
        self,
        chunks: AsyncIterable[bytes],
        *,
        owner: str,
        filename: str,
        content_type: str = DEFAULT_CONTENT_TYPE,
        job_id: uuid.UUID | None = None,
        role: str = "input",
        max_bytes: int | None = None,
        fence: sql.Fence | None = None,
    ) -> Blob:
        """Store the stream; BlobTooLarge past the cap with nothing kept. With `fence` (a
        worker's output), the row is written only while that worker holds the job (else
        `BlobFenced`, nothing kept)."""
        limit = self.max_bytes if max_bytes is None else min(max_bytes, self.max_bytes)
        if fence is not None and job_id is None:
            raise ValueError("a fenced blob needs its job_id")
        draft = sql.NewBlob(
            id=uuid.uuid4(),
            owner=owner,
            job_id=job_id,
            role=check_role(role),
            filename=safe_filename(filename),
            content_type=safe_content_type(content_type),
            size=0,
            sha256="",
            storage="",
        )
        backend = self._dir if self._dir is not None else self._lo
        row, created = await backend.write(chunks, Tally(limit), draft, fence)
        return _blob_of(row, created)

    async def put_file(
        self,
        path: Path | str,
        *,
        owner: str,
        filename: str,
        content_type: str = DEFAULT_CONTENT_TYPE,
        job_id: uuid.UUID | None = None,
        role: str = "input",
        max_bytes: int | None = None,
        fence: sql.Fence | None = None,
    ) -> Blob:
        """Store a local file (read in a thread, streamed like `put_stream`)."""
        async with contextlib.aclosing(file_chunks(Path(path), FILE_PIECE)) as chunks:
            return await self.put_stream(
                chunks,
                owner=owner,
                filename=filename,
                content_type=content_type,
                job_id=job_id,
                role=role,
                max_bytes=max_bytes,
                fence=fence,
            )

    @contextlib.asynccontextmanager
    async def receiving(
        self,
        *,
        owner: str,
        spool_dir: Path | str | None = None,
        role: str = "input",
        max_bytes: int | None = None,
    ) -> AsyncIterator[Receiving]:
        """A blob written while it arrives, for a caller that must look at the whole file
        before keeping it (an upload to probe). The caller writes the bytes to `path` (it
        creates and, on failure, removes that file), gives each batch to `tee`, and keeps
        the blob with `commit(...)`; leaving the context without it keeps nothing.

        With BLOB_DIR, `path` is the blob's own temporary name under it (`spool_dir` is not
        used) and `commit` fsyncs it, inserts the row and renames it: no second copy. With
        large objects, `path` is a spool file in `spool_dir` (None: the system's temp
        directory) for the caller to read, and `tee` writes each batch to a new large object
        at the same time, in one transaction that `commit` ends with the row (an upload
        costs the slower of the two, not their sum; it holds one pooled connection and an
        open transaction from its first batch to its commit)."""
        limit = self.max_bytes if max_bytes is None else min(max_bytes, self.max_bytes)
        draft = sql.NewBlob(
            id=uuid.uuid4(),
            owner=owner,
            job_id=None,
            role=check_role(role),
            filename="",
            content_type=DEFAULT_CONTENT_TYPE,
            size=0,
            sha256="",
            storage="",
        )
        if self._dir is not None:
            receive = self._dir.receive(draft, limit)
        else:
            spool = Path(spool_dir or tempfile.gettempdir()) / spool_name(draft.id)
            receive = self._lo.receive(draft, limit, spool)
        async with receive as incoming:
            yield Receiving(incoming, draft)

    # -- reading ------------------------------------------------------------------------------

    async def get(self, blob_id: uuid.UUID) -> Blob | None:
        row = await sql.blob_get(self.pool, blob_id)
        return None if row is None else _blob_of_record(row)

    async def for_job(self, job_id: uuid.UUID, role: str | None = None) -> list[Blob]:
        """The job's blobs (of one role when given), oldest first."""
        return [_blob_of_record(r) for r in await sql.blob_list_for_job(self.pool, job_id, role)]

    def read(
        self, blob: Blob, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncGenerator[bytes, None]:
        """Bytes [start, end) of the blob (end exclusive, None = to the end), in chunks of at
        most `chunk_size`. A range past the end is cut at the end (so `start >= size` yields
        nothing); a negative start, an end before the start or a chunk size < 1 is a
        ValueError, raised here rather than at the first chunk."""
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start!r}")
        if end is not None and end < start:
            raise ValueError(f"end ({end!r}) must be >= start ({start!r})")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
        stop = blob.size if end is None else min(end, blob.size)
        if start >= stop:
            return _nothing()
        return self._backend_of(blob).read(blob, start, stop, chunk_size)

    async def to_file(self, blob: Blob, path: Path | str) -> Path:
        """Copy the blob out to a local file (created 0600, or overwritten); returns the path.
        A failure (or a blob shorter than its row says) leaves no partial file."""
        target = Path(path)
        async with contextlib.aclosing(self.read(blob, chunk_size=FILE_PIECE)) as chunks:
            written = await write_local_file(target, chunks)
        if written != blob.size:
            await asyncio.to_thread(target.unlink, missing_ok=True)
            raise BlobNotFound(blob.id, f"read {written} of {blob.size} bytes")
        return target

    def _backend_of(self, blob: Blob) -> LargeObjects | Directory:
        if blob.storage == "lo":
            return self._lo
        if self._dir is None:
            raise BlobNotFound(blob.id, "it is stored under BLOB_DIR, which this process lacks")
        return self._dir

    # -- lifetime -----------------------------------------------------------------------------

    async def attach(
        self, conn: Conn, blob_id: uuid.UUID, job_id: uuid.UUID, *, owner: str | None = None
    ) -> bool:
        """Make an unattached blob the job's, inside the caller's transaction (the job
        insert); False when the blob is gone, already attached, or (given `owner`) another
        owner's."""
        return await sql.blob_attach(conn, blob_id, job_id, owner)

    async def delete(self, blob_id: uuid.UUID) -> bool:
        """Delete the blob (its bytes are freed by the trigger; its file, when this process
        has BLOB_DIR, at once); False when there was none."""
        row = await sql.blob_delete(self.pool, blob_id)
        if row is None:
            return False
        if (
            row["storage"] == "dir"
            and self._dir is not None
            and await self._dir.remove(row["path"])
        ):
            await sql.blob_garbage_forget_path(self.pool, row["path"])
        return True

    async def delete_unattached(
        self, older_than_seconds: float, *, batch: int = 1000, max_batches: int = 100
    ) -> int:
        """Delete blobs no job took within `older_than_seconds`, in batches; returns how many."""
        total = 0
        for _ in range(max_batches):
            n = await sql.blob_delete_unattached(self.pool, older_than_seconds, batch)
            total += n
            if n < batch:
                break
        return total

    async def sweep_garbage(self, *, batch: int = 1000, max_batches: int = 100) -> int:
        """Remove the files of deleted directory blobs (a file already gone just drops its
        row); returns how many rows went. Nothing without BLOB_DIR: another process sweeps."""
        if self._dir is None:
            return 0
        total = 0
        for _ in range(max_batches):
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await sql.blob_garbage_take(conn, batch)
                removed = [r["id"] for r in rows if await self._dir.remove(r["path"])]
                if removed:
                    await sql.blob_garbage_forget(conn, removed)
            total += len(removed)
            if len(rows) < batch or not removed:
                break
        return total


class Receiving:
    """See `BlobStore.receiving`."""

    def __init__(self, incoming: Incoming, draft: sql.NewBlob) -> None:
        self._incoming = incoming
        self._draft = draft
        self.path = incoming.path
        self.tee = incoming.tee

    async def commit(self, *, filename: str, content_type: str, size: int, sha256: str) -> Blob:
        """Keep the blob whose bytes were written (size and sha256 as the caller counted)."""
        row = replace(
            self._draft,
            filename=safe_filename(filename),
            content_type=safe_content_type(content_type),
            size=size,
            sha256=sha256,
        )
        stored, created = await self._incoming.commit(row)
        return _blob_of(stored, created)


async def _nothing() -> AsyncGenerator[bytes, None]:
    empty: tuple[bytes, ...] = ()
    for piece in empty:  # an async generator that yields nothing
        yield piece


def _blob_of(row: sql.NewBlob, created_at: dt.datetime) -> Blob:
    return Blob(
        id=row.id,
        owner=row.owner,
        job_id=row.job_id,
        role=row.role,
        filename=row.filename,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        created_at=created_at,
        storage=row.storage,
        lo_oid=row.lo_oid,
        path=row.path,
    )


def _blob_of_record(r: asyncpg.Record) -> Blob:
    return Blob(
        id=r["id"],
        owner=r["owner"],
        job_id=r["job_id"],
        role=r["role"],
        filename=r["filename"],
        content_type=r["content_type"],
        size=r["size"],
        sha256=r["sha256"],
        created_at=r["created_at"],
        storage=r["storage"],
        lo_oid=r["lo_oid"],
        path=r["path"],
    )
