"""The body of one multipart/form-data part read straight from the request stream.

`part_chunks(part)` yields the part's bytes as they arrive, like repeated
`BodyPartReader.read_chunk` calls, at a fraction of the cost: aiohttp's reader joins every
chunk to the previous one to look for the boundary (two copies of each byte plus a search of
the join), which kept a large upload's receive near 200 MB/s on one core. This one takes the
stream's buffers one at a time as they were received (`readchunk`: no join, no copy),
searches each once, and checks the few bytes where a boundary could straddle two of them.
When the boundary turns up, what follows it goes back to the stream and the part is marked
ended, so `MultipartReader.next()` carries on as if aiohttp had read the part itself.

It relies on attributes of aiohttp's BodyPartReader (`_content`, `_boundary`, `_at_eof`,
`_length`, present since aiohttp 3.0); a part without them, with its own Content-Length or a
Content-Transfer-Encoding, is read with `read_chunk` instead. A body that ends before the
boundary is a ValueError, as aiohttp raises.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncGenerator

from aiohttp import BodyPartReader, hdrs

FALLBACK_CHUNK = 1 << 20


def _fast_path(part: BodyPartReader) -> bool:
    return (
        all(hasattr(part, a) for a in ("_content", "_boundary", "_at_eof", "_length"))
        and part._length is None
        and hdrs.CONTENT_TRANSFER_ENCODING not in part.headers
        and not part._at_eof
    )


async def part_chunks(part: BodyPartReader) -> AsyncGenerator[bytes | memoryview, None]:
    """The part's body in chunks of whatever size arrived (see the module doc)."""
    if not _fast_path(part):
        while chunk := await part.read_chunk(FALLBACK_CHUNK):
            yield chunk
        return
    content = part._content
    sub = b"\r\n" + part._boundary  # the delimiter that ends the part
    keep = len(sub) - 1  # at most this much of a delimiter can hide at a chunk's end
    held = b"\r\n"  # a part may be empty: its delimiter then starts with the CRLF that ended
    skip = 2  # the headers, so search as if it were there, and never yield it
    while True:
        data, chunk_end = await content.readchunk()  # one buffer as received: no join
        if not data:
            if chunk_end:  # the end of an HTTP chunk (Transfer-Encoding: chunked) only
                continue
            raise ValueError("the body ended inside a part (no closing boundary)")
        seam = held + data[:keep]
        at = seam.find(sub)
        if at < 0:
            at = data.find(sub)
            if at >= 0:
                at += len(held)
        if at >= 0:
            # the part ends `at` bytes into held + data
            if at > skip:
                if at <= len(held):
                    yield held[skip:at]
                else:
                    if len(held) > skip:
                        yield held[skip:]
                    yield memoryview(data)[: at - len(held)]
            start = at + 2 - len(held)  # from the boundary's "--" on
            rest = data[start:] if start >= 0 else held[at + 2 :] + data
            with warnings.catch_warnings():  # unread_data is deprecated; aiohttp uses it too
                warnings.simplefilter("ignore", DeprecationWarning)
                content.unread_data(rest)
            part._at_eof = True
            return
        if len(data) >= keep:
            if len(held) > skip:
                yield held[skip:]
            if len(data) > keep:
                yield memoryview(data)[: len(data) - keep]
            held, skip = data[len(data) - keep :], 0
        else:  # a small chunk: keep gathering
            held += data
            if len(held) - skip > keep:
                cut = len(held) - keep
                yield held[skip:cut]
                held, skip = held[cut:], 0
