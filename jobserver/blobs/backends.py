"""Where blob bytes live: PostgreSQL large objects, or files under a directory.

Both backends stream: they write a blob piece by piece while the `Tally` counts and hashes it,
insert its row (`jobserver.db.blobs.blob_insert`, fenced for a worker's output) and read a
byte range back piece by piece. Neither ever holds a whole blob.

`LargeObjects` (storage 'lo', the default: nothing more to run): the bytes go in with
`lo_create` and `lo_put(oid, offset, bytea)` in pieces of WRITE_PIECE, inside ONE transaction
with the row insert, so a failed, cancelled or too-large upload leaves nothing (the rollback
takes the large object with it). While one `lo_put` is in flight the next piece is read from
the source and hashed. When the server has lz4, the transaction compresses with it (SET LOCAL
default_toast_compression): PostgreSQL tries to compress every 2 KiB large object page, and
pglz's attempt is what bounds the write speed. `receive` is the same transaction held open
for an upload: the caller's batches (about 1 MiB each) are written as they arrive, and
`commit` inserts the row and commits once the caller has checked the file. Reads are
`lo_get(oid, offset, length)` of READ_PIECE, READ_BATCH of them per round trip (no
transaction: a blob's bytes never change), one pooled connection per round trip so a slow
reader holds none, READ_AHEAD round trips in flight while the caller handles the batch before
(two beat one by about a third on loopback: the server reads the next batch while the client
decodes this one).

`Directory` (storage 'dir', BLOB_DIR): `<root>/<2 hex>/<uuid>`, mode 0600 (directories 0700).
The bytes go to a temporary name in the same directory (`.<uuid>.tmp`) and are fsync'd; then
the row is inserted and the file renamed into place (then the directory is fsync'd): a crash
between the two leaves a row, which expires (unattached) or goes with its job, and the
garbage sweep's `remove` deletes the file under either name; a crash before the row leaves
only the temporary name, which the pruner removes once old (leftovers.py). Any failure
removes the file (and the row, once inserted). `receive` is the same for an upload the
caller spools itself to the temporary name: no second copy. Reads are `pread` in a thread.
`remove(path)` deletes a file the garbage queue names and its temporary name (only paths of
that exact shape: a row can never make it delete anything else).

Chunk sizes were measured on loopback with a 200 MB blob (bench/blobs.py): large object writes
are bound by the server (each 2 KiB page is a row), reads by the client; see the README.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import datetime as dt
import os
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from jobserver.blobs.leftovers import temp_name
from jobserver.blobs.models import Blob, BlobFenced, BlobNotFound, BlobTooLarge
from jobserver.blobs.streams import Tally, pieces
from jobserver.db import blobs as sql
from jobserver.db.conn import Conn

WRITE_PIECE = 256 * 1024  # bytes per lo_put
READ_PIECE = 256 * 1024  # bytes per lo_get at most (a caller may ask for smaller chunks)
READ_BATCH = 8  # pieces per round trip
READ_AHEAD = 2  # round trips in flight while the caller handles the batch before
FILE_PIECE = 1024 * 1024  # bytes per write to a directory blob

_T = TypeVar("_T")
_RELATIVE = re.compile(r"[0-9a-f]{2}/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


Tee = Callable[[list[bytes | memoryview]], Awaitable[None]]
Commit = Callable[[sql.NewBlob], Awaitable[tuple[sql.NewBlob, dt.datetime]]]


@dataclass(frozen=True)
class Incoming:
    """An upload being received into a backend: the caller writes the bytes to `path` (a
    local spool file, created by the caller), gives each batch to `tee` as it writes it (it
    enforces the cap, BlobTooLarge), then probes the file and calls `commit` with the row."""

    path: Path
    tee: Tee
    commit: Commit


class LargeObjects:
    storage = "lo"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._lz4: bool | None = None  # asked of the server on the first write

    async def write(
        self,
        chunks: AsyncIterable[bytes],
        tally: Tally,
        draft: sql.NewBlob,
        fence: sql.Fence | None,
    ) -> tuple[sql.NewBlob, dt.datetime]:
        """Store the stream and its row in one transaction; returns (row, created_at)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if self._lz4 is None:
                self._lz4 = await sql.toast_lz4_available(conn)
            if self._lz4:
                await sql.toast_use_lz4(conn)
            oid = await sql.large_object_create(conn)
            async with contextlib.aclosing(pieces(chunks, WRITE_PIECE)) as source:
                await _put_all(conn, oid, source, tally)
            row = replace(
                draft, size=tally.size, sha256=tally.sha256, storage=self.storage, lo_oid=oid
            )
            created = await sql.blob_insert(conn, row, fence)
            if created is None:
                raise BlobFenced(f"job {draft.job_id} is no longer held by this worker")
            return row, created

    @contextlib.asynccontextmanager
    async def receive(self, draft: sql.NewBlob, limit: int, spool: Path) -> AsyncIterator[Incoming]:
        """An upload written to a new large object while it arrives (see `Incoming`): the
        connection is taken and the transaction begun at the first batch (a request refused
        before its body costs no round trip), and stays open until `commit` inserts the row
        and commits; leaving without it rolls the large object back."""
        async with contextlib.AsyncExitStack() as stack:
            conn: Conn | None = None
            tx: asyncpg.transaction.Transaction | None = None
            oid = offset = 0
            done = False

            async def begin() -> Conn:
                nonlocal conn, tx, oid
                if conn is None:
                    acquired = await stack.enter_async_context(self.pool.acquire())
                    tx = acquired.transaction()
                    await tx.start()
                    conn = acquired
                    if self._lz4 is None:
                        self._lz4 = await sql.toast_lz4_available(conn)
                    if self._lz4:
                        await sql.toast_use_lz4(conn)
                    oid = await sql.large_object_create(conn)
                return conn

            async def tee(chunks: list[bytes | memoryview]) -> None:
                nonlocal offset
                data = b"".join(chunks)
                if offset + len(data) > limit:
                    raise BlobTooLarge(limit)
                on = await begin()
                await sql.large_object_put(on, oid, offset, data)
                offset += len(data)

            async def commit(row: sql.NewBlob) -> tuple[sql.NewBlob, dt.datetime]:
                nonlocal done
                if row.size != offset:
                    raise BlobNotFound(row.id, f"wrote {offset} of {row.size} bytes")
                on = await begin()
                assert tx is not None
                row = replace(row, storage=self.storage, lo_oid=oid)
                created = await sql.blob_insert(on, row)
                assert created is not None  # no fence: always inserted
                await tx.commit()
                done = True
                return row, created

            try:
                yield Incoming(spool, tee, commit)
            finally:
                if tx is not None and not done:
                    # (had this failed, the pool's release rolls back an open transaction)
                    with contextlib.suppress(Exception):
                        await asyncio.shield(tx.rollback())

    async def read(
        self, blob: Blob, start: int, end: int, chunk: int
    ) -> AsyncGenerator[bytes, None]:
        assert blob.lo_oid is not None
        oid, step = blob.lo_oid, max(1, min(chunk, READ_PIECE))

        async def fetch(offset: int) -> list[bytes]:
            try:
                return await sql.large_object_get_pieces(
                    self.pool, oid, offset, end, step, READ_BATCH
                )
            except asyncpg.UndefinedObjectError:  # deleted while being read
                raise BlobNotFound(blob.id) from None

        # READ_AHEAD batches in flight, each on its own pooled connection, fetched while the
        # caller handles the one before; each batch's range is fixed up front, so one that
        # comes back short (a large object shorter than its row) ends the read
        span = step * READ_BATCH
        ahead: collections.deque[tuple[asyncio.Future[list[bytes]], int]] = collections.deque()
        asked = start
        try:
            while True:
                while asked < end and len(ahead) < READ_AHEAD:
                    ahead.append((asyncio.ensure_future(fetch(asked)), min(span, end - asked)))
                    asked += span
                if not ahead:
                    return
                fetching, expected = ahead.popleft()
                batch = await fetching
                if sum(len(p) for p in batch) != expected:
                    raise BlobNotFound(blob.id, "large object shorter than its row")
                for data in batch:
                    if data:
                        yield data
        finally:
            for pending, _ in ahead:
                pending.cancel()
            for pending, _ in ahead:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending


