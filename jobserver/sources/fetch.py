"""Fetch every source of a job at once, a few at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from jobserver.sources.driver import SourceDriver
from jobserver.sources.spec import SourceSpec

DEFAULT_CONCURRENCY = 4


async def fetch_all(
    specs: Mapping[str, SourceSpec], driver: SourceDriver, concurrency: int = DEFAULT_CONCURRENCY
) -> dict[str, Any]:
    """`{name: data}` for every source; at most `concurrency` in flight. Every fetch is awaited
    to its end; the first failure in the sources' order is then raised (deterministic)."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(spec: SourceSpec) -> Any:
        async with gate:
            return await driver.fetch(spec)

    names = list(specs)
    results = await asyncio.gather(*(one(specs[n]) for n in names), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return dict(zip(names, results, strict=True))
