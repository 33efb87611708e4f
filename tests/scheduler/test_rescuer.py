"""Rescuer: expired leases are retried or failed into the DLQ; fenced against finished jobs."""

from __future__ import annotations

import asyncpg

from jobserver.scheduler.rescuer import Rescuer
from tests.scheduler.helpers import events_of, insert_job


async def test_defaults(pool: asyncpg.Pool) -> None:
    r = Rescuer(pool)
    assert (r.interval, r.batch, r.max_batches) == (5.0, 1000, 10)


async def test_start_stop_twice(pool: asyncpg.Pool) -> None:
    r = Rescuer(pool, interval=0.05)
    await r.stop()
    r.start()
    await r.wait_runs(2)
    await r.stop()
    await r.stop()
    assert not r.running


async def _job(pool: asyncpg.Pool, job_id) -> asyncpg.Record:  # type: ignore[no-untyped-def]
    return await pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)


async def test_expired_lease_with_attempts_left_is_requeued(pool: asyncpg.Pool) -> None:
    job_id = await insert_job(pool, status="running", attempt=1, max_attempts=3, lease_offset=-1)
    result = await Rescuer(pool).run_once()
    assert result == {"requeued": 1, "failed": 0, "cancelled": 0, "orphaned": 0}
    job = await _job(pool, job_id)
    assert job["status"] == "queued" and job["worker_id"] is None
    assert job["lease_expires_at"] is None and job["attempt"] == 1
    assert "lease expired" in job["last_error"]
    assert (await events_of(pool, job_id))[-2:] == ["lease_expired", "rescued"]
    outcome = await pool.fetchval(
        "SELECT outcome FROM job_attempts WHERE job_id = $1 AND attempt = 1", job_id
    )
    assert outcome == "lease_expired"
    assert await pool.fetchval("SELECT count(*) FROM dead_letter_jobs") == 0


async def test_expired_lease_on_last_attempt_fails_into_dlq(pool: asyncpg.Pool) -> None:
    job_id = await insert_job(pool, status="running", attempt=2, max_attempts=2, lease_offset=-1)
    result = await Rescuer(pool).run_once()
    assert result["failed"] == 1
    job = await _job(pool, job_id)
    assert job["status"] == "failed" and job["finished_at"] is not None
    assert (await events_of(pool, job_id))[-3:] == ["lease_expired", "failed", "dead_lettered"]
    dlq = await pool.fetchrow("SELECT * FROM dead_letter_jobs WHERE id = $1", job_id)
    assert dlq is not None and dlq["attempts"] == 2 and "lease expired" in dlq["last_error"]
    assert [h["outcome"] for h in dlq["history"]] == ["failed", "lease_expired"]


async def test_cancelling_with_expired_lease_is_cancelled(pool: asyncpg.Pool) -> None:
    job_id = await insert_job(pool, status="cancelling", lease_offset=-1)
    result = await Rescuer(pool).run_once()
    assert result["cancelled"] == 1
    job = await _job(pool, job_id)
    assert job["status"] == "cancelled" and job["finished_at"] is not None
    assert (await events_of(pool, job_id))[-2:] == ["lease_expired", "cancelled"]


async def test_live_leases_and_other_states_are_untouched(pool: asyncpg.Pool) -> None:
    live = await insert_job(pool, status="running", lease_offset=30)
    queued = await insert_job(pool, status="queued")
    done = await insert_job(pool, status="succeeded")
    result = await Rescuer(pool).run_once()
    assert result == {"requeued": 0, "failed": 0, "cancelled": 0, "orphaned": 0}
    assert [(await _job(pool, j))["status"] for j in (live, queued, done)] == [
        "running",
        "queued",
        "succeeded",
    ]


async def test_fenced_against_a_job_that_finishes_meanwhile(pool: asyncpg.Pool) -> None:
    """The worker's completion holds the row lock when the rescuer looks: the rescuer skips
    it (SKIP LOCKED), and after the commit the re-checked condition no longer matches."""
    job_id = await insert_job(pool, status="running", lease_offset=-1)
    other = await insert_job(pool, status="running", lease_offset=-1)
    async with pool.acquire() as worker_conn:
        tx = worker_conn.transaction()
        await tx.start()
        await worker_conn.execute(
            "UPDATE jobs SET status = 'succeeded', finished_at = now(), lease_expires_at = NULL"
            " WHERE id = $1 AND status = 'running' AND worker_id = 'w-test' AND attempt = 1",
            job_id,
        )
        result = await Rescuer(pool).run_once()  # runs while the worker's write is in flight
        await tx.commit()
    assert result["requeued"] == 1  # only the other job
    assert (await _job(pool, other))["status"] == "queued"
    assert (await _job(pool, job_id))["status"] == "succeeded"
    assert "lease_expired" not in await events_of(pool, job_id)
    again = await Rescuer(pool).run_once()
    assert again == {"requeued": 0, "failed": 0, "cancelled": 0, "orphaned": 0}
    assert (await _job(pool, job_id))["status"] == "succeeded"


async def test_renewed_lease_is_fenced(pool: asyncpg.Pool) -> None:
    job_id = await insert_job(pool, status="running", lease_offset=-1)
    await pool.execute(
        "UPDATE jobs SET lease_expires_at = now() + interval '1 minute' WHERE id = $1", job_id
    )
    assert (await Rescuer(pool).run_once())["requeued"] == 0
    assert (await _job(pool, job_id))["status"] == "running"


async def test_batches(pool: asyncpg.Pool) -> None:
    for _ in range(7):
        await insert_job(pool, status="running", lease_offset=-1)
    result = await Rescuer(pool, batch=3).run_once()
    assert result["requeued"] == 7
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE status = 'queued'") == 7
