"""part_chunks (jobserver.api.part_reader) over an aiohttp StreamReader fed piece by piece, so
every chunk edge lands where the test puts it: the part's bytes come out exact, the stream is
left at the next boundary for MultipartReader, and a body cut inside the part is a ValueError."""

from __future__ import annotations

import asyncio
import os

import pytest
from aiohttp import BodyPartReader, MultipartReader, StreamReader
from multidict import CIMultiDict, CIMultiDictProxy

from jobserver.api.part_reader import part_chunks

BOUNDARY = "b0und4ry"
TRICKY = b"\r\n--b0und4rx" + os.urandom(3000) + b"\r\n--b0und" + b"\r\n" * 3 + b"\r\n-"


def body(file: bytes) -> bytes:
    return (
        (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=video; filename=a.mp4\r\n\r\n"
        ).encode()
        + file
        + (
            f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=quality\r\n\r\n720p"
            f"\r\n--{BOUNDARY}--\r\n"
        ).encode()
    )


class Protocol:
    """All a StreamReader asks of its protocol: flow control, a no-op here."""

    _reading_paused = False

    def pause_reading(self, *args: object, **kwargs: object) -> None: ...

    def resume_reading(self, *args: object, **kwargs: object) -> None: ...


def stream(data: bytes, piece: int, eof: bool = True) -> StreamReader:
    reader = StreamReader(Protocol(), 1 << 30, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    for i in range(0, len(data), piece):
        reader.feed_data(data[i : i + piece])
    if eof:
        reader.feed_eof()
    return reader


async def read_form(content: StreamReader) -> tuple[bytes, bytes]:
    headers = CIMultiDictProxy(
        CIMultiDict({"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    )
    reader = MultipartReader(headers, content)
    part = await reader.next()
    assert isinstance(part, BodyPartReader) and part.name == "video"
    file = b"".join([bytes(c) async for c in part_chunks(part)])
    field = await reader.next()
    assert isinstance(field, BodyPartReader) and field.name == "quality"
    value = await field.read()
    assert await reader.next() is None
    return file, bytes(value)


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 8, 9, 11, 13, 64, 1000, 1 << 20])
@pytest.mark.parametrize("file", [b"", b"x", b"\r", b"\r\n-", TRICKY])
async def test_the_part_is_exact_at_every_chunk_edge(piece: int, file: bytes) -> None:
    assert await read_form(stream(body(file), piece)) == (file, b"720p")


@pytest.mark.parametrize("piece", [1, 7, 4096])
async def test_a_body_cut_inside_the_part_is_a_value_error(piece: int) -> None:
    cut = body(TRICKY)[: len(body(b"")) // 2 + 1500]
    reader = MultipartReader(
        CIMultiDictProxy(
            CIMultiDict({"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
        ),
        stream(cut, piece),
    )
    part = await reader.next()
    assert isinstance(part, BodyPartReader)
    with pytest.raises(ValueError, match="ended inside a part"):
        async for _ in part_chunks(part):
            pass
