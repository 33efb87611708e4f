"""Cancellation: running jobs (NOTIFY and the fallback check), batches, and the claim race."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import replace

import asyncpg

from jobserver.config import Settings
from jobserver.db.channels import CANCEL_CHANNEL
from tests.worker.conftest import attempts, events, job, status_is, submit, wait_for


async def cancel(pool: asyncpg.Pool, job_id: uuid.UUID, notify: bool = True) -> str:
    """What the API's cancel does (contracts.md): queued → cancelled, running → cancelling."""
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.fetchval("SELECT status FROM jobs WHERE id = $1 FOR UPDATE", job_id)
        if status == "queued":
            await conn.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = now() WHERE id = $1", job_id
            )
            await conn.execute(
                "INSERT INTO job_events (job_id, event) VALUES ($1, 'cancelled')", job_id
            )
            return "cancelled"
        if status == "running":
            await conn.execute(
                "UPDATE jobs SET status = 'cancelling', cancel_requested_at = now() WHERE id = $1",
                job_id,
            )
            await conn.execute(
                "INSERT INTO job_events (job_id, event) VALUES ($1, 'cancel_requested')", job_id
            )
            if notify:
                await conn.execute("SELECT pg_notify($1, $2)", CANCEL_CHANNEL, str(job_id))
            return "cancelling"
        return str(status)


async def _started(db: asyncpg.Pool, jid: uuid.UUID) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM ledger WHERE job_id = $1", jid))


async def test_cancel_running_job_by_notify(
    db: asyncpg.Pool, start_worker, fast_settings: Settings
) -> None:
    # a cancel check far in the future: only the NOTIFY can deliver the request in time
    await start_worker(replace(fast_settings, cancel_check_interval_ms=600_000))
    [jid] = await submit(db, "test.sleep", [{"seconds": 60}])
    await wait_for(lambda: _started(db, jid))
    assert await cancel(db, jid) == "cancelling"
    await wait_for(lambda: status_is(db, jid, "cancelled"), within=5)
    [att] = await attempts(db, jid)
    assert att["outcome"] == "cancelled" and att["finished_at"] is not None
    assert (await events(db, jid))[-2:] == ["cancel_requested", "cancelled"]
    assert (await job(db, jid))["finished_at"] is not None


async def test_cancel_without_notify_is_caught_by_the_fallback_check(
    db: asyncpg.Pool, start_worker
) -> None:
    await start_worker()
    [jid] = await submit(db, "test.sleep", [{"seconds": 60}])
    await wait_for(lambda: _started(db, jid))
    assert await cancel(db, jid, notify=False) == "cancelling"
    await wait_for(lambda: status_is(db, jid, "cancelled"), within=5)


async def test_batch_job_stops_between_batches(
    db: asyncpg.Pool, start_worker, fast_settings: Settings
) -> None:
    await start_worker(replace(fast_settings, cancel_grace_ms=10_000))
    params = {"items": list(range(1000)), "batchSize": 10, "delayMs": 50}
    [jid] = await submit(db, "process.batch", [params])

    async def some_progress() -> bool:
        row = await job(db, jid)
        return bool(row["progress"] and row["progress"]["done"] >= 20)

    await wait_for(some_progress)
    await cancel(db, jid)
    # it stops at the next batch boundary, long before the 10 s grace would cut it
    await wait_for(lambda: status_is(db, jid, "cancelled"), within=3)
    done = (await job(db, jid))["progress"]["done"]
    assert 20 <= done < 1000


async def test_cancelling_queued_jobs_while_claiming_never_starts_them(
    db: asyncpg.Pool, start_worker
) -> None:
    ids = await submit(db, "test.ledger", [{} for _ in range(300)])
    await start_worker(concurrency=20)
    order = ids[:]
    random.Random(7).shuffle(order)
    outcomes: dict[uuid.UUID, str] = {}

    async def canceller(part: list[uuid.UUID]) -> None:
        for jid in part:
            outcomes[jid] = await cancel(db, jid)

    await asyncio.gather(*(canceller(order[i::4]) for i in range(4)))

    async def settled() -> bool:
        return not await db.fetchval(
            "SELECT count(*) FROM jobs WHERE status IN ('queued','running','cancelling')"
        )

    await wait_for(settled, within=20)
    cancelled_queued = [j for j, o in outcomes.items() if o == "cancelled"]
    assert cancelled_queued, "the race never hit a queued job"
    ran = {r["job_id"] for r in await db.fetch("SELECT job_id FROM ledger")}
    assert not ran & set(cancelled_queued)
    assert not await db.fetchval(
        "SELECT count(*) FROM job_attempts WHERE job_id = ANY($1)", cancelled_queued
    )
    statuses = await db.fetch(
        "SELECT status, count(*) FROM jobs WHERE id = ANY($1) GROUP BY 1", cancelled_queued
    )
    assert [(r[0], r[1]) for r in statuses] == [("cancelled", len(cancelled_queued))]
