"""Cron service: fires due schedules into jobs exactly once per fire time, even across failover."""

from __future__ import annotations

import asyncio
import itertools
import signal
from datetime import timedelta

import asyncpg
import pytest

from jobserver.db.events import job_events_list
from jobserver.db.leader import leader_get
from jobserver.db.schedules import schedule_get, schedule_insert
from jobserver.scheduler.cron import CronService
from tests.scheduler.helpers import kill, output, register_builtin, spawn, wait_for


async def test_defaults(pool: asyncpg.Pool) -> None:
    svc = CronService(pool)
    assert svc.interval == 1.0 and svc.batch == 100
    assert svc.grace == timedelta(seconds=5)
    assert svc.may_run()  # no leader given: always runs


async def test_start_stop_twice(pool: asyncpg.Pool) -> None:
    svc = CronService(pool, interval=0.05)
    await svc.stop()
    svc.start()
    svc.start()  # idempotent
    await svc.wait_runs(2)
    await svc.stop()
    await svc.stop()
    assert not svc.running


async def _jobs(pool: asyncpg.Pool, name: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT id, scheduled_for, definition_version, max_attempts, queue, params, owner"
        " FROM jobs WHERE schedule_name = $1 ORDER BY scheduled_for",
        name,
    )


async def test_new_schedule_is_planned_then_fires(pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    await schedule_insert(
        pool,
        "every2",
        every_seconds=2,
        definition_key="echo",
        params={"message": "hi"},
        queue="q1",
        catchup_policy="all",
    )
    svc = CronService(pool)
    await svc.run_once()
    row = await schedule_get(pool, "every2")
    assert row is not None and row["next_fire_at"] is not None
    assert await _jobs(pool, "every2") == []
    # make it due (as if time passed) and tick
    await pool.execute(
        "UPDATE schedules SET next_fire_at = next_fire_at - interval '4 seconds' WHERE name = $1",
        "every2",
    )
    result = await svc.run_once()
    jobs = await _jobs(pool, "every2")
    assert result["fired"] == len(jobs) >= 2
    j = jobs[-1]
    # max_attempts 1: recurring runs are not retried unless the schedule sets maxAttempts
    assert (j["definition_version"], j["max_attempts"], j["queue"]) == (1, 1, "q1")
    assert j["params"] == {"message": "hi"} and j["owner"] == "system:scheduler"
    row = await schedule_get(pool, "every2")
    assert row["last_job_id"] == j["id"] and row["last_fire_at"] == j["scheduled_for"]
    events = await job_events_list(pool, j["id"])
    assert [e["event"] for e in events] == ["created"]
    assert events[0]["details"]["schedule"] == "every2"
    assert events[0]["details"]["scheduledFor"] is not None


async def test_two_schedulers_at_once_create_each_fire_once(pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    await schedule_insert(
        pool,
        "race",
        cron="* * * * * *",
        definition_key="echo",
        catchup_policy="all",
        catchup_limit=50,
    )
    await pool.execute(
        "UPDATE schedules SET next_fire_at = date_trunc('second', now()) - interval '20 seconds'"
    )
    a, b = CronService(pool), CronService(pool)
    await asyncio.gather(*(s.run_once() for s in (a, b, a, b)))
    jobs = await _jobs(pool, "race")
    fires = [j["scheduled_for"] for j in jobs]
    assert len(fires) == len(set(fires)) >= 20
    # replaying an old fire time (a stale leader) inserts nothing
    await pool.execute("UPDATE schedules SET next_fire_at = $1 WHERE name = 'race'", fires[0])
    await a.run_once()
    again = [j["scheduled_for"] for j in await _jobs(pool, "race")]
    assert len(again) == len(set(again))


async def test_overlap_skip_waits_for_the_running_job(pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    await schedule_insert(
        pool,
        "solo",
        every_seconds=1,
        definition_key="echo",
        overlap_policy="skip",
        catchup_policy="all",
    )
    svc = CronService(pool)
    due = "UPDATE schedules SET next_fire_at = date_trunc('second', now()) - $1::interval"
    await pool.execute(due, timedelta(0))
    await svc.run_once()
    first = len(await _jobs(pool, "solo"))
    assert first >= 1  # and still queued
    await pool.execute(due, timedelta(seconds=5))
    result = await svc.run_once()
    assert result["fired"] == 0 and result["missed"] >= 5
    assert len(await _jobs(pool, "solo")) == first
    await pool.execute("UPDATE jobs SET status = 'succeeded', finished_at = now()")
    await pool.execute(due, timedelta(seconds=5))
    result = await svc.run_once()
    assert result["fired"] >= 5 and len(await _jobs(pool, "solo")) >= first + 5


async def test_unknown_definition_skips_without_failing(pool: asyncpg.Pool) -> None:
    await schedule_insert(pool, "ghost", every_seconds=1, definition_key="nope")
    await pool.execute("UPDATE schedules SET next_fire_at = now() - interval '1 second'")
    result = await CronService(pool).run_once()
    assert result["fired"] == 0 and result["missed"] >= 1
    row = await schedule_get(pool, "ghost")
    assert row["next_fire_at"] is not None and row["last_job_id"] is None


async def test_expired_schedule_is_disabled(pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    await schedule_insert(
        pool,
        "old",
        every_seconds=1,
        definition_key="echo",
        next_fire_at=None,
    )
    await pool.execute("UPDATE schedules SET expires_at = now() - interval '1 second'")
    await CronService(pool).run_once()
    row = await schedule_get(pool, "old")
    assert row["enabled"] is False and await _jobs(pool, "old") == []


@pytest.mark.slow
async def test_exactly_once_through_leader_kill(database_url: str, pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    await schedule_insert(
        pool,
        "tick",
        every_seconds=1,
        definition_key="echo",
        catchup_policy="all",
        catchup_limit=100,
    )
    lease = 2.0
    env = {
        "DATABASE_URL": database_url,
        "LEADER_LEASE_SECONDS": str(lease),
        "SCHEDULER_TICK_SECONDS": "0.2",
    }
    procs = {n: spawn("jobserver.cli.scheduler", {**env, "SCHEDULER_ID": n}) for n in ("a", "b")}
    try:

        async def count() -> int:
            return int(await pool.fetchval("SELECT count(*) FROM jobs WHERE schedule_name='tick'"))

        await wait_for(lambda: _at_least(count, 2), within=15)
        row = await leader_get(pool, "scheduler")
        assert row is not None
        first = row["holder"]
        procs[first].send_signal(signal.SIGKILL)
        procs[first].wait(timeout=5)
        before = await count()
        # the survivor takes over and keeps firing, catching up the fires missed meanwhile
        await wait_for(lambda: _at_least(count, before + 3), within=lease * 4)
        other = "b" if first == "a" else "a"
        procs[other].send_signal(signal.SIGTERM)
        assert procs[other].wait(timeout=10) == 0, output(procs[other])
    finally:
        for p in procs.values():
            kill(p)
    jobs = await _jobs(pool, "tick")
    fires = [j["scheduled_for"] for j in jobs]
    assert len(fires) == len(set(fires))  # no fire time twice
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(fires)}
    assert gaps == {1.0}, f"missing or duplicate fires: {sorted(gaps)}"  # none lost either


async def _at_least(count, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await count() >= n
