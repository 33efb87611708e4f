"""Explicit retry delays: a list of seconds instead of the exponential back-off formula.

A definition (`Backoff(delays=(0, 10, 60))`) or a single job (`retryDelays` on a submission, a
schedule or a saved job; stored in `jobs.retry_delays`) may list the delays before its retries:
the retry after failed attempt n waits `delays[n-1]`, the last one repeating when attempts
outnumber the list. The job's own list wins over its definition's; neither gets jitter; a
`RetryAfter` the job's code raised (a server's Retry-After) wins over both.

Bounds (the API schemas, the registry and the database all use these): 1..MAX_RETRY_DELAYS
values, each a finite number of seconds in 0..MAX_RETRY_DELAY_SECONDS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

MAX_RETRY_DELAYS = 20
MAX_RETRY_DELAY_SECONDS = 30 * 86400  # BACKOFF_MAX_SECONDS takes at most as much


def listed_delay(attempt: int, delays: Sequence[float]) -> float:
    """Seconds before the retry of failed attempt `attempt` (1-based) by the list."""
    return float(delays[min(max(attempt, 1), len(delays)) - 1])


def delays_problem(delays: Any) -> str | None:
    """Why `delays` is no valid list of retry delays, or None."""
    if not isinstance(delays, list | tuple) or not delays:
        return "must be a non-empty list of seconds"
    if len(delays) > MAX_RETRY_DELAYS:
        return f"at most {MAX_RETRY_DELAYS} delays"
    for d in delays:
        if isinstance(d, bool) or not isinstance(d, int | float) or not math.isfinite(d):
            return "every delay must be a number of seconds"
        if not 0 <= d <= MAX_RETRY_DELAY_SECONDS:
            return f"every delay must lie within 0..{MAX_RETRY_DELAY_SECONDS} seconds"
    return None


def stored_delays(delays: Sequence[float] | None) -> list[float] | None:
    """The list as the database stores it (float8[]), None for no list."""
    return None if delays is None else [float(d) for d in delays]


def shown_delays(delays: Sequence[float] | None) -> list[float | int] | None:
    """The list as answers show it: whole seconds as integers (`[0, 10, 60]`, not 0.0)."""
    if delays is None:
        return None
    return [int(d) if float(d).is_integer() else d for d in delays]
