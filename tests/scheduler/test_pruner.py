"""Pruner: finished jobs past retention go (with events and attempts); the rest stays."""

from __future__ import annotations

import asyncpg

from jobserver.db.dlq import dlq_insert_from_jobs
from jobserver.scheduler.pruner import Pruner
from tests.scheduler.helpers import insert_job

DAY = 86400.0


async def test_defaults(pool: asyncpg.Pool) -> None:
    p = Pruner(pool)
    assert p.interval == 60.0
    assert p.succeeded_seconds == p.cancelled_seconds == p.failed_seconds == 7 * DAY
    assert (p.batch, p.max_batches) == (1000, 100)


async def test_start_stop_twice(pool: asyncpg.Pool) -> None:
    p = Pruner(pool, interval=0.05)
    p.start()
    await p.wait_runs(2)
    await p.stop()
    await p.stop()
    assert not p.running


async def _exists(pool: asyncpg.Pool, job_id) -> bool:  # type: ignore[no-untyped-def]
    return bool(await pool.fetchval("SELECT count(*) FROM jobs WHERE id = $1", job_id))


async def test_prunes_by_status_retention_in_batches(pool: asyncpg.Pool) -> None:
    old_ok = [await insert_job(pool, status="succeeded", finished_ago=8 * DAY) for _ in range(5)]
    new_ok = await insert_job(pool, status="succeeded", finished_ago=1 * DAY)
    old_cancelled = await insert_job(pool, status="cancelled", finished_ago=3 * DAY)
    old_expired = await insert_job(pool, status="expired", finished_ago=3 * DAY)
    in_dlq = await insert_job(pool, status="failed", attempt=3, finished_ago=30 * DAY)
    redriven = await insert_job(pool, status="failed", attempt=3, finished_ago=30 * DAY)
    discarded = await insert_job(pool, status="failed", attempt=3, finished_ago=30 * DAY)
    queued = await insert_job(pool, created_ago=30 * DAY)
    running = await insert_job(pool, status="running", created_ago=30 * DAY)
    async with pool.acquire() as conn:
        await dlq_insert_from_jobs(conn, [in_dlq, redriven, discarded])
    await pool.execute("UPDATE dead_letter_jobs SET redriven_at = now() WHERE id = $1", redriven)
    await pool.execute("DELETE FROM dead_letter_jobs WHERE id = $1", discarded)
    await pool.execute(  # one stored event per job, to see it go with its job
        "INSERT INTO job_events (job_id, event) SELECT id, 'progress' FROM jobs"
    )
    events_before = await pool.fetchval("SELECT count(*) FROM job_events")

    pruner = Pruner(pool, cancelled_seconds=2 * DAY, batch=2)
    result = await pruner.run_once()
    assert result == {
        "pruned": 9,
        "succeeded": 5,
        "cancelled": 1,
        "expired": 1,
        "failed": 2,
    }
    for j in [*old_ok, old_cancelled, old_expired, redriven, discarded]:
        assert not await _exists(pool, j)
    for j in (new_ok, in_dlq, queued, running):
        assert await _exists(pool, j)
    # events and attempts went with their jobs
    assert await pool.fetchval("SELECT count(*) FROM job_events") == events_before - 9
    orphans = await pool.fetchval(
        "SELECT count(*) FROM job_attempts a WHERE NOT EXISTS"
        " (SELECT 1 FROM jobs j WHERE j.id = a.job_id)"
    )
    assert orphans == 0
    assert (await pruner.run_once())["pruned"] == 0


async def test_max_batches_bounds_one_run(pool: asyncpg.Pool) -> None:
    for _ in range(5):
        await insert_job(pool, status="succeeded", finished_ago=8 * DAY)
    p = Pruner(pool, batch=2, max_batches=2)
    assert (await p.run_once())["pruned"] == 4
    assert (await p.run_once())["pruned"] == 1


async def test_a_full_run_is_followed_at_once_by_the_next(pool: asyncpg.Pool) -> None:
    """A run that stopped at max_batches with work left does not wait out its interval (an
    hour here): the backlog drains run after run, then the loop waits again."""
    for _ in range(5):
        await insert_job(pool, status="succeeded", finished_ago=8 * DAY)
    p = Pruner(pool, interval=3600, batch=2, max_batches=1)
    p.start()
    try:
        await p.wait_runs(3, within=30)  # 2 + 2 + 1: the third came back short
        assert p.last_result["pruned"] == 1
        assert not p.behind()
        assert await pool.fetchval("SELECT count(*) FROM jobs") == 0
    finally:
        await p.stop()
    assert p.runs == 3  # and then it waited


async def test_behind_only_after_a_full_last_batch(pool: asyncpg.Pool) -> None:
    for _ in range(4):
        await insert_job(pool, status="succeeded", finished_ago=8 * DAY)
    p = Pruner(pool, batch=2, max_batches=2)
    assert (await p.run_once())["pruned"] == 4
    assert p.behind()  # both batches full: there may be more
    assert (await p.run_once())["pruned"] == 0
    assert not p.behind()
