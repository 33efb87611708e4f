"""Claiming: order, readiness, expiry, the definitions and queues a worker serves, wake-ups."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg

from jobserver.config import Settings
from jobserver.db.workers import worker_get
from jobserver.registry import Registry, registry
from tests.worker.conftest import job, status_is, submit, wait_for


async def test_priority_then_run_at_then_id(db: asyncpg.Pool, start_worker) -> None:
    now = datetime.now(UTC)
    early, late = now - timedelta(seconds=10), now - timedelta(seconds=5)
    ids = []
    for priority, run_at in [(0, late), (5, late), (0, early), (5, early), (10, late), (-1, early)]:
        ids += await submit(db, "test.ledger", [{}], priority=priority, run_at=run_at)
    expected = sorted(
        [(await job(db, i)) for i in ids],
        key=lambda r: (-r["priority"], r["run_at"], r["id"]),
    )
    await start_worker(concurrency=1)
    await wait_for(lambda: db.fetchval("SELECT count(*) = 6 FROM ledger"))
    ran = await db.fetch("SELECT job_id FROM ledger ORDER BY started_at")
    assert [r["job_id"] for r in ran] == [r["id"] for r in expected]


async def test_delayed_job_not_started_early(db: asyncpg.Pool, start_worker) -> None:
    run_at = datetime.now(UTC) + timedelta(seconds=1.0)
    [jid] = await submit(db, "test.ledger", [{}], run_at=run_at)
    [now_id] = await submit(db, "test.ledger", [{}])
    await start_worker()
    await wait_for(lambda: status_is(db, now_id, "succeeded"))
    await wait_for(lambda: status_is(db, jid, "succeeded"), within=5)
    started = await db.fetchval("SELECT started_at FROM ledger WHERE job_id = $1", jid)
    assert (await job(db, jid))["started_at"] >= run_at
    assert started >= run_at


async def test_expired_jobs_never_start(db: asyncpg.Pool, start_worker) -> None:
    now = datetime.now(UTC)
    [gone] = await submit(db, "test.ledger", [{}], expires_at=now - timedelta(seconds=1))
    [lapses] = await submit(
        db,
        "test.ledger",
        [{}],
        run_at=now + timedelta(seconds=0.6),
        expires_at=now + timedelta(seconds=0.3),
    )
    [marker] = await submit(db, "test.ledger", [{}], run_at=now + timedelta(seconds=0.9))
    await start_worker()
    await wait_for(lambda: status_is(db, marker, "succeeded"), within=5)
    for jid in (gone, lapses):
        row = await job(db, jid)
        assert row["status"] == "queued" and row["attempt"] == 0
    assert await db.fetchval("SELECT count(*) FROM ledger WHERE job_id <> $1", marker) == 0


async def test_only_definitions_in_code_and_own_queues(db: asyncpg.Pool, start_worker) -> None:
    only_echo = Registry()
    echo = registry.get("echo", 1)
    assert echo is not None
    only_echo.add(echo)
    [other_def] = await submit(db, "test.ledger", [{}])
    [other_queue] = await submit(db, "echo", [{}], queue="q2")
    async with db.acquire() as conn, conn.transaction():
        from jobserver.db.jobs import NewJob, job_insert_many

        [other_version] = await job_insert_many(conn, [NewJob("echo", 2, 1, {})])
    [mine] = await submit(db, "echo", [{}], queue="q1")
    w = await start_worker(registry=only_echo, queues=["q1"])
    await wait_for(lambda: status_is(db, mine, "succeeded"))
    calls = w.claim_calls
    await wait_for(lambda: _at_least(w, calls + 2))  # two more claim rounds saw the others
    for jid in (other_def, other_queue, other_version):
        assert (await job(db, jid))["status"] == "queued"
    row = await worker_get(db, w.worker_id)
    assert row["queues"] == ["q1"] and row["definitions"] == ["echo@1"]
    assert row["status"] == "active"


async def _at_least(w, n: int) -> bool:
    return w.claim_calls >= n


async def test_notify_wakes_idle_worker_and_polling_never_busy_loops(
    db: asyncpg.Pool, start_worker, fast_settings: Settings
) -> None:
    w = await start_worker(replace(fast_settings, poll_interval_ms=60_000))
    assert w._listener is not None
    await wait_for(lambda: _connected(w))
    t0 = time.monotonic()
    [jid] = await submit(db, "echo", [{}])
    await wait_for(lambda: status_is(db, jid, "succeeded"), within=5)
    assert time.monotonic() - t0 < 5  # far below the 60 s poll: the NOTIFY woke it
    # with a 100 ms poll and nothing to do, claims happen about ten times a second (plus one
    # at start and one when LISTEN connects); a busy loop would make thousands
    idle = await start_worker(replace(fast_settings, worker_id="idle"))
    t0 = time.monotonic()
    await wait_for(lambda: _at_least(idle, 6))
    assert time.monotonic() - t0 >= 0.25


async def _connected(w) -> bool:
    return w._listener.connected.is_set()


async def test_listener_reconnects_after_its_session_dies(
    db: asyncpg.Pool, start_worker, fast_settings: Settings
) -> None:
    w = await start_worker(replace(fast_settings, poll_interval_ms=60_000))
    await wait_for(lambda: _connected(w))
    old = w._listener.backend_pid
    assert await db.fetchval("SELECT pg_terminate_backend($1)", old)

    async def reconnected() -> bool:
        return w._listener.connected.is_set() and w._listener.backend_pid != old

    await wait_for(reconnected, within=10)
    [jid] = await submit(db, "echo", [{}])
    await wait_for(lambda: status_is(db, jid, "succeeded"), within=5)


async def test_burst_drains_ready_jobs_and_stops(db: asyncpg.Pool, fast_settings) -> None:
    from jobserver.worker.worker import Worker
    from tests.worker.conftest import REGISTRY

    ids = await submit(db, "echo", [{"message": str(i)} for i in range(50)])
    [later] = await submit(db, "echo", [{}], run_at=datetime.now(UTC) + timedelta(hours=1))
    w = Worker(fast_settings, REGISTRY, concurrency=7)
    assert await w.run_burst() == 50
    done = await db.fetchval(
        "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'succeeded'", ids
    )
    assert done == 50 and (await job(db, later))["status"] == "queued"
    assert (await worker_get(db, w.worker_id))["status"] == "stopped"
