"""Progress pacing and the per-job event cap of the job context, without a database."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from jobserver.registry import Definition
from jobserver.worker.context import JobContext
from jobserver.worker.deadlines import Deadlines
from jobserver.worker.executor import run
from jobserver.worker.held import HeldJob
from jobserver.worker.outcome import SUCCEEDED_NULL, Outcome
from jobserver.worker.writes import Limits
from tests.unit.worker.fakes import FakeHost
from tests.waiting import wait_for


async def _run(fn: Any, host: FakeHost) -> Outcome:
    """Run `fn` as a slot would, through the executor (which flushes the pending progress)."""
    held = HeldJob(uuid.uuid4(), 1, 1, Definition("t", 1, fn), {}, None, None, 0.0)
    ctx = JobContext(host, held.id, 1, 1, {})

    async def slot() -> Outcome:
        task = asyncio.current_task()
        assert task is not None
        held.begin(task, ctx, time.monotonic())
        return await run(held, ctx, Deadlines())

    return await asyncio.wait_for(asyncio.get_running_loop().create_task(slot()), 10)


async def test_progress_inside_the_interval_is_coalesced_and_the_last_is_written() -> None:
    host = FakeHost(limits=Limits(progress_interval=3600))

    async def fn(params: Any, ctx: JobContext) -> None:
        for i in range(1, 1001):
            assert await ctx.progress(i, 1000)

    assert await _run(fn, host) is SUCCEEDED_NULL
    assert [p["done"] for p in host.progress] == [1, 1000]  # the first at once, the last flushed
    assert host.progress_events == 2


async def test_a_pending_progress_is_written_when_the_interval_passes() -> None:
    host = FakeHost(limits=Limits(progress_interval=0.05))
    release = asyncio.Event()

    async def fn(params: Any, ctx: JobContext) -> None:
        await ctx.progress(1, 3)
        await ctx.progress(2, 3)  # pending: the timer writes it, the job keeps waiting
        await release.wait()

    task = asyncio.get_running_loop().create_task(_run(fn, host))
    await wait_for(lambda: _done(host.progress, 2))
    release.set()
    assert await task is SUCCEEDED_NULL
    assert [p["done"] for p in host.progress] == [1, 2]  # nothing left to flush at the end


async def _done(progress: list[Any], n: int) -> bool:
    return [p["done"] for p in progress][-1:] == [n]


async def test_the_last_progress_is_written_when_the_job_fails() -> None:
    host = FakeHost(limits=Limits(progress_interval=3600))

    async def fn(params: Any, ctx: JobContext) -> None:
        await ctx.progress(1, 2)
        await ctx.progress(2, 2)
        raise RuntimeError("after progress")

    out = await _run(fn, host)
    assert out.kind == "failed"
    assert [p["done"] for p in host.progress] == [1, 2]


async def test_events_past_the_cap_are_dropped_after_one_events_truncated() -> None:
    host = FakeHost(limits=Limits(max_events=5, progress_interval=0))
    host.stored = (2, False)  # two stored by an earlier attempt
    answers: list[bool] = []

    async def fn(params: Any, ctx: JobContext) -> None:
        await ctx.progress(1, 10)  # one progress event: 2 stored + 1, the budget has 2 left
        for i in range(10):
            answers.append(await ctx.emit_event("step", i))
        assert await ctx.progress(2, 10)  # over the cap: jobs.progress only

    assert await _run(fn, host) is SUCCEEDED_NULL
    assert answers == [True, True] + [False] * 8
    assert [e for e, _ in host.events] == ["custom"] * 2 + ["events_truncated"]
    assert host.events[-1][1] == {"limit": 5}
    assert [p["done"] for p in host.progress] == [1, 2] and host.progress_events == 1


async def test_a_job_already_truncated_writes_no_second_events_truncated() -> None:
    host = FakeHost(limits=Limits(max_events=5))
    host.stored = (5, True)

    async def fn(params: Any, ctx: JobContext) -> None:
        assert not await ctx.emit_event("step")

    assert await _run(fn, host) is SUCCEEDED_NULL
    assert host.events == []


async def test_a_fenced_progress_reports_false_from_then_on() -> None:
    host = FakeHost(fenced=True, limits=Limits(progress_interval=3600))

    async def fn(params: Any, ctx: JobContext) -> None:
        assert not await ctx.progress(1, 2)
        assert not await ctx.progress(2, 2)

    assert await _run(fn, host) is SUCCEEDED_NULL
    assert len(host.progress) == 1
