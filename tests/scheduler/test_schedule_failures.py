"""Failure watch: a schedule whose latest runs failed N times in a row is disabled; a success
in between resets the streak; the cron service re-checks at fire time (expired runs count)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg

from jobserver.db.dlq import dlq_insert_from_jobs
from jobserver.db.schedules import schedule_get, schedule_insert
from jobserver.scheduler.cron import CronService
from jobserver.scheduler.failures import FailureWatch, check_schedule
from tests.scheduler.helpers import events_of, register_builtin

_step = iter(range(1, 10_000))


async def run(pool: asyncpg.Pool, name: str, status: str, error: str | None = None) -> uuid.UUID:
    """One finished run of `name`, fired after the previous ones; a failed run also lands in
    the DLQ as the worker's final failure does."""
    job_id = uuid.uuid4()
    await pool.execute(
        """
        INSERT INTO jobs (id, definition_key, definition_version, status, attempt, max_attempts,
            last_error, schedule_name, scheduled_for, started_at, finished_at)
        VALUES ($1, 'failing', 1, $2, 1, 1, $3, $4,
            now() - interval '1 hour' + make_interval(secs => $5), now(), now())
        """,
        job_id,
        status,
        error,
        name,
        next(_step),
    )
    if status == "failed":
        async with pool.acquire() as conn, conn.transaction():
            await dlq_insert_from_jobs(conn, [job_id])
    return job_id


async def make(pool: asyncpg.Pool, name: str, **kw: object) -> None:
    await schedule_insert(pool, name, every_seconds=60, definition_key="failing", **kw)


async def test_defaults(pool: asyncpg.Pool) -> None:
    svc = FailureWatch(pool)
    assert (svc.interval, svc.batch, svc.default_max) == (1.0, 500, 3)
    assert svc.window == timedelta(hours=1) and svc.watermark is None
    assert svc.may_run()


async def test_start_stop_twice(pool: asyncpg.Pool) -> None:
    svc = FailureWatch(pool, interval=0.05)
    await svc.stop()
    svc.start()
    svc.start()
    await svc.wait_runs(2)
    await svc.stop()
    await svc.stop()
    assert not svc.running


async def test_three_failed_runs_disable_the_schedule(pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    await make(pool, "flaky")
    await make(pool, "other")
    svc = FailureWatch(pool)
    await run(pool, "flaky", "failed", "boom 1")
    await run(pool, "flaky", "failed", "boom 2")
    await run(pool, "other", "failed", "elsewhere")
    assert (await svc.run_once())["disabled"] == 0
    row = await schedule_get(pool, "flaky")
    assert row["enabled"] and row["consecutive_failures"] == 2
    last = await run(pool, "flaky", "failed", "boom 3")
    result = await svc.run_once()
    assert result == {"failed_runs": 1, "schedules": 1, "disabled": 1}
    row = await schedule_get(pool, "flaky")
    assert not row["enabled"] and row["next_fire_at"] is None
    assert row["consecutive_failures"] == 3 and row["disabled_at"] is not None
    assert row["disabled_reason"] == (
        f"disabled after 3 consecutive failed runs (last: job {last}: boom 3)"
    )
    assert "schedule_disabled" in await events_of(pool, last)
    details = await pool.fetchval(
        "SELECT details FROM job_events WHERE job_id = $1 AND event = 'schedule_disabled'", last
    )
    assert details == {"schedule": "flaky", "reason": row["disabled_reason"]}
    other = await schedule_get(pool, "other")
    assert other["enabled"] and other["consecutive_failures"] == 1
    # the watermark moved on: nothing is read twice, nothing disabled twice
    assert await svc.run_once() == {"failed_runs": 0, "schedules": 0, "disabled": 0}


async def test_a_success_in_between_resets_the_streak(pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    await make(pool, "mixed", max_consecutive_failures=2)
    svc = FailureWatch(pool)
    await run(pool, "mixed", "failed", "first")
    await run(pool, "mixed", "succeeded")
    await run(pool, "mixed", "failed", "third")
    await svc.run_once()
    row = await schedule_get(pool, "mixed")
    assert row["enabled"] and row["consecutive_failures"] == 1
    await run(pool, "mixed", "failed", "fourth")
    await svc.run_once()
    row = await schedule_get(pool, "mixed")
    assert not row["enabled"] and "2 consecutive failed runs" in row["disabled_reason"]


async def test_zero_never_disables_and_unfinished_runs_do_not_count(pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    await make(pool, "never", max_consecutive_failures=0)
    for i in range(5):
        await run(pool, "never", "failed", f"e{i}")
    await run(pool, "never", "queued")  # the newest run, still waiting: skipped
    await FailureWatch(pool).run_once()
    row = await schedule_get(pool, "never")
    assert row["enabled"] and row["consecutive_failures"] == 5


async def test_runs_before_the_last_disable_do_not_count(pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    await make(pool, "again")
    for i in range(3):
        await run(pool, "again", "failed", f"e{i}")
    # as if it had been disabled for these and re-enabled (the API clears the reason)
    await pool.execute(
        "UPDATE schedules SET disabled_at = now(), consecutive_failures = 0 WHERE name = 'again'"
    )
    async with pool.acquire() as conn:
        row = await schedule_get(conn, "again")
        assert not await check_schedule(conn, row, 3)
    await run(pool, "again", "failed", "after")
    await FailureWatch(pool).run_once()
    row = await schedule_get(pool, "again")
    assert row["enabled"] and row["consecutive_failures"] == 1


async def test_cron_rechecks_at_fire_time_and_expired_runs_count(pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    await schedule_insert(pool, "stale", every_seconds=1, definition_key="echo")
    await run(pool, "stale", "failed", "late 1")
    await run(pool, "stale", "expired")
    await run(pool, "stale", "expired")
    await pool.execute("UPDATE schedules SET next_fire_at = now() - interval '1 second'")
    before = await pool.fetchval("SELECT count(*) FROM jobs WHERE schedule_name = 'stale'")
    result = await CronService(pool).run_once()
    assert result["fired"] == 0
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE schedule_name = 'stale'") == before
    row = await schedule_get(pool, "stale")
    assert not row["enabled"]
    assert "3 consecutive failed runs" in row["disabled_reason"]
    assert "expired before it could run" in row["disabled_reason"]
