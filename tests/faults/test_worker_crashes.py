"""Scenario 1: worker processes are killed with SIGKILL, one a second, while replacements start.

Three workers share a backlog of short jobs; a scheduler runs the rescuer. Every ~second one
live worker (picked at random, seeded) is killed with SIGKILL and a new one is started. Audit:
every job succeeded; the only jobs that ran twice are jobs whose worker was killed while holding
them (their attempt closed `lease_expired`); a killed worker's jobs were rescued (queued again)
within lease + rescue interval of the kill (+ a small slack for the rescue transaction).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time

import asyncpg
import pytest

from jobserver.db.jobs import NewJob, job_insert_many
from tests.faults.conftest import Row
from tests.faults.helpers import (
    LEASE,
    RESCUE,
    Procs,
    active_workers,
    audit,
    scaled,
    wait_for,
    wait_terminal,
)

pytestmark = [pytest.mark.faults, pytest.mark.scenario("1. worker crashes")]

JOBS = scaled(5000, 20000)
KILLS = scaled(10, 30)
CONCURRENCY = "4"
SLACK = 0.5  # the rescue transaction itself on a loaded 2-core machine


async def test_kill_9_workers_under_load(db: asyncpg.Pool, procs: Procs, report: Row) -> None:
    rng = random.Random(6)
    procs.scheduler("sched")
    workers = {f"w{i}": procs.worker(f"w{i}", "--concurrency", CONCURRENCY) for i in range(3)}
    await wait_for(lambda: active_workers(db, workers), within=20)
    jobs = [
        NewJob("faults.work", 1, max_attempts=10, params={"ms": 20, "n": i}) for i in range(JOBS)
    ]
    async with db.acquire() as conn, conn.transaction():
        ids = await job_insert_many(conn, jobs)
    killed: dict[str, float] = {}
    for n in range(KILLS):
        await asyncio.sleep(1.0)  # the pace of the crashes, not a wait for a condition
        live = [name for name, p in workers.items() if p.alive() and name not in killed]
        victim = rng.choice(live)
        workers[victim].signal(signal.SIGKILL)
        killed[victim] = time.time()
        workers[victim].wait(5)
        name = f"w{3 + n}"
        workers[name] = procs.worker(name, "--concurrency", CONCURRENCY)
    await wait_terminal(db, ids, scaled(40, 300), procs)

    a = await audit(db, ids)
    # Recovery: from a kill to the rescue of each job the victim held (back to `queued`,
    # claimable again), and, for the note, to the job's next run (that one also waits for the
    # backlog ahead of it: a rescued job re-enters the queue at run_at = now()).
    recovery = await db.fetch(
        """
        SELECT a.worker_id,
            (SELECT extract(epoch FROM min(e.at)) FROM job_events e
              WHERE e.job_id = a.job_id AND e.attempt = a.attempt
                AND e.event IN ('rescued', 'failed'))::float8 AS rescued,
            (SELECT extract(epoch FROM min(l.started_at)) FROM fault_ledger l
              WHERE l.job_id = a.job_id AND l.attempt > a.attempt)::float8 AS rerun
        FROM job_attempts a
        WHERE a.job_id = ANY($1::uuid[]) AND a.outcome = 'lease_expired'
        """,
        ids,
    )
    waits = [r["rescued"] - killed[r["worker_id"]] for r in recovery if r["worker_id"] in killed]
    reruns = [
        r["rerun"] - killed[r["worker_id"]]
        for r in recovery
        if r["worker_id"] in killed and r["rerun"] is not None
    ]
    report.accepted, report.terminal, report.duplicates = a.accepted, a.terminal, a.duplicates
    report.why = a.why()
    report.recovery_s = max(waits, default=None)
    report.note = (
        f"{JOBS} jobs of 20 ms, {KILLS} kill -9, lease {LEASE:g} s + rescue {RESCUE:g} s;"
        f" recovery = kill -> rescued; kill -> next run max {max(reruns, default=0):.1f} s"
    )

    a.assert_clean()
    assert a.by_status == {"succeeded": JOBS}, a.by_status
    expired_by = {r["worker_id"] for r in recovery}
    assert expired_by, "no kill hit a worker holding jobs: the scenario proved nothing"
    assert expired_by <= set(killed), f"leases expired for live workers: {expired_by - set(killed)}"
    assert len(waits) == len(recovery)
    bound = LEASE + RESCUE + SLACK
    assert max(waits) <= bound, f"recovery took {max(waits):.2f} s > {bound} s"
    assert a.duplicates <= len(recovery)  # each extra run matches an expired attempt
