"""Helpers the bench scripts share (bench/ is on sys.path when one of them runs)."""

from __future__ import annotations

import asyncio
import time

import aiohttp


async def wait_http(url: str, timeout: float = 30) -> None:
    """Until `url` answers 200 (a process just started), at most `timeout` seconds."""
    end = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < end:
            try:
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout} s")
