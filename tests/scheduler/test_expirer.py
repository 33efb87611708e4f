"""Expirer: queued jobs past expires_at become expired, others stay."""

from __future__ import annotations

import asyncpg

from jobserver.scheduler.expirer import Expirer
from tests.scheduler.helpers import events_of, insert_job


async def test_defaults(pool: asyncpg.Pool) -> None:
    e = Expirer(pool)
    assert (e.interval, e.batch, e.max_batches) == (5.0, 1000, 10)


async def test_start_stop_twice(pool: asyncpg.Pool) -> None:
    e = Expirer(pool, interval=0.05)
    e.start()
    await e.wait_runs(2)
    await e.stop()
    await e.stop()
    assert not e.running


async def test_expires_only_queued_jobs_past_their_deadline(pool: asyncpg.Pool) -> None:
    gone = [await insert_job(pool, expires_offset=-1) for _ in range(5)]
    future = await insert_job(pool, expires_offset=60)
    forever = await insert_job(pool)
    running = await insert_job(pool, status="running", expires_offset=-1)
    result = await Expirer(pool, batch=2).run_once()
    assert result == {"expired": 5}
    for j in gone:
        row = await pool.fetchrow("SELECT status, finished_at FROM jobs WHERE id = $1", j)
        assert row["status"] == "expired" and row["finished_at"] is not None
        assert (await events_of(pool, j))[-1] == "expired"
    statuses = [
        await pool.fetchval("SELECT status FROM jobs WHERE id = $1", j)
        for j in (future, forever, running)
    ]
    assert statuses == ["queued", "queued", "running"]
    assert await Expirer(pool).run_once() == {"expired": 0}
