"""A worker killed with SIGKILL mid-job: the rescuer re-queues the job and another worker
process finishes it on the next attempt."""

from __future__ import annotations

import signal

import asyncpg
import pytest

from jobserver.db.attempts import attempt_list
from jobserver.db.definitions import definition_upsert
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.registry import load_modules
from jobserver.scheduler.rescuer import Rescuer
from tests.scheduler.helpers import events_of, kill, output, spawn, wait_for

WORKER_ENV = {
    "LEASE_DURATION_SECONDS": "1.5",
    "HEARTBEAT_INTERVAL_SECONDS": "0.2",
    "POLL_INTERVAL_MS": "100",
    "SHUTDOWN_GRACE_SECONDS": "0.5",
}


@pytest.mark.slow
async def test_killed_workers_job_is_retried_elsewhere(database_url: str, pool: asyncpg.Pool):
    d = load_modules(["tests.scheduler.defs"]).get("sched.hangs_first", 1)
    assert d is not None
    await definition_upsert(pool, d.metadata())  # type: ignore[arg-type]
    job = NewJob("sched.hangs_first", 1, max_attempts=2)
    async with pool.acquire() as conn, conn.transaction():
        await job_insert_many(conn, [job])
    env = {**WORKER_ENV, "DATABASE_URL": database_url}
    args = ("--module", "tests.scheduler.defs")
    a = spawn("jobserver.cli.worker", {**env, "WORKER_ID": "wa"}, *args)
    b = None
    rescuer = Rescuer(pool, interval=0.1)
    try:

        async def held_by_a() -> bool:
            row = await pool.fetchrow("SELECT status, worker_id FROM jobs WHERE id = $1", job.id)
            return row["status"] == "running" and row["worker_id"] == "wa"

        await wait_for(held_by_a, within=15)
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=5)
        b = spawn("jobserver.cli.worker", {**env, "WORKER_ID": "wb"}, *args)
        rescuer.start()

        async def done() -> asyncpg.Record | None:
            row = await pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job.id)
            return row if row["status"] == "succeeded" else None

        row = await wait_for(done, within=20)
        assert row["worker_id"] == "wb" and row["attempt"] == 2, output(b)
        assert row["result"]["attempt"] == 2
        ev = await events_of(pool, job.id)
        assert ev.index("lease_expired") < ev.index("rescued") < ev.index("succeeded")
        outcomes = [
            (a["attempt"], a["worker_id"], a["outcome"]) for a in await attempt_list(pool, job.id)
        ]
        assert outcomes == [(1, "wa", "lease_expired"), (2, "wb", "succeeded")]
    finally:
        await rescuer.stop()
        kill(a)
        if b is not None:
            kill(b)
