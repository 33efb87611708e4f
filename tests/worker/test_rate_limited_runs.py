"""Rate-limited jobs run by real workers: over the limit they stay queued and start when the
slot opens; the worker waits for that slot without spinning; and the limit holds across three
`jobserver-worker` processes (starts per window counted from the database)."""

from __future__ import annotations

import asyncio
import signal
import uuid
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from jobserver.core.rate_limits import job_rate
from jobserver.db.definitions import definition_upsert
from jobserver.db.jobs import NewJob, job_insert_many
from tests.waiting import wait_for
from tests.worker.rated_defs import RATED


@pytest.fixture
async def rated_db(db: asyncpg.Pool) -> asyncpg.Pool:
    async with db.acquire() as conn:
        for d in RATED.all():
            await definition_upsert(conn, d.metadata())
    return db


async def submit_rated(pool: asyncpg.Pool, key: str, params_list: list[Any]) -> list[uuid.UUID]:
    """Insert jobs with their rate fields computed as a submission computes them."""
    d = RATED.latest(key)
    assert d is not None
    jobs = []
    for p in params_list:
        rate = job_rate(None, d.key, d.rate_limit, p)
        assert rate is not None
        jobs.append(
            NewJob(
                definition_key=d.key,
                definition_version=d.version,
                max_attempts=1,
                params=p,
                rate_bucket=rate[0],
                rate_limit=rate[1],
                rate_period=rate[2],
            )
        )
    async with pool.acquire() as conn:
        return await job_insert_many(conn, jobs)


async def _count(pool: asyncpg.Pool, sql: str, *args: Any) -> int:
    return int(await pool.fetchval(sql, *args))


async def max_starts_per_window(pool: asyncpg.Pool, key: str, period: float) -> int:
    """The most starts (jobs.started_at) of `key` in any window [t, t + period)."""
    return int(
        await pool.fetchval(
            """
            SELECT coalesce(max(n), 0) FROM (
                SELECT (SELECT count(*) FROM jobs o WHERE o.definition_key = $1
                        AND o.started_at >= s.started_at
                        AND o.started_at < s.started_at + make_interval(secs => $2)) AS n
                FROM jobs s WHERE s.definition_key = $1 AND s.started_at IS NOT NULL) w
            """,
            key,
            period,
        )
    )


async def test_jobs_over_the_limit_stay_queued_and_run_when_the_slot_opens(
    rated_db: asyncpg.Pool, start_worker: Any
) -> None:
    await start_worker(registry=RATED, concurrency=20)
    ids = await submit_rated(rated_db, "test.rated", [{"n": i} for i in range(8)])
    await wait_for(
        lambda: _count(rated_db, "SELECT count(*) = 5 FROM jobs WHERE status = 'succeeded'")
    )
    # five started in the first second; the other three are still queued, not failed
    assert await _count(rated_db, "SELECT count(*) FROM jobs WHERE status = 'queued'") == 3
    await wait_for(
        lambda: _count(rated_db, "SELECT count(*) = 8 FROM jobs WHERE status = 'succeeded'")
    )
    assert await max_starts_per_window(rated_db, "test.rated", 1.0) <= 5
    spread = await rated_db.fetchval(
        "SELECT extract(epoch FROM max(started_at) - min(started_at)) FROM jobs WHERE id = ANY($1)",
        ids,
    )
    assert spread >= 1.0  # the last three waited for the window to move on


async def test_per_key_buckets_are_independent(rated_db: asyncpg.Pool, start_worker: Any) -> None:
    await start_worker(registry=RATED, concurrency=20)
    await submit_rated(
        rated_db,
        "test.rated_keyed",
        [{"customer": {"id": c}, "i": i} for c in ("a", "b", "c") for i in range(3)],
    )
    # 2 per 30 s per customer: six run at once, one of each customer stays queued
    await wait_for(
        lambda: _count(rated_db, "SELECT count(*) = 6 FROM jobs WHERE status = 'succeeded'")
    )
    queued = await rated_db.fetch(
        "SELECT rate_bucket FROM jobs WHERE status = 'queued' ORDER BY rate_bucket"
    )
    assert [r[0] for r in queued] == [
        "test.rated_keyed:a",
        "test.rated_keyed:b",
        "test.rated_keyed:c",
    ]


async def test_a_worker_held_back_by_the_limit_does_not_spin(
    rated_db: asyncpg.Pool, start_worker: Any
) -> None:
    w = await start_worker(registry=RATED, concurrency=4)
    await submit_rated(rated_db, "test.rated_slow", [{} for _ in range(3)])
    await wait_for(
        lambda: _count(rated_db, "SELECT count(*) = 1 FROM jobs WHERE status = 'succeeded'")
    )
    claims, rated = w.claims.claim_calls, w.claims.rated_calls
    # the second start is 2 s after the first (1 per 2 s): at a 100 ms poll a loop that looked
    # at every poll would claim 20 times, a busy one thousands of times
    await wait_for(
        lambda: _count(rated_db, "SELECT count(*) = 2 FROM jobs WHERE status = 'succeeded'"),
        within=10,
    )
    assert w.claims.rated_calls - rated <= 5
    assert w.claims.claim_calls - claims <= 25  # the ordinary claim still polls (100 ms)
    assert await max_starts_per_window(rated_db, "test.rated_slow", 2.0) <= 1


async def test_a_rated_job_held_back_by_a_concurrency_limit_starts_when_the_slot_frees(
    rated_db: asyncpg.Pool, start_worker: Any, fast_settings: Any
) -> None:
    """Only the concurrency limit (1) holds the next job back: it starts when the running one
    ends, not a poll interval (60 s here) later."""
    await start_worker(replace(fast_settings, poll_interval_ms=60_000), registry=RATED)
    await submit_rated(rated_db, "test.rated_capped", [{} for _ in range(3)])
    await wait_for(
        lambda: _count(rated_db, "SELECT count(*) = 3 FROM jobs WHERE status = 'succeeded'"),
        within=20,
    )
    overlap = await _count(
        rated_db,
        "SELECT count(*) FROM jobs a JOIN jobs b ON a.id < b.id"
        " WHERE a.definition_key = 'test.rated_capped' AND b.definition_key = a.definition_key"
        " AND a.started_at < b.finished_at AND b.started_at < a.finished_at",
    )
    assert overlap == 0  # one at a time


@pytest.mark.slow
async def test_the_limit_holds_across_three_worker_processes(
    rated_db: asyncpg.Pool, spawn: Any
) -> None:
    procs = [
        spawn("--module", "tests.worker.rated_worker", "--concurrency", "10") for _ in range(3)
    ]
    await wait_for(
        lambda: _count(rated_db, "SELECT count(*) = 3 FROM workers WHERE status = 'active'"), 20
    )
    await submit_rated(rated_db, "test.rated", [{"n": i} for i in range(25)])
    await wait_for(
        lambda: _count(rated_db, "SELECT count(*) = 25 FROM jobs WHERE status = 'succeeded'"),
        within=30,
        step=0.1,
    )
    assert await max_starts_per_window(rated_db, "test.rated", 1.0) <= 5
    workers = await _count(
        rated_db, "SELECT count(DISTINCT worker_id) FROM jobs WHERE definition_key = 'test.rated'"
    )
    assert workers >= 2  # the processes shared the work (and so competed for the bucket)
    for p in procs:
        p.signal(signal.SIGTERM)
    assert [await asyncio.to_thread(p.wait, 20) for p in procs] == [0, 0, 0]
