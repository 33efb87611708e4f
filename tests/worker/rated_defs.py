"""Rate-limited definitions of the rate-limit tests, in a registry of their own (`RATED`) so
no other test's registry sees them; `tests.worker.rated_worker` registers them in a worker
process (`--module tests.worker.rated_worker`)."""

from __future__ import annotations

import asyncio
from typing import Any

from jobserver.core.rate_limits import RateLimit
from jobserver.registry import Registry, definition

RATED = Registry()


@definition("test.rated", 1, default_max_attempts=1, rate_limit=RateLimit(5, 1.0), target=RATED)
async def rated(params: Any, ctx: Any) -> dict[str, Any]:
    """At most 5 starts per second, fleet-wide."""
    return {"n": params.get("n")}


@definition(
    "test.rated_keyed",
    1,
    default_max_attempts=1,
    rate_limit=RateLimit(2, 30.0, key="customer.id"),
    target=RATED,
)
async def rated_keyed(params: Any, ctx: Any) -> None:
    """At most 2 starts per 30 s per customer."""


@definition(
    "test.rated_slow", 1, default_max_attempts=1, rate_limit=RateLimit(1, 2.0), target=RATED
)
async def rated_slow(params: Any, ctx: Any) -> None:
    """One start per 2 s: a worker waits for the slot, it does not spin."""


@definition(
    "test.rated_capped",
    1,
    default_max_attempts=1,
    rate_limit=RateLimit(100, 1.0),
    concurrency_limit=1,
    target=RATED,
)
async def rated_capped(params: Any, ctx: Any) -> None:
    """A generous rate limit and one run at a time: only the concurrency limit holds jobs back
    (each runs a moment, so the next one is claimed while it is held)."""
    await asyncio.sleep(params.get("seconds", 0.3))
