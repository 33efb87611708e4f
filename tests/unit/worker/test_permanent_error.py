"""`PermanentError`: a definition fails its attempt for good (no retry), e.g. `outbound_denied`.

The executor marks the outcome `final`; the slot pool then schedules no retry and the failure
write (`job_fail_many`) ends the job in `failed` whatever attempts remain (tests/worker/
test_call_api.py shows that against the database).
"""

from __future__ import annotations

from typing import Any

from jobserver.outbound.policy import OutboundDenied
from jobserver.registry import PermanentError
from jobserver.worker.context import JobContext
from tests.unit.worker.test_executor import Job


async def test_a_permanent_error_is_a_final_failure() -> None:
    async def denied(params: Any, ctx: JobContext) -> None:
        raise OutboundDenied("127.0.0.1 is loopback")

    out = await Job(denied).outcome()
    assert (out.kind, out.failure, out.final) == ("failed", "failed", True)
    assert out.error == "OutboundDenied: outbound_denied: 127.0.0.1 is loopback"


async def test_a_plain_permanent_error_has_its_own_code() -> None:
    async def fatal(params: Any, ctx: JobContext) -> None:
        raise PermanentError("bad input", code="bad_input")

    out = await Job(fatal).outcome()
    assert out.final and out.error == "PermanentError: bad_input: bad input"


async def test_other_failures_stay_retryable() -> None:
    async def broken(params: Any, ctx: JobContext) -> None:
        raise ValueError("boom")

    assert (await Job(broken).outcome()).final is False
