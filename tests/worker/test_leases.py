"""Leases: heartbeats extend them (also while CPU work runs), a stolen lease fences the worker off,
and the worker records itself in `workers`."""

from __future__ import annotations

from dataclasses import replace

import asyncpg

from jobserver.config import Settings
from jobserver.db.workers import worker_get
from jobserver.worker import metrics
from tests.worker.conftest import attempts, events, job, status_is, submit, wait_for


async def _lease(db: asyncpg.Pool, jid) -> object:
    return (await job(db, jid))["lease_expires_at"]


async def test_heartbeats_extend_leases_and_touch_the_worker_row(
    db: asyncpg.Pool, start_worker
) -> None:
    w = await start_worker()
    [jid] = await submit(db, "test.sleep", [{"seconds": 60}])
    await wait_for(lambda: status_is(db, jid, "running"))
    first = await _lease(db, jid)
    seen = (await worker_get(db, w.worker_id))["last_seen_at"]

    async def extended() -> bool:
        return await _lease(db, jid) > first

    await wait_for(extended, within=3)

    async def touched() -> bool:
        row = await worker_get(db, w.worker_id)
        return row["last_seen_at"] > seen and row["running"] == 1

    await wait_for(touched, within=3)


async def test_cpu_bound_job_does_not_block_heartbeats(db: asyncpg.Pool, start_worker) -> None:
    await start_worker()
    # F(1,000,000) fifteen times: a few seconds of real CPU work in the process pool
    [jid] = await submit(
        db, "compute.math", [{"operation": "fibonacci", "numbers": [1_000_000] * 15}]
    )
    await wait_for(lambda: status_is(db, jid, "running"))
    leases = [await _lease(db, jid)]

    async def advanced_twice() -> bool:
        row = await job(db, jid)
        if row["status"] == "running" and row["lease_expires_at"] > leases[-1]:
            leases.append(row["lease_expires_at"])
        return len(leases) >= 3 or row["status"] != "running"

    await wait_for(advanced_twice, within=10)
    assert len(leases) >= 3, "the lease did not advance while the job crunched"
    await wait_for(lambda: status_is(db, jid, "succeeded"), within=60)
    result = (await job(db, jid))["result"]
    assert result["result"][0]["digits"] == 208988


async def test_stolen_lease_fences_every_write(db: asyncpg.Pool, start_worker) -> None:
    w = await start_worker()
    lost_before = metrics.LEASES_LOST._value.get()
    [jid] = await submit(db, "test.sleep", [{"seconds": 60}])
    await wait_for(lambda: status_is(db, jid, "running"))
    # another worker takes the job over (as after a rescue and a new claim)
    await db.execute(
        "UPDATE jobs SET worker_id = 'other', attempt = attempt + 1,"
        " lease_expires_at = now() + interval '1 hour' WHERE id = $1",
        jid,
    )

    async def forgotten() -> bool:
        return jid not in w.held

    await wait_for(forgotten, within=5)
    row = await job(db, jid)
    assert (row["status"], row["worker_id"], row["attempt"]) == ("running", "other", 2)
    assert row["result"] is None and row["finished_at"] is None
    assert (await events(db, jid))[-1] == "started"
    assert [(a["attempt"], a["outcome"]) for a in await attempts(db, jid)] == [(2, "running")]
    # the heartbeat / status check noticed: the job was signalled and dropped
    assert metrics.LEASES_LOST._value.get() == lost_before + 1


async def test_stolen_lease_then_finish_writes_nothing(
    db: asyncpg.Pool, start_worker, fast_settings: Settings
) -> None:
    # no checks in time: only the fence on the completion itself stands in the way
    slow_checks = replace(
        fast_settings,
        heartbeat_interval_seconds=30,
        lease_duration_seconds=60,
        cancel_check_interval_ms=600_000,
    )
    w = await start_worker(slow_checks)
    before = metrics.FENCED.labels("succeeded")._value.get()
    [jid] = await submit(db, "test.ledger", [{"sleep": 0.5}])
    await wait_for(lambda: _started(db, jid))
    await db.execute(
        "UPDATE jobs SET worker_id = 'other', attempt = attempt + 1 WHERE id = $1", jid
    )
    await wait_for(lambda: _gone(w, jid), within=5)
    row = await job(db, jid)
    assert (row["status"], row["worker_id"], row["attempt"]) == ("running", "other", 2)
    assert row["result"] is None and row["finished_at"] is None
    assert (await events(db, jid))[-1] == "started"
    assert metrics.FENCED.labels("succeeded")._value.get() == before + 1


async def _started(db: asyncpg.Pool, jid) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM ledger WHERE job_id = $1", jid))


async def _gone(w, jid) -> bool:
    return jid not in w.held
