"""Streaming helpers of the store: even pieces from any chunking, and the running tally.

- `pieces(chunks, size)`: re-cuts a stream of byte chunks of any sizes into pieces of `size`
  bytes (the last one shorter), copying only what must be joined: a big chunk is cut with a
  memoryview, so memory stays at about one piece plus one incoming chunk.
- `Tally`: the size and sha256 of what passed, and the cap: `tally.count(piece)` raises
  `BlobTooLarge` as soon as the total passes it (before the piece is written anywhere), then
  `await tally.hash(piece)`. Pieces of 64 KiB and more are hashed in a thread (hashlib
  releases the GIL), so hashing overlaps the database or disk write in flight and never holds
  up the event loop.
- `file_chunks(path, size)`: a local file's bytes, read in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator, AsyncIterable
from pathlib import Path

from jobserver.blobs.models import BlobTooLarge

THREAD_HASH_BYTES = 64 * 1024


async def pieces(chunks: AsyncIterable[bytes], size: int) -> AsyncGenerator[bytes, None]:
    buf = bytearray()
    async for chunk in chunks:
        if not chunk:
            continue
        if not buf and len(chunk) == size:
            yield bytes(chunk)
            continue
        view = memoryview(chunk)
        pos = 0
        if buf:
            take = min(size - len(buf), len(view))
            buf += view[:take]
            pos = take
            if len(buf) < size:
                continue
            yield bytes(buf)
            buf.clear()
        while len(view) - pos >= size:
            yield bytes(view[pos : pos + size])
            pos += size
        buf += view[pos:]
    if buf:
        yield bytes(buf)


class Tally:
    """Counts and hashes a stream under a cap (see the module docstring)."""

    __slots__ = ("_hash", "limit", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()

    def count(self, piece: bytes) -> None:
        """Add the piece to the size; BlobTooLarge once the total passes the cap."""
        self.size += len(piece)
        if self.size > self.limit:
            raise BlobTooLarge(self.limit)

    async def hash(self, piece: bytes) -> None:
        if len(piece) >= THREAD_HASH_BYTES:
            await asyncio.to_thread(self._hash.update, piece)
        else:
            self._hash.update(piece)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


async def file_chunks(path: Path, size: int) -> AsyncGenerator[bytes, None]:
    f = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(f.read, size):
            yield chunk
    finally:
        f.close()
