"""Definitions of bench/rate_limit.py (loaded by its workers with `--module bench.rate_defs`)."""

from __future__ import annotations

from typing import Any

from jobserver.core.rate_limits import RateLimit
from jobserver.registry import definition

RATE = RateLimit(50, 1.0)


@definition("bench.rated", 1, default_max_attempts=1, rate_limit=RATE)
async def rated(params: Any, ctx: Any) -> None:
    """A no-op at most 50 starts per second, fleet-wide."""


@definition("bench.held", 1, default_max_attempts=1, rate_limit=RateLimit(1, 3600.0))
async def held(params: Any, ctx: Any) -> None:
    """One start an hour: its jobs stay queued beside the burn-down."""


@definition("bench.noop", 1, default_max_attempts=1)
async def noop(params: Any, ctx: Any) -> None:
    """An unlimited no-op for the burn-down."""
