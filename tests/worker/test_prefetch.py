"""The local buffer of claimed jobs: deep queues are claimed ahead, buffered jobs are held like
running ones (cancel, expiry, shutdown), slots run one job after another."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg

from jobserver.config import Settings
from jobserver.db.events import job_events_list
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.worker.worker import Worker
from tests.worker.conftest import REGISTRY, attempts, events, job, status_is, submit, wait_for
from tests.worker.test_cancel import cancel


async def _ran(db: asyncpg.Pool, jid: object) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM ledger WHERE job_id = $1", jid))


async def test_deep_queue_is_claimed_ahead_but_runs_within_the_limit(
    db: asyncpg.Pool, start_worker
) -> None:
    ids = await submit(db, "test.ledger", [{"sleep": 0.02} for _ in range(60)])
    w = await start_worker(concurrency=2, prefetch_max=20)
    seen_buffered = 0

    async def all_done() -> bool:
        nonlocal seen_buffered
        seen_buffered = max(seen_buffered, len(w.ready))
        assert w.running <= 2
        return bool(
            await db.fetchval(
                "SELECT count(*) = 60 FROM jobs WHERE id = ANY($1) AND status = 'succeeded'", ids
            )
        )

    await wait_for(all_done, within=15, step=0.005)
    assert seen_buffered > 0
    assert w.claim_calls < 30  # one round trip per 2 jobs without the buffer
    rows = await db.fetch("SELECT started_at, ended_at FROM ledger ORDER BY started_at")
    # never more than 2 jobs' code at once, whatever was claimed
    for a, b, c in itertools.combinations(rows, 3):
        assert not (
            max(a["started_at"], b["started_at"], c["started_at"])
            < min(a["ended_at"], b["ended_at"], c["ended_at"])
        )
    # started_at is when the code began (after the wait in the buffer), not the claim
    for jid in ids:
        row = await job(db, jid)
        began = await db.fetchval("SELECT started_at FROM ledger WHERE job_id = $1", jid)
        assert row["started_at"] <= began <= row["finished_at"]


async def test_stop_hands_buffered_jobs_back_unstarted(db: asyncpg.Pool, fast_settings) -> None:
    w = Worker(fast_settings, REGISTRY, concurrency=1)
    await w.start()
    ids = await submit(db, "test.sleep", [{"seconds": 60} for _ in range(3)])
    await wait_for(lambda: _ran(db, ids[0]))

    async def buffered() -> bool:
        return len(w.ready) >= 1

    await wait_for(buffered)
    waiting = [h.id for h in w.ready]
    for jid in waiting:
        assert (await job(db, jid))["status"] == "running"  # claimed, under the lease
    await w.stop(grace=0.1)
    for jid in ids:
        row = await job(db, jid)
        assert (row["status"], row["attempt"], row["worker_id"]) == ("queued", 0, None)
    for jid in waiting:
        assert not await _ran(db, jid)
        assert await events(db, jid) == ["created", "handed_back"]
        assert await attempts(db, jid) == []


async def test_cancelled_buffered_job_never_runs(
    db: asyncpg.Pool, start_worker, fast_settings: Settings
) -> None:
    w = await start_worker(replace(fast_settings, cancel_check_interval_ms=600_000), concurrency=1)
    first, second = await submit(db, "test.sleep", [{"seconds": 60}, {"seconds": 60}])
    await wait_for(lambda: _ran(db, first))

    async def second_buffered() -> bool:
        return any(h.id == second for h in w.ready)

    await wait_for(second_buffered)
    assert await cancel(db, second) == "cancelling"
    await wait_for(lambda: status_is(db, second, "cancelled"), within=5)
    assert not await _ran(db, second)
    # like a queued job cancelled: no attempt used, no run recorded
    assert (await job(db, second))["attempt"] == 0
    assert await attempts(db, second) == []
    assert await events(db, second) == ["created", "cancel_requested", "cancelled"]
    assert (await job(db, first))["status"] == "running"


async def test_buffered_job_past_its_expiry_is_handed_back(db: asyncpg.Pool, start_worker) -> None:
    w = await start_worker(concurrency=1)
    # one submission: the claim takes the blocker (higher priority) for the one slot and, the
    # claim being full, buffers the late job behind it; the late job expires while it waits
    blocker = NewJob("test.sleep", 1, 1, {"seconds": 2}, priority=10)
    late = NewJob("test.ledger", 1, 1, {}, expires_at=datetime.now(UTC) + timedelta(seconds=0.6))
    async with db.acquire() as conn:
        await job_insert_many(conn, [blocker, late])

    async def late_buffered() -> bool:
        return any(h.id == late.id for h in w.ready)

    await wait_for(late_buffered)
    await wait_for(lambda: status_is(db, blocker.id, "succeeded"), within=10)
    await wait_for(lambda: status_is(db, late.id, "queued"), within=5)
    row = await job(db, late.id)
    assert row["attempt"] == 0 and not await _ran(db, late.id)


async def test_a_slot_goes_on_after_a_timeout_and_a_failure(db: asyncpg.Pool, start_worker) -> None:
    [slow] = await submit(db, "test.sleep", [{"seconds": 30}], timeout_seconds=0.2, max_attempts=1)
    [bad] = await submit(db, "test.flaky", [{}], max_attempts=1)
    [ok] = await submit(db, "echo", [{"message": "after"}])
    await start_worker(concurrency=1)
    await wait_for(lambda: status_is(db, ok, "succeeded"), within=10)
    # successes and failures are acknowledged by separate statements: wait for each write
    await wait_for(lambda: status_is(db, slow, "failed"))
    await wait_for(lambda: status_is(db, bad, "failed", "succeeded"))
    assert (await job(db, slow))["last_error"] == "timed out after 0.2 s"
    assert (await job(db, bad))["status"] == "failed"
    assert (await job(db, ok))["result"] == {"message": "after"}


async def test_history_is_derived_in_order_with_positional_ids(
    db: asyncpg.Pool, start_worker
) -> None:
    [jid] = await submit(db, "test.flaky", [{"succeedOn": 2}])
    await start_worker()
    await wait_for(lambda: status_is(db, jid, "succeeded"), within=10)
    row = await job(db, jid)
    history = await job_events_list(db, jid)
    assert [(e["id"], e["event"], e["attempt"]) for e in history] == [
        (1, "created", None),
        (2, "started", 1),
        (3, "retry_scheduled", 1),
        (4, "started", 2),
        (5, "succeeded", 2),
    ]
    assert history[0]["at"] == row["created_at"]
    assert history[3]["at"] == row["started_at"] and history[4]["at"] == row["finished_at"]
    assert [e["at"] for e in history] == sorted(e["at"] for e in history)
    page = await job_events_list(db, jid, limit=2, after_id=2)
    assert [e["event"] for e in page] == ["retry_scheduled", "started"]
