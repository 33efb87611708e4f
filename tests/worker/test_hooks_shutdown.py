"""Hooks run at the right moments and never change an outcome; in-process graceful stop."""

from __future__ import annotations

import asyncpg

from jobserver.db.workers import worker_get
from tests.worker import defs
from tests.worker.conftest import REGISTRY, events, job, status_is, submit, wait_for


async def test_hooks_run_in_order(db: asyncpg.Pool, start_worker) -> None:
    defs.HOOK_CALLS.clear()
    [ok] = await submit(db, "test.hooks", [{}])
    await start_worker(concurrency=1)
    await wait_for(lambda: status_is(db, ok, "succeeded"))
    assert defs.HOOK_CALLS == [
        ("on_start", None),
        ("on_success", {"ok": True}),
        ("on_end", "succeeded"),
    ]
    defs.HOOK_CALLS.clear()
    [bad] = await submit(db, "test.hooks", [{"fail": True}])
    await wait_for(lambda: status_is(db, bad, "failed"))
    names = [c[0] for c in defs.HOOK_CALLS]
    assert names == ["on_start", "on_fail", "on_end"]
    assert "job failed on purpose" in str(defs.HOOK_CALLS[1][1])
    assert defs.HOOK_CALLS[2][1] == "failed"


async def test_raising_hooks_are_recorded_and_change_nothing(
    db: asyncpg.Pool, start_worker
) -> None:
    [ok, bad] = await submit(
        db, "test.hooks", [{"failHooks": True}, {"failHooks": True, "fail": True}]
    )
    w = await start_worker()
    await wait_for(lambda: status_is(db, ok, "succeeded"))
    await wait_for(lambda: status_is(db, bad, "failed"))
    assert (await job(db, ok))["result"] == {"ok": True}
    rows = await db.fetch(
        "SELECT details FROM job_events WHERE job_id = $1 AND event = 'hook_failed' ORDER BY id",
        ok,
    )
    assert [r["details"]["hook"] for r in rows] == ["on_start", "on_success", "on_end"]
    assert rows[0]["details"]["error"] == "RuntimeError: on_start exploded"
    assert (await events(db, bad)).count("hook_failed") == 3
    # the worker is still alive and claiming
    [after] = await submit(db, "echo", [{}])
    await wait_for(lambda: status_is(db, after, "succeeded"))
    assert not w._stopped.is_set()


async def test_stop_hands_back_unfinished_jobs_and_flushes(db: asyncpg.Pool, fast_settings) -> None:
    from jobserver.worker.worker import Worker

    # acknowledgements wait 30 s in the buffer: only the flush at stop can write them
    w = Worker(fast_settings, REGISTRY, ack_delay=30.0)
    await w.start()
    [long] = await submit(db, "test.sleep", [{"seconds": 60}])
    quick = await submit(db, "echo", [{} for _ in range(20)])
    await wait_for(lambda: status_is(db, long, "running"))

    async def all_ran() -> bool:
        return w.acks.backlog() == 20

    await wait_for(all_ran)
    assert not await db.fetchval(
        "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'succeeded'", quick
    )
    await w.stop(grace=0.2)
    await w.stop()  # a second stop is harmless
    row = await job(db, long)
    assert (row["status"], row["attempt"]) == ("queued", 0)
    assert (await events(db, long))[-1] == "handed_back"
    done = await db.fetchval(
        "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'succeeded'", quick
    )
    assert done == 20  # acknowledgements flushed before exit
    assert (await worker_get(db, w.worker_id))["status"] == "stopped"
