"""The answers of the `/v1/metrics` routes, kept for a few seconds on the app.

One `MetricsCache` per app (under `METRICS_CACHE_KEY`, next to the token and definition caches),
so two apps in one process (tests, `jobserver up`) never see each other's figures. An entry is
served while it is younger than the caller's `ttl`; at most `max_entries` are kept (the whole
cache is dropped when full: the keys are a handful of route/argument pairs). A miss is
computed once however many callers ask at the same time (`SingleFlight`): they all get the
answer of the one computation running (`ttl=0` too: it may have started just before).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from jobserver.api.singleflight import SingleFlight

CACHE_MAX = 256

Answer = dict[str, Any]


class MetricsCache:
    def __init__(self, max_entries: int = CACHE_MAX) -> None:
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, Answer]] = {}
        self.flights: SingleFlight[Answer] = SingleFlight()

    async def get(
        self, key: Hashable, ttl: float, compute: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        """`compute()` (stamped with `cachedAt`) unless an answer younger than `ttl` exists."""
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
        return await self.flights.run(key, lambda: self._compute(key, compute))

    async def _compute(self, key: Hashable, compute: Callable[[], Awaitable[Answer]]) -> Answer:
        started = time.monotonic()
        value = await compute()
        value["cachedAt"] = dt.datetime.now(dt.UTC)
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (started, value)
        return value

    def clear(self) -> None:
        self._entries.clear()
