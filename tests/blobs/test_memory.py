"""A 200 MB blob streams through in bounded memory: writing it from a generator and reading it
back grow the process's RSS by a few pieces, never by the blob (psutil; a bound, not a time)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

import psutil

from jobserver.blobs import BlobStore
from tests.blobs.conftest import MiB, stream

SIZE = 200 * MiB
BOUND = 64 * MiB


async def test_a_200_mb_blob_streams_in_bounded_memory(store: BlobStore) -> None:
    me = psutil.Process()
    await store.put_stream(stream(os.urandom(3 * MiB)), owner="a", filename="warm-up")
    block = os.urandom(MiB)
    expected = hashlib.sha256()
    base = me.memory_info().rss
    peak = base

    async def generated() -> AsyncIterator[bytes]:
        nonlocal peak
        for i in range(SIZE // MiB):
            piece = block[i % 7 :] + block[: i % 7]  # a fresh object each time, all different
            expected.update(piece)
            yield piece
            peak = max(peak, me.memory_info().rss)

    blob = await store.put_stream(generated(), owner="a", filename="big.bin")
    assert (blob.size, blob.sha256) == (SIZE, expected.hexdigest())
    assert peak - base < BOUND, f"writing grew RSS by {(peak - base) / MiB:.0f} MiB"

    base = peak = me.memory_info().rss
    got = hashlib.sha256()
    async for chunk in store.read(blob):
        got.update(chunk)
        peak = max(peak, me.memory_info().rss)
    assert got.hexdigest() == blob.sha256
    assert peak - base < BOUND, f"reading grew RSS by {(peak - base) / MiB:.0f} MiB"
