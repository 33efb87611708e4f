"""Scenario 9: SIGTERM to a busy worker process.

The worker holds short jobs (they finish within the grace period) and long ones (they do not).
SIGTERM: it stops claiming, lets the short ones finish, hands the long ones back to `queued`
without using an attempt, exits 0 and leaves nothing `running` under its name. A second worker
then runs the handed-back jobs to the end. Audit: every job succeeded, each extra run is a
hand-back, no attempt was used by the shutdown.
"""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import pytest

from jobserver.db.jobs import NewJob, job_insert_many
from tests.faults.conftest import Row
from tests.faults.helpers import Procs, active_workers, audit, scaled, wait_for, wait_terminal

pytestmark = [pytest.mark.faults, pytest.mark.scenario("9. graceful shutdown")]

SHORT = scaled(20, 100)
LONG = scaled(10, 50)


async def test_sigterm_busy_worker(db: asyncpg.Pool, procs: Procs, report: Row) -> None:
    env = {"SHUTDOWN_GRACE_SECONDS": "1.5"}
    w = procs.worker("busy", "--concurrency", str(SHORT + LONG), env=env)
    await wait_for(lambda: active_workers(db, ["busy"]), within=20)
    async with db.acquire() as conn, conn.transaction():
        short = await job_insert_many(
            conn, [NewJob("faults.work", 1, 3, params={"ms": 500}) for _ in range(SHORT)]
        )
        long = await job_insert_many(
            conn, [NewJob("faults.work", 1, 3, params={"ms": 4000}) for _ in range(LONG)]
        )
    ids = [*short, *long]

    async def all_started() -> bool:
        n = await db.fetchval(
            "SELECT count(DISTINCT job_id) FROM fault_ledger WHERE job_id = ANY($1)", ids
        )
        return n == len(ids)

    await wait_for(all_started, within=20)
    w.signal(signal.SIGTERM)
    code = await asyncio.to_thread(w.wait, 20)
    assert code == 0, w.output()[-3000:]
    held = await db.fetchval(
        "SELECT count(*) FROM jobs WHERE worker_id = 'busy' AND status IN ('running', 'cancelling')"
    )
    assert held == 0
    rows = await db.fetch("SELECT id, status, attempt FROM jobs WHERE id = ANY($1)", ids)
    by_id = {r["id"]: r for r in rows}
    assert all(by_id[i]["status"] == "succeeded" for i in short), "short jobs did not finish"
    assert all((by_id[i]["status"], by_id[i]["attempt"]) == ("queued", 0) for i in long), [
        (by_id[i]["status"], by_id[i]["attempt"]) for i in long
    ]
    assert await db.fetchval("SELECT status FROM workers WHERE id = 'busy'") == "stopped"

    procs.worker("next", "--concurrency", "50")
    await wait_terminal(db, ids, 30, procs)
    a = await audit(db, ids)
    report.accepted, report.terminal, report.duplicates = a.accepted, a.terminal, a.duplicates
    report.why = a.why()
    report.note = f"{SHORT} short jobs finished in the grace period, {LONG} long ones handed back"
    a.assert_clean()
    assert a.by_status == {"succeeded": len(ids)}
    assert a.explained == {"handed back": LONG}
    attempts = await db.fetch("SELECT attempt FROM jobs WHERE id = ANY($1)", long)
    assert {r["attempt"] for r in attempts} == {1}  # the hand-back used no attempt
