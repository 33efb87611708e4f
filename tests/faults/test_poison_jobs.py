"""Scenario 4: poison jobs. One definition kills its worker process (`os._exit`), another hangs
and swallows every cancellation. Each uses up its attempts and lands in the DLQ: the first
through lease expiry (its worker is dead), the second through its timeout, after which the
worker stops renewing the lease of a job that ignored the cancellation. Meanwhile a supervisor
loop (this test) restarts dead workers and a stream of ordinary jobs keeps flowing to the end.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from jobserver.db.jobs import NewJob, job_insert_many
from tests.faults.conftest import Row
from tests.faults.helpers import Procs, active_workers, all_terminal, audit, scaled, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.scenario("4. poison jobs")]

NORMAL = scaled(400, 4000)
POISON = scaled(1, 5)  # of each kind


async def test_poison_jobs_land_in_the_dlq(db: asyncpg.Pool, procs: Procs, report: Row) -> None:
    procs.scheduler("sched")
    # the hang jobs get a queue and a worker of their own, so an exit job never takes them down
    queues = {"w0": "default,exit", "w1": "default,exit", "h0": "hang"}
    names = list(queues)
    workers = {n: procs.worker(n, "--concurrency", "10", "--queues", queues[n]) for n in names}
    await wait_for(lambda: active_workers(db, names), within=20)
    async with db.acquire() as conn, conn.transaction():
        poison = await job_insert_many(
            conn,
            [NewJob("faults.exit", 1, 2, queue="exit") for _ in range(POISON)]
            + [NewJob("faults.hang", 1, 2, queue="hang") for _ in range(POISON)],
        )
    normal: list = []
    restarts = 0
    deadline = time.monotonic() + scaled(60, 300)
    # the supervisor: keep two workers alive, feed ordinary jobs, until everything is terminal
    while True:
        if len(normal) < NORMAL:
            async with db.acquire() as conn, conn.transaction():
                normal += await job_insert_many(
                    conn, [NewJob("faults.work", 1, 3, params={"ms": 10}) for _ in range(20)]
                )
        for name, p in list(workers.items()):
            if not p.alive():
                restarts += 1
                new = f"{name.split('.')[0]}.{restarts}"
                del workers[name]
                q = queues[new] = queues[name]
                workers[new] = procs.worker(new, "--concurrency", "10", "--queues", q)
        if len(normal) >= NORMAL and await all_terminal(db, [*poison, *normal]):
            break
        assert time.monotonic() < deadline, await db.fetch(
            "SELECT definition_key, status, attempt, count(*) FROM jobs GROUP BY 1, 2, 3"
        )
        await asyncio.sleep(0.2)  # supervisor pace: restart dead workers, re-check the audit

    ids = [*poison, *normal]
    a = await audit(db, ids)
    report.accepted, report.terminal, report.duplicates = a.accepted, a.terminal, a.duplicates
    report.why = a.why()
    report.note = f"{POISON} exit + {POISON} hang poison jobs, {NORMAL} normal, {restarts} restarts"
    a.assert_clean()
    rows = await db.fetch(
        "SELECT j.id, j.definition_key, j.status, j.attempt,"
        " (SELECT array_agg(outcome ORDER BY attempt) FROM job_attempts a WHERE a.job_id = j.id)"
        " AS outcomes, EXISTS (SELECT 1 FROM dead_letter_jobs d WHERE d.id = j.id) AS dead"
        " FROM jobs j WHERE j.id = ANY($1)",
        poison,
    )
    for r in rows:
        assert (r["status"], r["attempt"], r["dead"]) == ("failed", 2, True), dict(r)
        # exit: the worker died; hang: it swallowed its timeout's cancellation, so the worker
        # stopped renewing its lease (a coroutine cannot be killed) and the rescuer ended it
        assert r["outcomes"] == ["lease_expired", "lease_expired"], dict(r)
    hang_logs = "".join(p.output() for n, p in workers.items() if n.startswith("h"))
    hang_logs += "".join(p.output() for p in procs.all if p.name.startswith("h"))
    assert hang_logs.count("ignored the cancellation of its timeout") >= 2 * POISON
    assert await db.fetchval(
        "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'succeeded'", normal
    ) == len(normal)
    # an exit job's two attempts were held by two processes that both died (the first before
    # the second claimed it); one process holding several exit jobs takes them all down at once
    assert restarts >= 2
