"""`pieces` re-cuts any chunking into even pieces without losing or reordering a byte."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from jobserver.blobs.models import BlobTooLarge
from jobserver.blobs.streams import Tally, pieces


async def _chunks(sizes: list[int], data: bytes) -> AsyncIterator[bytes]:
    pos = 0
    for n in sizes:
        yield data[pos : pos + n]
        pos += n


@pytest.mark.parametrize(
    "sizes",
    [
        [],
        [0, 0],
        [10],
        [16],
        [1] * 40,
        [16, 16, 16],
        [15, 1, 17, 0, 31, 2],
        [100],  # one chunk much bigger than a piece
        [3, 100, 5],
    ],
)
async def test_pieces_keep_every_byte_in_order(sizes: list[int]) -> None:
    data = os.urandom(sum(sizes))
    out = [p async for p in pieces(_chunks(sizes, data), 16)]
    assert b"".join(out) == data
    assert all(len(p) == 16 for p in out[:-1])
    assert all(0 < len(p) <= 16 for p in out)
    assert all(isinstance(p, bytes) for p in out)


async def test_tally_counts_hashes_and_caps() -> None:
    import hashlib

    t = Tally(limit=10)
    for piece in (b"hello", b"world"):
        t.count(piece)
        await t.hash(piece)
    assert (t.size, t.sha256) == (10, hashlib.sha256(b"helloworld").hexdigest())
    with pytest.raises(BlobTooLarge) as e:
        t.count(b"!")
    assert e.value.limit == 10
    assert str(e.value).startswith("blob_too_large:")
