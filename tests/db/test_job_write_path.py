"""One write path for jobs: schedule fires, manual triggers and redrive insert through db/jobs'
insert, so every job shows exactly one `created` event through the read path the API uses
(db/events.py), and a fire time still yields exactly one job."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import asyncpg
import pytest

from jobserver.db.channels import JOBS_CHANNEL
from jobserver.db.dlq import dlq_insert_from_jobs, dlq_mark_redriven
from jobserver.db.events import job_events_insert, job_events_list
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.db.schedules import schedule_insert, schedule_jobs_insert
from jobserver.scheduler.cron import CronService
from tests.scheduler.helpers import insert_job, register_builtin


async def _history(pool: asyncpg.Pool, job_id: uuid.UUID) -> list[asyncpg.Record]:
    return await job_events_list(pool, job_id)


def _fire(name: str, at: dt.datetime, queue: str = "default") -> NewJob:
    """A job as the cron service builds it for one fire time."""
    return NewJob(
        "echo", 1, 3, {"m": 1}, queue=queue, owner="scheduler", schedule_name=name, scheduled_for=at
    )


async def test_a_job_fired_by_a_schedule_shows_one_created_event(pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    await schedule_insert(pool, "tick", every_seconds=1, definition_key="echo")
    cron = CronService(pool)
    await cron.run_once()  # plans the first fire
    await pool.execute("UPDATE schedules SET next_fire_at = now() - interval '3 seconds'")
    assert (await cron.run_once())["fired"] >= 1
    rows = await pool.fetch("SELECT id, scheduled_for FROM jobs WHERE schedule_name = 'tick'")
    assert rows
    for row in rows:
        history = await _history(pool, row["id"])
        assert [e["event"] for e in history] == ["created"]
        details = history[0]["details"]
        assert details["schedule"] == "tick"
        fired_at = dt.datetime.fromisoformat(details["scheduledFor"])
        assert fired_at == row["scheduled_for"]
    stored = await pool.fetchval("SELECT count(*) FROM job_events WHERE event = 'created'")
    assert stored == 0  # derived, not stored: one source, one event


async def test_a_fire_time_inserts_one_job_however_often_it_is_replayed(
    pool: asyncpg.Pool,
) -> None:
    t1 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    t2 = t1 + dt.timedelta(seconds=1)
    async with pool.acquire() as conn:
        first = _fire("s", t1)
        assert await schedule_jobs_insert(conn, [first]) == [first.id]
        assert await schedule_jobs_insert(conn, [_fire("s", t1)]) == []
        repeat, new = _fire("s", t1), _fire("s", t2)
        assert await schedule_jobs_insert(conn, [repeat, new]) == [new.id]
    rows = await pool.fetch("SELECT id FROM jobs WHERE schedule_name = 's' ORDER BY scheduled_for")
    assert [r["id"] for r in rows] == [first.id, new.id]


async def test_a_repeated_fire_time_races_to_one_job(pool: asyncpg.Pool) -> None:
    """Two schedulers inserting the same fire at once: one wins, the other inserts nothing."""
    at = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)

    async def fire() -> list[uuid.UUID]:
        async with pool.acquire() as conn, conn.transaction():
            return list(await schedule_jobs_insert(conn, [_fire("race", at)]))

    results = await asyncio.gather(*(fire() for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE schedule_name = 'race'") == 1


async def test_skipped_fires_send_no_notify(pool: asyncpg.Pool) -> None:
    at = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    heard: asyncio.Queue[str] = asyncio.Queue()

    def on_notify(*args: object) -> None:
        heard.put_nowait(str(args[3]))

    async with pool.acquire() as listener:
        await listener.add_listener(JOBS_CHANNEL, on_notify)
        try:
            async with pool.acquire() as conn:
                await schedule_jobs_insert(conn, [_fire("n", at, queue="q1")])
                assert await asyncio.wait_for(heard.get(), 5) == "q1"
                await schedule_jobs_insert(conn, [_fire("n", at, queue="q2")])  # a repeat
                await conn.execute("SELECT pg_notify($1, 'marker')", JOBS_CHANNEL)
                # notifications from one session arrive in order: the marker comes next
                assert await asyncio.wait_for(heard.get(), 5) == "marker"
        finally:
            await listener.remove_listener(JOBS_CHANNEL, on_notify)


async def test_a_redriven_job_shows_one_created_event(pool: asyncpg.Pool) -> None:
    """The redrive handler's writes (api/dlq.py): the new job via db/jobs' insert, then its
    `redriven` event."""
    dead = await insert_job(pool, status="failed", attempt=3, max_attempts=3)
    async with pool.acquire() as conn, conn.transaction():
        assert await dlq_insert_from_jobs(conn, [dead]) == 1
        job = NewJob("echo", 1, 3, {}, redriven_from=dead)
        assert await job_insert_many(conn, [job]) == [job.id]
        await dlq_mark_redriven(conn, dead, job.id)
        await job_events_insert(conn, [(job.id, "redriven", None, None, {"fromJobId": str(dead)})])
    history = await _history(pool, job.id)
    assert [e["event"] for e in history] == ["created", "redriven"]
    assert history[0]["details"] is None


async def test_a_stored_created_row_is_not_shown_twice(pool: asyncpg.Pool) -> None:
    """Schedule fires used to store a `created` row besides the derived one."""
    job = NewJob("echo", 1, 3, {})
    async with pool.acquire() as conn:
        await job_insert_many(conn, [job])
    await pool.execute("INSERT INTO job_events (job_id, event) VALUES ($1, 'created')", job.id)
    assert [e["event"] for e in await _history(pool, job.id)] == ["created"]


async def test_skip_fired_does_not_hide_other_conflicts(pool: asyncpg.Pool) -> None:
    at = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    async with pool.acquire() as conn:
        job = _fire("k", at)
        await schedule_jobs_insert(conn, [job])
        clash = _fire("k", at + dt.timedelta(seconds=1))
        clash.id = job.id  # same primary key, another fire time
        with pytest.raises(asyncpg.UniqueViolationError):
            await schedule_jobs_insert(conn, [clash])
