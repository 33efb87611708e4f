"""One computation shared by every caller that asks while it runs (single-flight).

Concurrent scrapes of `/metrics` or `/v1/metrics` must cost the database one refresh, not one
per scrape (25 scrapers would otherwise hold 25 pooled connections on the same slow query).
`SingleFlight.run(key, compute)` starts `compute()` as a task when none runs for `key` and
otherwise waits on the running one; a caller that gives up (its request is cancelled) never
cancels the computation the others wait for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[T]] = {}
        self.started = 0  # computations started (tests compare them with the callers)
        self.waiting = 0  # callers waiting on a computation now

    async def run(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(compute())
            self.started += 1
            self._running[key] = task
            task.add_done_callback(lambda t: self._finished(key, t))
        self.waiting += 1
        try:
            return await asyncio.shield(task)
        finally:
            self.waiting -= 1

    def _finished(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone away
