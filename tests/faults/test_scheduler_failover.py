"""Scenario 5: two schedulers, a 1-second schedule, the leader killed with SIGKILL twice.

A schedule fires every second (catch-up `all`, so fires missed while nobody leads are created
by the next leader). Two scheduler processes compete; the leader is killed twice (a fresh
process replaces it each time) while a worker chews through a backlog. Audit: one job per fire
time, no gaps between the first and the last fire, and the number of fires equals the elapsed
seconds; every cron job ran exactly once.
"""

from __future__ import annotations

import itertools
import signal
import time
from datetime import timedelta

import asyncpg
import pytest

from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.db.leader import leader_get
from jobserver.db.schedules import schedule_insert
from tests.faults.conftest import Row
from tests.faults.helpers import Procs, audit, scaled, wait_for, wait_terminal

pytestmark = [pytest.mark.faults, pytest.mark.scenario("5. scheduler failover")]

LEADER_LEASE = 2.0
KILLS = scaled(2, 6)
TICKS_PER_LEADER = 2  # cron jobs each leader must create before it is killed
BACKLOG = scaled(2000, 10000)


async def test_leader_kill_9_twice_under_load(db: asyncpg.Pool, procs: Procs, report: Row) -> None:
    await schedule_insert(
        db,
        "tick",
        every_seconds=1,
        definition_key="faults.work",
        definition_version=1,
        params={"ms": 5},
        catchup_policy="all",
        catchup_limit=100,
    )
    async with db.acquire() as conn, conn.transaction():
        backlog = await job_insert_many(
            conn, [NewJob("faults.work", 1, 3, params={"ms": 10}) for _ in range(BACKLOG)]
        )
    procs.worker("w0", "--concurrency", "20", env={"LOG_LEVEL": "WARNING"})
    env = {"LEADER_LEASE_SECONDS": str(LEADER_LEASE), "SCHEDULER_TICK_SECONDS": "0.2"}
    scheds = {name: procs.scheduler(name, env=env) for name in ("s0", "s1")}

    async def holder() -> str | None:
        row = await leader_get(db, "scheduler")
        return row["holder"] if row is not None and not row["expired"] else None

    async def fires() -> int:
        return int(await db.fetchval("SELECT count(*) FROM jobs WHERE schedule_name = 'tick'"))

    await wait_for(fires, within=30)
    started = time.time()
    takeovers = []

    async def leader_fires_ticks() -> None:
        """Wait until the current leader has created TICKS_PER_LEADER more cron jobs."""
        target = await fires() + TICKS_PER_LEADER

        async def reached() -> bool:
            return await fires() >= target

        await wait_for(reached, within=30)

    for n in range(KILLS):
        await leader_fires_ticks()
        leader = await wait_for(holder, within=10)
        scheds[leader].signal(signal.SIGKILL)
        scheds[leader].wait(5)
        t0 = time.monotonic()
        name = f"s{2 + n}"
        scheds[name] = procs.scheduler(name, env=env)

        async def new_leader(dead: str = leader) -> str | None:
            h = await holder()
            return h if h is not None and h != dead else None

        await wait_for(new_leader, within=LEADER_LEASE * 4)
        takeovers.append(time.monotonic() - t0)
    await leader_fires_ticks()  # and so does the last leader
    for p in scheds.values():
        p.signal(signal.SIGTERM)
    # a SIGTERMed scheduler stops promptly; 30 s leaves room for a loaded machine
    assert all(p.wait(30) in (0, -signal.SIGKILL) for p in scheds.values())
    stopped = time.time()

    times = [
        r["scheduled_for"]
        for r in await db.fetch(
            "SELECT scheduled_for FROM jobs WHERE schedule_name = 'tick' ORDER BY scheduled_for"
        )
    ]
    cron_ids = [r["id"] for r in await db.fetch("SELECT id FROM jobs WHERE schedule_name = 'tick'")]
    ids = [*backlog, *cron_ids]
    await wait_terminal(db, ids, scaled(60, 300), procs)
    a = await audit(db, ids)
    report.accepted, report.terminal, report.duplicates = a.accepted, a.terminal, a.duplicates
    report.why = a.why()
    report.recovery_s = max(takeovers)
    report.note = (
        f"{len(times)} cron jobs over {stopped - started:.1f} s observed, "
        f"{KILLS} leader kill -9, takeovers {', '.join(f'{t:.2f}' for t in takeovers)} s"
    )
    a.assert_clean()
    assert a.duplicates == 0
    assert len(times) == len(set(times)), "a fire time produced two jobs"
    gaps = [t for t, u in itertools.pairwise(times) if u - t != timedelta(seconds=1)]
    assert not gaps, f"fires missing after {gaps}"
    elapsed = (times[-1] - times[0]).total_seconds() + 1
    assert len(times) == elapsed
    # the schedule kept firing through both failovers up to the end
    assert times[-1].timestamp() >= stopped - LEADER_LEASE - 1.5, (times[-1], stopped)
    assert max(takeovers) <= LEADER_LEASE + 1.0
