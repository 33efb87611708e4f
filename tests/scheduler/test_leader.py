"""Leader election: one leader among many, takeover after a kill -9, hand-over on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import pytest

from jobserver.db.leader import leader_get
from jobserver.scheduler.leader import LeaderElector
from tests.scheduler.helpers import kill, output, spawn, wait_for


async def test_defaults(pool: asyncpg.Pool) -> None:
    e = LeaderElector(pool, "a")
    assert e.lease_seconds == 15.0
    assert e.interval == pytest.approx(15.0 / 4)
    assert e.row_lease == pytest.approx(15.0 * 0.75)
    assert not e.is_leader()


async def test_start_stop_twice(pool: asyncpg.Pool) -> None:
    e = LeaderElector(pool, "a", lease_seconds=2)
    await e.stop()  # before start: no-op
    e.start()
    await e.wait_runs(1)
    assert e.is_leader()
    await e.stop()
    await e.stop()
    assert not e.is_leader()
    assert await leader_get(pool, "scheduler") is None  # released


async def test_one_leader_among_several(pool: asyncpg.Pool) -> None:
    electors = [LeaderElector(pool, f"s{i}", lease_seconds=2) for i in range(4)]
    for _ in range(3):
        for e in electors:
            await e.run_once()
        assert sum(e.is_leader() for e in electors) == 1
    leader = next(e for e in electors if e.is_leader())
    row = await leader_get(pool, "scheduler")
    assert row is not None and row["holder"] == leader.holder


async def test_expired_lease_is_taken_over(pool: asyncpg.Pool) -> None:
    a = LeaderElector(pool, "a", lease_seconds=1)
    b = LeaderElector(pool, "b", lease_seconds=1)
    await a.run_once()
    await b.run_once()
    assert a.is_leader() and not b.is_leader()
    # a stops renewing (as if frozen): its local view lapses before the row does
    await wait_for(lambda: _async(not a.is_leader()), within=2)
    await wait_for(lambda: _took_over(b), within=2)
    assert b.is_leader() and not a.is_leader()
    await a.run_once()  # a comes back: it must not steal the lease
    assert not a.is_leader() and b.is_leader()


async def _async(value: bool) -> bool:
    return value


async def _took_over(e: LeaderElector) -> bool:
    await e.run_once()
    return e.is_leader()


async def test_release_hands_over_at_once(pool: asyncpg.Pool) -> None:
    a = LeaderElector(pool, "a", lease_seconds=30)
    b = LeaderElector(pool, "b", lease_seconds=30)
    a.start()
    await a.wait_runs(1)
    b.start()
    await b.wait_runs(1)
    await asyncio.sleep(0)  # let b's LISTEN connection settle before the release
    await wait_for(lambda: _async(b._listener is not None), within=5)
    assert a.is_leader() and not b.is_leader()
    t0 = time.monotonic()
    await a.stop()
    await wait_for(lambda: _async(b.is_leader()), within=5)
    assert time.monotonic() - t0 < 2  # far less than the 30 s lease (or its 7.5 s retry)
    await b.stop()


@pytest.mark.slow
async def test_failover_between_processes_after_kill_9(database_url: str, pool: asyncpg.Pool):
    lease = 2.0
    env = {"DATABASE_URL": database_url, "LEADER_LEASE_SECONDS": str(lease)}
    procs = {
        name: spawn("jobserver.cli.scheduler", {**env, "SCHEDULER_ID": name})
        for name in ("s1", "s2")
    }
    try:

        async def holder() -> str | None:
            row = await leader_get(pool, "scheduler")
            return row["holder"] if row is not None and not row["expired"] else None

        first = await wait_for(holder, within=15)
        other = "s2" if first == "s1" else "s1"
        # uniqueness over time: the leader renews its lease twice while both run, and the row
        # never changes hands (acquired_at stays that of the first take)
        taken = (await leader_get(pool, "scheduler"))["acquired_at"]
        expiries: set = set()

        async def renewed_twice() -> bool:
            row = await leader_get(pool, "scheduler")
            assert (row["holder"], row["acquired_at"]) == (first, taken), dict(row)
            expiries.add(row["lease_expires_at"])
            return len(expiries) >= 3

        await wait_for(renewed_twice, within=lease * 3)
        last_expiry = (await leader_get(pool, "scheduler"))["lease_expires_at"]
        procs[first].send_signal(signal.SIGKILL)
        killed_at = await pool.fetchval("SELECT now()")  # database clock, at or after the kill
        procs[first].wait(timeout=5)
        assert await wait_for(lambda: _is(holder, other), within=lease * 3)
        row = await leader_get(pool, "scheduler")
        # safety: the row changed hands only after the dead leader's lease had passed
        assert row["acquired_at"] >= last_expiry
        # liveness: within LEADER_LEASE_SECONDS of the kill by design (the lease runs 3L/4
        # past the last renewal, a follower tries every L/4), plus slack for a loaded machine;
        # both times are the database's, so the test process' own delays do not count
        took = (row["acquired_at"] - killed_at).total_seconds()
        assert took <= lease + 1.0, f"takeover took {took:.2f}s"
        # graceful stop of the new leader releases the row at once
        procs[other].send_signal(signal.SIGTERM)
        assert procs[other].wait(timeout=10) == 0, output(procs[other])
        assert await leader_get(pool, "scheduler") is None
    finally:
        for p in procs.values():
            kill(p)


async def _is(holder, name: str) -> bool:  # type: ignore[no-untyped-def]
    return await holder() == name
