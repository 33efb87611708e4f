"""`RetryAfter`: a definition asks for its retry after a delay of its choosing.

The executor reports the delay (`Outcome.retry_after`), `retry_delay` (what the slot pool
uses for the failure's `delay_seconds`) takes it instead of the back-off while attempts remain,
and the exception bounds it to [0, MAX_RETRY_AFTER_SECONDS].
"""

from __future__ import annotations

from typing import Any

from jobserver.registry import MAX_RETRY_AFTER_SECONDS, PermanentError, RetryAfter
from jobserver.worker.backoff import backoff_bounds, retry_delay
from jobserver.worker.context import JobContext
from tests.unit.worker.test_executor import Job

POLICY = (2.0, 60.0, 0.3)


async def test_the_executor_reports_the_asked_delay_on_a_retryable_failure() -> None:
    async def busy(params: Any, ctx: JobContext) -> None:
        raise RetryAfter(7, "HTTP 429 from GET http://x/")

    out = await Job(busy).outcome()
    assert (out.kind, out.failure, out.final, out.retry_after) == ("failed", "failed", False, 7.0)
    assert out.error == "RetryAfter: HTTP 429 from GET http://x/"


async def test_other_failures_carry_no_delay() -> None:
    async def broken(params: Any, ctx: JobContext) -> None:
        raise ValueError("boom")

    async def fatal(params: Any, ctx: JobContext) -> None:
        raise PermanentError("no")

    assert (await Job(broken).outcome()).retry_after is None
    out = await Job(fatal).outcome()
    assert out.final and out.retry_after is None


def test_the_asked_delay_replaces_the_back_off() -> None:
    assert retry_delay(1, 3, POLICY, retry_after=1.0) == 1.0
    assert retry_delay(2, 3, POLICY, retry_after=0.0) == 0.0
    low, high = backoff_bounds(2, *POLICY)
    plain = retry_delay(2, 3, POLICY)
    assert plain is not None and low <= plain <= high and high < 100
    assert retry_delay(2, 3, POLICY, retry_after=100.0) == 100.0  # past BACKOFF_MAX: asked for


def test_no_retry_follows_the_last_attempt_or_a_final_failure() -> None:
    assert retry_delay(3, 3, POLICY, retry_after=1.0) is None
    assert retry_delay(1, 3, POLICY, final=True) is None
    assert retry_delay(3, 3, POLICY) is None


def test_the_delay_is_bounded() -> None:
    assert RetryAfter(-5, "x").seconds == 0.0
    assert RetryAfter(10**9, "x").seconds == MAX_RETRY_AFTER_SECONDS == 3600.0
    assert RetryAfter(1.5, "x").seconds == 1.5