async def _put_all(conn: Conn, oid: int, source: AsyncIterator[bytes], tally: Tally) -> None:
    """Write the pieces in order, the next one read and hashed while one is in flight."""
    offset = 0
    in_flight: asyncio.Task[None] | None = None
    try:
        async for piece in source:
            tally.count(piece)
            await tally.hash(piece)
            if in_flight is not None:
                await asyncio.shield(in_flight)  # a cancel stops the upload, not the query
            in_flight = asyncio.ensure_future(sql.large_object_put(conn, oid, offset, piece))
            offset += len(piece)
        if in_flight is not None:
            await asyncio.shield(in_flight)
    finally:
        # a failure elsewhere (the source, the cap): let the write in flight end before the
        # transaction rolls back on this connection
        if in_flight is not None and not in_flight.done():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await in_flight


class Directory:
    storage = "dir"

    def __init__(self, pool: asyncpg.Pool, root: Path) -> None:
        self.pool = pool
        self.root = root

    @staticmethod
    def relative_path(blob_id: uuid.UUID) -> str:
        return f"{blob_id.hex[:2]}/{blob_id}"

    def full_path(self, relative: str) -> Path:
        if _RELATIVE.fullmatch(relative) is None:
            raise ValueError(f"not a blob path: {relative!r}")
        return self.root / relative

    def temp_path(self, blob_id: uuid.UUID) -> Path:
        """Where a blob's bytes are written before they are renamed into place."""
        final = self.full_path(self.relative_path(blob_id))
        return final.with_name(temp_name(blob_id))

    @contextlib.asynccontextmanager
    async def receive(
        self, draft: sql.NewBlob, limit: int, spool: Path | None = None
    ) -> AsyncIterator[Incoming]:
        """An upload spooled straight to the blob's temporary name under the root (see
        `Incoming`); `commit` fsyncs it, inserts the row and renames it into place: never a
        second copy. The spool file is the caller's to create and, uncommitted, to remove."""
        temp = self.temp_path(draft.id)
        await asyncio.to_thread(_make_dirs, temp.parent)
        received = 0

        async def tee(chunks: list[bytes | memoryview]) -> None:
            nonlocal received
            received += sum(len(c) for c in chunks)
            if received > limit:
                raise BlobTooLarge(limit)

        async def commit(row: sql.NewBlob) -> tuple[sql.NewBlob, dt.datetime]:
            if row.size != received:
                raise BlobNotFound(row.id, f"received {received} of {row.size} bytes")
            await asyncio.to_thread(_fsync_path, temp)
            return await self._settle(temp, row, None)

        yield Incoming(temp, tee, commit)

    async def _settle(
        self, temp: Path, row: sql.NewBlob, fence: sql.Fence | None
    ) -> tuple[sql.NewBlob, dt.datetime]:
        """The row first, then the rename: a crash in between leaves a row whose file the
        usual path removes (an unattached blob expires, a job's goes with the job; the
        trigger queues the path and `remove` takes the file or its temporary name). Any
        failure here removes the row it inserted and the file."""
        relative = self.relative_path(row.id)
        final = self.full_path(relative)
        row = replace(row, storage=self.storage, path=relative)
        inserted = False
        renaming: concurrent.futures.Future[None] | None = None
        try:
            created = await sql.blob_insert(self.pool, row, fence)
            if created is None:
                raise BlobFenced(f"job {row.job_id} is no longer held by this worker")
            inserted = True
            renaming = _IO.submit(_rename_durably, temp, final)
            await asyncio.wrap_future(renaming)
            return row, created
        except BaseException:
            # once no thread works on it: a rename still running must not land after this
            if renaming is None:
                _remove_quietly(temp, final)
            else:
                renaming.add_done_callback(lambda _: _remove_quietly(temp, final))
            if inserted:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._forget(relative, row.id))
            raise

    async def _forget(self, relative: str, blob_id: uuid.UUID) -> None:
        if await sql.blob_delete(self.pool, blob_id) is not None:
            await sql.blob_garbage_forget_path(self.pool, relative)

    async def write(
        self,
        chunks: AsyncIterable[bytes],
        tally: Tally,
        draft: sql.NewBlob,
        fence: sql.Fence | None,
    ) -> tuple[sql.NewBlob, dt.datetime]:
        """Write the file, insert the row, rename the file into place (`_settle`); any
        failure removes the file."""
        relative = self.relative_path(draft.id)
        final = self.full_path(relative)
        temp = final.with_name(temp_name(draft.id))
        await asyncio.to_thread(_make_dirs, final.parent)
        f = await _ThreadFd.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                async with contextlib.aclosing(pieces(chunks, FILE_PIECE)) as source:
                    async for piece in source:
                        tally.count(piece)
                        await asyncio.gather(tally.hash(piece), f.call(_write_all, piece))
                await f.call(os.fsync)
            finally:
                f.close()
        except BaseException:
            _remove_quietly(temp)  # no call on it runs any more (close waits for the last)
            raise
        row = replace(draft, size=tally.size, sha256=tally.sha256)
        return await self._settle(temp, row, fence)

    async def read(
        self, blob: Blob, start: int, end: int, chunk: int
    ) -> AsyncGenerator[bytes, None]:
        assert blob.path is not None
        try:
            f = await _ThreadFd.open(self.full_path(blob.path), os.O_RDONLY)
        except FileNotFoundError:
            raise BlobNotFound(blob.id, "its file is gone") from None
        try:
            offset, step = start, max(1, chunk)
            while offset < end:
                data = await f.call(_read_at, min(step, end - offset), offset)
                if not data:
                    raise BlobNotFound(blob.id, "its file is shorter than its row")
                offset += len(data)
                yield data
        finally:
            f.close()

    async def remove(self, relative: str) -> bool:
        """Delete the file; True when it is gone (now or before), False when it could not be
        deleted. A path of another shape is never touched (True: nothing to keep it for)."""
        try:
            path = self.full_path(relative)
        except ValueError:
            return True
        temp = path.with_name(f".{path.name}.tmp")  # a crash between row and rename
        try:
            await asyncio.to_thread(_unlink_both, path, temp)
        except OSError:
            return False
        return True


