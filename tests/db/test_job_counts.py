"""Where jobs stand, against real PostgreSQL: a queued job's position follows the claim order
(priority, run_at, id) within its queue and stops at its scan bound; a list filter's queued and
running counts are exact while the rows they read stay within the cap, estimated past it; a
job's metadata merges shallowly, fenced and bounded."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from jobserver.db.job_counts import _POSITION, job_queue_position, job_status_counts
from jobserver.db.job_runs import job_metadata_merge
from jobserver.db.jobs import JobFilter, NewJob, job_insert_many

NOW = dt.datetime.now(dt.UTC)


def _at(minutes: float) -> dt.datetime:
    return NOW + dt.timedelta(minutes=minutes)


async def _insert(pool: asyncpg.Pool, **fields: Any) -> uuid.UUID:
    job = NewJob("echo", 1, 3, {}, **fields)
    async with pool.acquire() as conn:
        await job_insert_many(conn, [job])
    return job.id


async def _position(pool: asyncpg.Pool, job_id: uuid.UUID, scan: int = 10_000) -> tuple[int, bool]:
    row = await pool.fetchrow("SELECT queue, priority, run_at, id FROM jobs WHERE id = $1", job_id)
    assert row is not None
    return await job_queue_position(
        pool, row["queue"], row["priority"], row["run_at"], row["id"], scan
    )


async def test_position_follows_the_claim_order_within_the_queue(pool: asyncpg.Pool) -> None:
    other = await _insert(pool, queue="q2", priority=10, run_at=_at(-5))
    a = await _insert(pool, queue="q1", run_at=_at(-3))
    b = await _insert(pool, queue="q1", run_at=_at(-2))
    urgent = await _insert(pool, queue="q1", priority=5, run_at=_at(-1))
    stale = await _insert(pool, queue="q1", run_at=_at(-1.5), expires_at=_at(-0.5))
    later = await _insert(pool, queue="q1", run_at=_at(60))
    tie_first = await _insert(pool, queue="q1", run_at=_at(-1))
    tie_second = await _insert(pool, queue="q1", run_at=_at(-1))  # a later id: behind it
    assert tie_first < tie_second
    expected = {
        other: 0,  # the only job of its queue
        urgent: 0,  # q2's higher priority is walked over, not counted
        a: 1,
        b: 2,
        stale: 3,  # an expired job is not ready: it never counts, but has its place
        tie_first: 3,
        tie_second: 4,
        later: 5,  # delayed: behind every ready job of its priority
    }
    for job_id, ahead in expected.items():
        assert await _position(pool, job_id) == (ahead, False), job_id


async def test_position_stops_at_its_scan_bound(pool: asyncpg.Pool) -> None:
    ids = [await _insert(pool, run_at=_at(-10 + i)) for i in range(6)]
    assert await _position(pool, ids[5], scan=10) == (5, False)
    assert await _position(pool, ids[5], scan=3) == (3, True)  # at least 3 ahead
    assert await _position(pool, ids[2], scan=3) == (2, False)


async def test_position_plan_walks_the_ready_index(pool: asyncpg.Pool) -> None:
    """Bounded by the index walk: both branches read jobs_ready_idx in claim order (a table
    of mostly finished jobs, as a busy one is)."""
    jobs = [NewJob("echo", 1, 3, {}, run_at=_at(-1)) for _ in range(5000)]
    async with pool.acquire() as conn:
        await job_insert_many(conn, jobs)
    await pool.execute(
        "UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE id <> ALL($1::uuid[])",
        [j.id for j in jobs[:50]],
    )
    await pool.execute("VACUUM ANALYZE jobs")
    rows = await pool.fetch("EXPLAIN " + _POSITION, 0, NOW, uuid.uuid4(), "default", 10_000)
    plan = "\n".join(r[0] for r in rows)
    assert plan.count("jobs_ready_idx") == 2, plan
    assert "Sort" not in plan, plan


async def test_status_counts_follow_the_filter(pool: asyncpg.Pool) -> None:
    for _ in range(3):
        await _insert(pool, queue="q1")
    await _insert(pool, queue="q2", owner="alice")
    held = await _insert(pool, queue="q1")
    await pool.execute(
        "UPDATE jobs SET status = 'running', worker_id = 'w', attempt = 1 WHERE id = $1", held
    )
    assert await job_status_counts(pool, JobFilter()) == (4, 1, False)
    assert await job_status_counts(pool, JobFilter(queue="q1")) == (3, 1, False)
    assert await job_status_counts(pool, JobFilter(owner="alice")) == (1, 0, False)
    assert await job_status_counts(pool, JobFilter(statuses=["running"])) == (0, 1, False)
    assert await job_status_counts(pool, JobFilter(statuses=["failed"])) == (0, 0, False)
    later = JobFilter(created_after=NOW + dt.timedelta(hours=1))
    assert await job_status_counts(pool, later) == (0, 0, False)
    # past the cap of rows read: the planner's estimate (at least what the rows read matched);
    # one owner's count reads only that owner's rows, so it stays exact
    pending, running, estimated = await job_status_counts(pool, JobFilter(), cap=2)
    assert estimated and pending >= 3 and running == 1
    pending, running, estimated = await job_status_counts(pool, JobFilter(queue="q2"), cap=2)
    assert estimated and running == 0
    assert await job_status_counts(pool, JobFilter(owner="alice"), cap=2) == (1, 0, False)


async def test_metadata_merges_shallowly_fenced_and_bounded(pool: asyncpg.Pool) -> None:
    job_id = await _insert(pool)
    await pool.execute(
        "UPDATE jobs SET status = 'running', worker_id = 'w1', attempt = 1 WHERE id = $1", job_id
    )

    async def merge(patch: str, worker: str = "w1", attempt: int = 1, limit: int = 1000) -> Any:
        async with pool.acquire() as conn:
            return await job_metadata_merge(conn, worker, job_id, attempt, patch, limit)

    assert (await merge('{"sent": 1, "batch": {"n": 1}}'))[0] is True
    assert (await merge('{"sent": 42, "batch": {"m": 2}}'))[0] is True
    stored = await pool.fetchval("SELECT metadata FROM jobs WHERE id = $1", job_id)
    assert stored == {"sent": 42, "batch": {"m": 2}}  # keys replaced whole, not deep-merged
    assert await merge('{"sent": 43}', worker="w2") == (False, None)  # another worker: fenced
    assert await merge('{"sent": 43}', attempt=2) == (False, None)  # another attempt: fenced
    stored_after, size = await merge('{"big": "' + "x" * 2000 + '"}')
    assert not stored_after and size is not None and size > 1000  # merged object over the limit
    stored = await pool.fetchval("SELECT metadata FROM jobs WHERE id = $1", job_id)
    assert stored == {"sent": 42, "batch": {"m": 2}}
