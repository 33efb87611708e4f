"""Retry back-off: a pure function of the DESIGN.md formula.

delay = min(max, base · 2^(attempt-1)), then spread by ±jitter (a fraction: 0.3 = ±30%), so
the result lies in [d·(1-jitter), d·(1+jitter)]. A definition's `Backoff` overrides any of the
three values, or replaces the formula with explicit `delays` (no jitter). `retry_delay` is
what the worker waits before the retry of a failed attempt: that back-off, or the delay the
job's code asked for (`RetryAfter`). A job's own `retryDelays` list is applied by the database
when the failure is written (`jobserver.db.job_runs.job_fail_many`), so the claim never reads
it; a `RetryAfter` delay is marked `pinned` there, so it wins over the job's list too.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from jobserver.config import Settings
from jobserver.core.retry_delays import listed_delay
from jobserver.registry import Backoff


def backoff_delay(
    attempt: int,
    base_seconds: float,
    max_seconds: float,
    jitter_percent: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retrying after failed attempt number `attempt` (1-based)."""
    exponent = min(max(attempt, 1) - 1, 62)  # 2^62 already dwarfs any sensible max
    delay = min(max_seconds, base_seconds * (2.0**exponent))
    if jitter_percent > 0:
        delay *= 1 + jitter_percent * (2 * rand() - 1)
    return max(0.0, delay)


def backoff_bounds(
    attempt: int, base_seconds: float, max_seconds: float, jitter_percent: float
) -> tuple[float, float]:
    """The smallest and largest delay `backoff_delay` can return (tests assert against it)."""
    exponent = min(max(attempt, 1) - 1, 62)
    delay = min(max_seconds, base_seconds * (2.0**exponent))
    return delay * (1 - jitter_percent), delay * (1 + jitter_percent)


def policy_for(settings: Settings, override: Backoff | None) -> tuple[float, float, float]:
    """(base, max, jitter) from the settings, with the definition's override on top."""
    base = settings.backoff_base_seconds
    top = settings.backoff_max_seconds
    jitter = settings.backoff_jitter_percent
    if override is not None:
        base = override.base_seconds if override.base_seconds is not None else base
        top = override.max_seconds if override.max_seconds is not None else top
        jitter = override.jitter_percent if override.jitter_percent is not None else jitter
    return base, max(top, base) if override is not None else top, jitter


def retry_delay(
    attempt: int,
    max_attempts: int,
    policy: tuple[float, float, float],
    *,
    final: bool = False,
    retry_after: float | None = None,
    delays: tuple[float, ...] | None = None,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds before the retry of failed attempt `attempt`, or None when none follows (no
    attempt left, or `final`). A `retry_after` the code asked for replaces the back-off (the
    server said when to come back: no jitter, no exponent); else the definition's explicit
    `delays`, if any (no jitter either); else the formula."""
    if attempt >= max_attempts or final:
        return None
    if retry_after is not None:
        return max(0.0, retry_after)
    if delays:
        return listed_delay(attempt, delays)
    return backoff_delay(attempt, *policy, rand=rand)
