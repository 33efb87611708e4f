"""Definitions of the blob tests (run by a real in-process worker): they read their input
blob and write outputs through `ctx.blobs`."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from jobserver.registry import definition


@definition("test.blobs.shout", 1, default_max_attempts=1, timeout_seconds=60)
async def shout(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Save the input upper-cased (streamed) and a copy of it (through a local file)."""
    source = await ctx.blobs.get(params["input"])

    async def upper() -> AsyncIterator[bytes]:
        async for chunk in ctx.blobs.read(source.id, chunk_size=64 * 1024):
            yield chunk.upper()

    loud = await ctx.blobs.save_stream(
        upper(), filename=f"loud-{source.filename}", content_type="text/plain"
    )
    with tempfile.TemporaryDirectory() as tmp:
        local = await ctx.blobs.download(source.id, Path(tmp) / "input")
        copy = await ctx.blobs.save_file(local, content_type=source.content_type, role="copy")
    head = b"".join([c async for c in ctx.blobs.read(str(source.id), 0, 5)])
    return {
        "loud": str(loud.id),
        "copy": str(copy.id),
        "head": head.decode(),
        "outputs": [b.filename for b in await ctx.blobs.attached("output")],
    }
