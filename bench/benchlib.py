"""Helpers the bench scripts share (bench/ is on sys.path when one of them runs)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg


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


async def new_database(cluster: Any, name: str) -> str:
    """The URL of database `name` on `cluster` (a LocalCluster), dropped first if it exists:
    every round of a benchmark starts from an empty schema."""
    admin = await asyncpg.connect(cluster.url())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return str(cluster.url(name))
