"""`executor.run` without a database: each way a run can end, and the hooks around it.

The job runs in a task of its own, as in a worker slot; the test plays the worker's part
(setting the stop reason, cancelling the task) the way the slot pool and `Deadlines` do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from jobserver.registry import Definition
from jobserver.worker import executor
from jobserver.worker.context import JobContext
from jobserver.worker.deadlines import Deadlines
from jobserver.worker.executor import run
from jobserver.worker.held import CANCEL, HAND_BACK, LOST, TIMEOUT, HeldJob
from jobserver.worker.outcome import CANCELLED, RELEASED, SUCCEEDED_NULL, Outcome
from tests.unit.worker.fakes import FakeHost

Run = Callable[[Any, JobContext], Awaitable[Any]]


class Job:
    """One held job started in its own task (the slot), with the calls its hooks saw."""

    def __init__(self, fn: Run, *, timeout: float | None = None, **hooks: Any) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.started = asyncio.Event()
        for name in ("on_start", "on_success", "on_fail", "on_end"):
            if hooks.get(name) is True:
                hooks[name] = self._recorder(name)
        definition = Definition("t", 1, fn, timeout_seconds=timeout, **hooks)
        params = {"x": 1, "started": self.started}  # the job sets it once it runs
        self.held = HeldJob(uuid.uuid4(), 1, 3, definition, params, timeout, None, 0.0)
        self.host = FakeHost()
        self.ctx = JobContext(self.host, self.held.id, 1, 3, params)
        self.task = asyncio.get_running_loop().create_task(self._slot())

    def _recorder(self, name: str) -> Callable[..., Awaitable[None]]:
        async def hook(params: Any, ctx: JobContext, *args: Any) -> None:
            self.calls.append((name, args[0] if args else None))

        return hook

    async def _slot(self) -> Outcome:
        task = asyncio.current_task()
        assert task is not None
        self.held.begin(task, self.ctx, time.monotonic())
        outcome = await run(self.held, self.ctx, Deadlines())
        assert task.cancelling() == 0  # nothing left pending for the slot's next job
        return outcome

    async def outcome(self) -> Outcome:
        return await asyncio.wait_for(self.task, 5)


def _hook_failed(host: FakeHost) -> list[Any]:
    return [details for event, details in host.events if event == "hook_failed"]


async def _forever(params: Any, ctx: JobContext) -> None:
    params["started"].set()
    await asyncio.Event().wait()


# -- how a run ends ---------------------------------------------------------------------------


async def test_success_carries_the_result_as_stored_json() -> None:
    async def fn(params: Any, ctx: JobContext) -> Any:
        return {"got": params["x"], "text": "café"}

    out = await Job(fn).outcome()
    assert out.kind == "succeeded"
    assert out.result_json == '{"got":1,"text":"café"}'


async def test_a_none_result_is_the_shared_success() -> None:
    async def fn(params: Any, ctx: JobContext) -> None:
        return None

    assert await Job(fn).outcome() is SUCCEEDED_NULL


async def test_an_exception_is_a_failed_attempt_with_its_traceback() -> None:
    async def broken_job(params: Any, ctx: JobContext) -> None:
        raise ValueError("boom\x00")

    out = await Job(broken_job).outcome()
    assert (out.kind, out.failure) == ("failed", "failed")
    assert out.error == "ValueError: boom"  # NUL removed: PostgreSQL text cannot hold it
    assert out.traceback is not None
    assert "broken_job" in out.traceback and "ValueError" in out.traceback


async def test_an_exception_without_a_message_is_named_by_its_type() -> None:
    async def fn(params: Any, ctx: JobContext) -> None:
        raise KeyError

    assert (await Job(fn).outcome()).error == "KeyError"


async def test_a_result_json_cannot_hold_fails_the_attempt() -> None:
    async def fn(params: Any, ctx: JobContext) -> Any:
        return {"nan": float("nan")}

    out = await Job(fn).outcome()
    assert (out.kind, out.failure, out.traceback) == ("failed", "failed", None)
    assert out.error.startswith("result is not JSON-serialisable")


async def test_a_long_error_is_cut() -> None:
    async def fn(params: Any, ctx: JobContext) -> None:
        raise RuntimeError("x" * 20_000)

    out = await Job(fn).outcome()
    assert len(out.error) == executor.MAX_ERROR_CHARS + 1 and out.error.endswith("…")


async def test_a_run_past_its_timeout_is_cancelled_and_timed_out() -> None:
    job = Job(_forever, timeout=0.05)
    out = await job.outcome()
    assert (out.kind, out.failure) == ("failed", "timed_out")
    assert out.error == "timed out after 0.05 s" and out.traceback is None
    assert job.held.stop == TIMEOUT


async def test_a_job_that_swallows_its_timeout_still_times_out() -> None:
    async def stubborn(params: Any, ctx: JobContext) -> str:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        return "finished anyway"

    out = await Job(stubborn, timeout=0.05).outcome()  # the slot is left uncancelled (asserted)
    assert (out.kind, out.failure) == ("failed", "timed_out")


async def test_a_cancel_request_ends_cancelled_whatever_the_job_returns() -> None:
    async def polite(params: Any, ctx: JobContext) -> str:
        params["started"].set()
        await ctx.cancelled.wait()
        return "stopped early"

    job = Job(polite)
    await job.started.wait()
    assert job.held.request_cancel()
    job.ctx.cancelled.set()
    assert await job.outcome() is CANCELLED


async def test_a_cancel_request_then_the_grace_cancellation() -> None:
    job = Job(_forever)
    await job.started.wait()
    job.held.request_cancel()
    job.task.cancel()  # what the slot pool does after CANCEL_GRACE_MS
    assert await job.outcome() is CANCELLED
    assert not job.task.cancelled()


async def test_a_cancel_request_beats_a_failure() -> None:
    async def fails_when_asked(params: Any, ctx: JobContext) -> None:
        params["started"].set()
        await ctx.cancelled.wait()
        raise RuntimeError("interrupted")

    job = Job(fails_when_asked, on_fail=True, on_end=True)
    await job.started.wait()
    job.held.request_cancel()
    job.ctx.cancelled.set()
    assert await job.outcome() is CANCELLED
    assert job.calls == [("on_end", "cancelled")]  # no on_fail: it did not fail


@pytest.mark.parametrize("stop", [HAND_BACK, LOST])
async def test_a_job_handed_back_or_lost_is_released(stop: str) -> None:
    job = Job(_forever, on_success=True, on_fail=True, on_end=True)
    await job.started.wait()
    assert job.held.hand_back() if stop == HAND_BACK else job.held.lose()
    job.task.cancel()
    assert await job.outcome() is RELEASED
    assert job.calls == []  # nothing is reported: the job is not ours to end


async def test_a_job_lost_while_it_returns_is_released() -> None:
    async def fn(params: Any, ctx: JobContext) -> int:
        params["started"].set()
        await asyncio.sleep(0)
        return 1

    job = Job(fn)
    await job.started.wait()
    job.held.lose()  # no task cancel: it returns before the grace period
    assert await job.outcome() is RELEASED


async def test_an_inner_task_cancelled_is_a_failed_attempt() -> None:
    async def fn(params: Any, ctx: JobContext) -> None:
        inner = asyncio.get_running_loop().create_task(asyncio.sleep(10))
        await asyncio.sleep(0)
        inner.cancel()
        await inner

    out = await Job(fn).outcome()
    assert (out.kind, out.failure) == ("failed", "failed")
    assert out.error == "CancelledError" and out.traceback is not None


async def test_a_cancellation_of_the_slot_itself_propagates() -> None:
    job = Job(_forever)
    await job.started.wait()
    job.task.cancel()  # no stop reason: the worker is torn down
    with pytest.raises(asyncio.CancelledError):
        await job.task
    assert job.task.cancelled()


# -- hooks ------------------------------------------------------------------------------------


async def test_hooks_of_a_success_see_the_result() -> None:
    async def fn(params: Any, ctx: JobContext) -> Any:
        return {"ok": True}

    job = Job(fn, on_start=True, on_success=True, on_fail=True, on_end=True)
    assert (await job.outcome()).kind == "succeeded"
    assert job.calls == [("on_start", None), ("on_success", {"ok": True}), ("on_end", "succeeded")]


async def test_hooks_of_a_failure_see_the_exception() -> None:
    error = ValueError("bad")

    async def fn(params: Any, ctx: JobContext) -> None:
        raise error

    job = Job(fn, on_start=True, on_success=True, on_fail=True, on_end=True)
    assert (await job.outcome()).kind == "failed"
    assert job.calls == [("on_start", None), ("on_fail", error), ("on_end", "failed")]


async def test_hooks_of_a_timeout_see_its_description() -> None:
    job = Job(_forever, timeout=0.05, on_fail=True, on_end=True)
    assert (await job.outcome()).failure == "timed_out"
    assert job.calls == [("on_fail", "timed out after 0.05 s"), ("on_end", "timed_out")]


async def test_a_failing_hook_writes_hook_failed_and_changes_nothing_else() -> None:
    async def raising(params: Any, ctx: JobContext, *args: Any) -> None:
        raise RuntimeError("hook broke")

    async def fn(params: Any, ctx: JobContext) -> int:
        return 7

    job = Job(fn, on_start=raising, on_success=raising, on_end=raising)
    out = await job.outcome()
    assert (out.kind, out.result_json) == ("succeeded", "7")
    assert _hook_failed(job.host) == [
        {"hook": name, "error": "RuntimeError: hook broke"}
        for name in ("on_start", "on_success", "on_end")
    ]


async def test_a_hanging_hook_is_cut_off_after_hook_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(executor, "HOOK_TIMEOUT", 0.05)

    async def hangs(params: Any, ctx: JobContext, *args: Any) -> None:
        await asyncio.Event().wait()

    async def fn(params: Any, ctx: JobContext) -> None:
        raise ValueError("x")

    job = Job(fn, on_fail=hangs)
    out = await job.outcome()
    assert (out.kind, out.error) == ("failed", "ValueError: x")
    assert _hook_failed(job.host) == [{"hook": "on_fail", "error": "TimeoutError"}]


async def test_a_hook_failed_that_cannot_be_written_is_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def raising(params: Any, ctx: JobContext, *args: Any) -> None:
        raise RuntimeError("hook broke")

    async def fn(params: Any, ctx: JobContext) -> None:
        return None

    job = Job(fn, on_end=raising)
    job.host.fail_writes = True
    assert await job.outcome() is SUCCEEDED_NULL
    assert "could not record hook_failed" in caplog.text


@pytest.mark.parametrize(("stop", "expected"), [(CANCEL, CANCELLED), (HAND_BACK, RELEASED)])
async def test_a_stop_during_a_hook_decides_the_outcome(stop: str, expected: Outcome) -> None:
    entered = asyncio.Event()

    async def slow_end(params: Any, ctx: JobContext, *args: Any) -> None:
        entered.set()
        await asyncio.Event().wait()

    async def fn(params: Any, ctx: JobContext) -> int:
        return 1

    job = Job(fn, on_end=slow_end)
    await entered.wait()
    assert job.held.request_cancel() if stop == CANCEL else job.held.hand_back()
    job.task.cancel()
    assert await job.outcome() is expected


async def test_a_cancellation_during_a_hook_without_a_stop_propagates() -> None:
    entered = asyncio.Event()

    async def slow_start(params: Any, ctx: JobContext, *args: Any) -> None:
        entered.set()
        await asyncio.Event().wait()

    job = Job(_forever, on_start=slow_start)
    await entered.wait()
    job.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job.task


# -- the context ------------------------------------------------------------------------------


async def test_the_context_writes_through_its_host() -> None:
    async def fn(params: Any, ctx: JobContext) -> None:
        assert ctx.worker_id == "worker-test"
        assert await ctx.emit_event("step", {"n": 1})
        assert await ctx.progress(1, 4, "a quarter")

    job = Job(fn)
    assert await job.outcome() is SUCCEEDED_NULL
    assert job.host.events == [("custom", {"name": "step", "data": {"n": 1}})]
    assert job.host.progress == [{"done": 1, "total": 4, "percent": 25.0, "message": "a quarter"}]


# -- what PostgreSQL cannot store fails only its own attempt -----------------------------------


@pytest.mark.parametrize(
    ("result", "why"),
    [
        ({"x": "a\x00b"}, "holds a NUL character at x"),
        ({"x": "\ud800"}, "holds a lone surrogate at x"),
        ({"x": "y" * 2_000_000}, "is 2000008 bytes of JSON, over the limit of 1048576"),
    ],
)
async def test_a_result_postgres_cannot_store_fails_the_attempt(result: Any, why: str) -> None:
    async def fn(params: Any, ctx: JobContext) -> Any:
        return result

    out = await Job(fn).outcome()
    assert (out.kind, out.failure, out.traceback) == ("failed", "failed", None)
    assert out.error == f"result_not_storable: result {why}"


async def test_an_event_or_progress_postgres_cannot_store_fails_the_attempt() -> None:
    async def event(params: Any, ctx: JobContext) -> None:
        await ctx.emit_event("step", {"x": "\x00"})

    async def progress(params: Any, ctx: JobContext) -> None:
        await ctx.progress(1, 2, "half \ud800")

    out = await Job(event).outcome()
    assert out.error == "result_not_storable: event holds a NUL character at data.x"
    job = Job(progress)
    out = await job.outcome()
    assert out.error == "result_not_storable: progress holds a lone surrogate at message"
    assert job.host.events == [] and job.host.progress == []  # nothing reached a write


async def test_an_error_with_a_lone_surrogate_is_made_storable() -> None:
    async def fn(params: Any, ctx: JobContext) -> None:
        raise ValueError("bad \ud800 text\x00")

    out = await Job(fn).outcome()
    assert out.error == "ValueError: bad \\ud800 text"
    out.error.encode()
    assert out.traceback is not None
    out.traceback.encode()