# File work runs on these threads; a descriptor is closed only once no call on it runs (a task
# cancelled mid-write must not close an fd a thread still writes to, or one reused meanwhile).
_IO = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="blob-io")


class _ThreadFd:
    __slots__ = ("_last", "fd")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._last: concurrent.futures.Future[Any] | None = None

    @classmethod
    async def open(cls, path: Path, flags: int, mode: int = 0o600) -> _ThreadFd:
        opening = _IO.submit(os.open, path, flags | os.O_CLOEXEC, mode)
        try:
            return cls(await asyncio.wrap_future(opening))
        except asyncio.CancelledError:
            opening.add_done_callback(_close_opened)
            raise

    async def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """`fn(fd, *args)` on an I/O thread."""
        self._last = _IO.submit(fn, self.fd, *args)
        return await asyncio.wrap_future(self._last)

    def close(self) -> None:
        """Close now, or when the call still running ends (add_done_callback runs at once
        on a finished call)."""
        last, fd = self._last, self.fd
        if last is None:
            os.close(fd)
        else:
            last.add_done_callback(lambda _: os.close(fd))


def _close_opened(opening: concurrent.futures.Future[int]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        os.close(opening.result())


def _unlink_both(path: Path, temp: Path) -> None:
    for p in (path, temp):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_at(fd: int, length: int, offset: int) -> bytes:
    return os.pread(fd, length, offset)


def _make_dirs(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _remove_quietly(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _rename_durably(temp: Path, final: Path) -> None:
    os.rename(temp, final)
    dir_fd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


async def write_local_file(path: Path, chunks: AsyncIterable[bytes]) -> int:
    """Write the stream to a local file (created or truncated, mode 0600 when created);
    returns the bytes written. A failure removes the partial file."""
    f = await _ThreadFd.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written = 0
    try:
        try:
            async for chunk in chunks:
                await f.call(_write_all, chunk)
                written += len(chunk)
        finally:
            f.close()
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return written
