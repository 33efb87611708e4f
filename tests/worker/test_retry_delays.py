"""Explicit retry delays, run by a real worker: the definition's list, the job's own list (which
wins), a RetryAfter (which wins over both), the last delay repeating.

The delay a failure set is read off the database, not the clock: the failed attempt's row is
closed (`finished_at`) and the job's `run_at` moved in the same transaction, so `run_at -
finished_at` is the delay applied, exactly. Between attempts the test moves `run_at` back to
now so the next attempt runs at once."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import asyncpg

from jobserver.config import Settings
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.registry import Backoff, Registry, RetryAfter, definition
from tests.worker.conftest import job, status_is, wait_for

DELAYS = Registry()  # the definitions the workers of this module run (and only those)


async def fail_until(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Fail until attempt `succeedOn` (never, when absent)."""
    if ctx.attempt < int(params.get("succeedOn", 10**9)):
        raise ValueError(f"failure on attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}


definition(
    "test.listed",
    default_max_attempts=4,
    timeout_seconds=60,
    backoff=Backoff(delays=(3600, 7200)),
    target=DELAYS,
)(fail_until)
definition(
    "test.unlisted",
    default_max_attempts=3,
    timeout_seconds=60,
    backoff=Backoff(base_seconds=0.4, max_seconds=10, jitter_percent=0.25),
    target=DELAYS,
)(fail_until)
definition("test.plain", default_max_attempts=3, timeout_seconds=60, target=DELAYS)(fail_until)


@definition("test.later", 1, default_max_attempts=3, timeout_seconds=60, target=DELAYS)
async def later(params: dict[str, Any], ctx: Any) -> None:
    """Ask to be retried after 120 s, as a server's Retry-After would."""
    raise RetryAfter(120, "the server said: come back in 2 minutes")


async def insert(pool: asyncpg.Pool, key: str, **kw: Any) -> uuid.UUID:
    d = DELAYS.latest(key)
    assert d is not None
    new = NewJob(
        definition_key=key,
        definition_version=d.version,
        max_attempts=kw.pop("max_attempts", d.default_max_attempts),
        params=kw.pop("params", {}),
        **kw,
    )
    async with pool.acquire() as conn:
        [jid] = await job_insert_many(conn, [new])
    return jid


async def applied_delays(pool: asyncpg.Pool, jid: uuid.UUID, runs: int) -> list[float]:
    """Run the job's first `runs` attempts (moving each retry's run_at to now once the delay
    it got was read) and return the delay each failure set."""
    delays: list[float] = []
    for n in range(1, runs + 1):

        async def failed(n: int = n) -> asyncpg.Record | None:
            return await pool.fetchrow(
                "SELECT a.finished_at, j.run_at, j.status FROM job_attempts a"
                " JOIN jobs j ON j.id = a.job_id"
                " WHERE a.job_id = $1 AND a.attempt = $2 AND a.outcome = 'failed'"
                " AND j.status <> 'running'",
                jid,
                n,
            )

        row = await wait_for(failed)
        if row["status"] != "queued":
            break
        delays.append((row["run_at"] - row["finished_at"]).total_seconds())
        await pool.execute("UPDATE jobs SET run_at = now() WHERE id = $1", jid)
    return delays


async def scheduled(pool: asyncpg.Pool, jid: uuid.UUID) -> list[float]:
    rows = await pool.fetch(
        "SELECT details FROM job_events WHERE job_id = $1 AND event = 'retry_scheduled'"
        " ORDER BY id",
        jid,
    )
    return [r["details"]["delaySeconds"] for r in rows]


async def test_the_definitions_delays_in_order_the_last_one_repeating(
    db: asyncpg.Pool, start_worker: Any
) -> None:
    jid = await insert(db, "test.listed")
    await start_worker(registry=DELAYS)
    assert await applied_delays(db, jid, 4) == [3600, 7200, 7200]  # no jitter
    await wait_for(lambda: status_is(db, jid, "failed"))
    assert await scheduled(db, jid) == [3600, 7200, 7200]  # the events say the same


async def test_the_jobs_own_delays_win_over_the_definitions(
    db: asyncpg.Pool, start_worker: Any
) -> None:
    jid = await insert(db, "test.listed", retry_delays=[60.0, 600.0], params={"succeedOn": 4})
    await start_worker(registry=DELAYS)
    assert await applied_delays(db, jid, 3) == [60, 600, 600]
    await wait_for(lambda: status_is(db, jid, "succeeded"))
    assert (await job(db, jid))["retry_delays"] == [60.0, 600.0]
    assert await scheduled(db, jid) == [60, 600, 600]


async def test_the_jobs_own_delays_replace_the_formula(db: asyncpg.Pool, start_worker: Any) -> None:
    # test.unlisted has a jittered exponential back-off of its own (base 0.4 s)
    jid = await insert(db, "test.unlisted", retry_delays=[1800.5])
    await start_worker(registry=DELAYS)
    assert await applied_delays(db, jid, 3) == [1800.5, 1800.5]


async def test_a_retry_after_wins_over_the_jobs_delays(db: asyncpg.Pool, start_worker: Any) -> None:
    jid = await insert(db, "test.later", retry_delays=[5000.0])
    await start_worker(registry=DELAYS)
    assert await applied_delays(db, jid, 3) == [120, 120]


async def test_a_listed_retry_is_claimed_when_due_not_at_the_next_poll(
    db: asyncpg.Pool, start_worker: Any, fast_settings: Settings
) -> None:
    """The worker's own back-off would be an hour (test.plain keeps the settings' formula: no
    doorbell for it) and it polls every 30 s: a retry the job's list makes due at once is
    claimed because the write rang the doorbell, well before the next poll."""
    slow = replace(
        fast_settings,
        poll_interval_ms=30_000,
        backoff_base_seconds=3600,
        backoff_max_seconds=3600,
        backoff_jitter_percent=0,
    )
    jid = await insert(db, "test.plain", retry_delays=[0.0], params={"succeedOn": 2})
    await start_worker(slow, registry=DELAYS)
    await wait_for(lambda: status_is(db, jid, "succeeded"), within=10)
    assert await scheduled(db, jid) == [0]
