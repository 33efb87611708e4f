"""Real `jobserver-worker` processes: exactly-once across a fleet, fleet-wide limits, kill -9,
graceful SIGTERM."""

from __future__ import annotations

import signal

import asyncpg
import pytest

from jobserver.db import job_runs
from tests.worker.conftest import attempts, events, job, submit, wait_for

pytestmark = pytest.mark.slow


async def _count(db: asyncpg.Pool, sql: str, *args: object) -> int:
    return int(await db.fetchval(sql, *args))


async def test_three_workers_run_every_job_exactly_once(db: asyncpg.Pool, spawn) -> None:
    procs = [spawn("--concurrency", "20") for _ in range(3)]
    await wait_for(lambda: _count(db, "SELECT count(*) FROM workers WHERE status = 'active'"))
    await wait_for(
        lambda: _count(db, "SELECT count(*) = 3 FROM workers WHERE status = 'active'"), 20
    )
    ids = await submit(db, "test.ledger", [{"n": i} for i in range(6000)])
    await wait_for(
        lambda: _count(db, "SELECT count(*) = 6000 FROM jobs WHERE status = 'succeeded'"),
        within=90,
        step=0.2,
    )
    stats = await db.fetchrow(
        "SELECT count(*) AS runs, count(DISTINCT job_id) AS jobs,"
        " count(DISTINCT worker_id) AS workers, max(attempt) AS max_attempt FROM ledger"
    )
    assert stats["runs"] == 6000 and stats["jobs"] == 6000  # no duplicates
    assert await _count(db, "SELECT count(*) FROM ledger WHERE job_id = ANY($1)", ids) == 6000
    assert stats["max_attempt"] == 1
    assert stats["workers"] == 3  # every process took a share
    for p in procs:
        p.signal(signal.SIGTERM)
    assert [p.wait(20) for p in procs] == [0, 0, 0]
    assert await _count(db, "SELECT count(*) FROM workers WHERE status = 'stopped'") == 3


async def test_concurrency_limit_holds_across_processes(db: asyncpg.Pool, spawn) -> None:
    # one slot per process: reaching the limit of 2 takes two processes at once, and without a
    # fleet-wide limit the three of them would run three jobs at once
    for _ in range(3):
        spawn("--concurrency", "1")
    await wait_for(
        lambda: _count(db, "SELECT count(*) = 3 FROM workers WHERE status = 'active'"), 20
    )
    await submit(db, "test.limited", [{"sleep": 0.3} for _ in range(16)])
    await wait_for(
        lambda: _count(db, "SELECT count(*) = 16 FROM jobs WHERE status = 'succeeded'"), 60
    )
    peak = await db.fetchval(
        """
        SELECT max((SELECT count(*) FROM ledger b
                    WHERE b.started_at <= a.started_at AND b.ended_at > a.started_at))
        FROM ledger a
        """
    )
    assert peak == 2, peak  # never above the limit, and the limit was used
    assert await _count(db, "SELECT count(DISTINCT worker_id) FROM ledger") >= 2


async def test_kill_9_leaves_an_expiring_lease_and_a_fenced_zombie(db: asyncpg.Pool, spawn) -> None:
    proc = spawn()
    [jid] = await submit(db, "test.sleep", [{"seconds": 60}], max_attempts=2)
    await wait_for(lambda: _count(db, "SELECT count(*) FROM ledger WHERE job_id = $1", jid))
    before = (await job(db, jid))["lease_expires_at"]
    # heartbeats extend the lease while the process lives
    await wait_for(
        lambda: _count(
            db, "SELECT count(*) FROM jobs WHERE id = $1 AND lease_expires_at > $2", jid, before
        )
    )
    proc.signal(signal.SIGKILL)
    proc.wait(10)
    await wait_for(
        lambda: _count(
            db, "SELECT count(*) FROM jobs WHERE id = $1 AND lease_expires_at < now()", jid
        ),
        within=10,
    )
    row = await job(db, jid)
    assert row["status"] == "running" and row["worker_id"] == proc.worker_id
    # what the rescuer does (scheduler side), then another worker claims attempt 2
    await db.execute(
        "UPDATE jobs SET status = 'queued', worker_id = NULL, lease_expires_at = NULL"
        " WHERE id = $1",
        jid,
    )
    async with db.acquire() as conn:
        [claimed] = await job_runs.job_claim_available(
            conn, "rescuer-worker", 1, ["test.sleep@1"], None, 30
        )
        assert claimed["attempt"] == 2
        # the dead worker's late writes are fenced off and change nothing
        dead = proc.worker_id
        assert await job_runs.job_heartbeat(conn, dead, [jid], [1], 30) == []
        assert await job_runs.job_complete_many(conn, dead, [jid], [1], ['"zombie"'], [1.0]) == []
        assert not await job_runs.job_progress(conn, dead, jid, 1, '{"done": 1}')
        assert (
            await job_runs.job_fail_many(
                conn, dead, [job_runs.Failure(jid, 1, "failed", "zombie", None, 0, 1)]
            )
            == []
        )
        row = await job(db, jid)
        assert (row["status"], row["worker_id"], row["attempt"]) == ("running", "rescuer-worker", 2)
        assert row["result"] is None and row["progress"] is None
        assert await job_runs.job_complete_many(
            conn, "rescuer-worker", [jid], [2], ['"ok"'], [1.0]
        ) == [jid]
    assert (await job(db, jid))["result"] == "ok"


async def test_sigterm_finishes_short_jobs_and_hands_back_the_rest(db: asyncpg.Pool, spawn) -> None:
    proc = spawn(env={"SHUTDOWN_GRACE_SECONDS": "1.5"})
    [long] = await submit(db, "test.sleep", [{"seconds": 60, "tag": "long"}])
    [short] = await submit(db, "test.sleep", [{"seconds": 0.3, "tag": "short"}])
    await wait_for(lambda: _count(db, "SELECT count(*) = 2 FROM ledger"))
    proc.signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert (await job(db, short))["status"] == "succeeded"
    row = await job(db, long)
    assert (row["status"], row["attempt"], row["worker_id"]) == ("queued", 0, None)
    [att] = await attempts(db, long)
    assert att["outcome"] == "handed_back"
    assert (await events(db, long))[-1] == "handed_back"
    status = await db.fetchval("SELECT status FROM workers WHERE id = $1", proc.worker_id)
    assert status == "stopped"
    # claimed again, it reuses attempt 1 (the attempt row is reopened, not duplicated)
    async with db.acquire() as conn:
        [claimed] = await job_runs.job_claim_available(conn, "next", 1, ["test.sleep@1"], None, 30)
    assert claimed["attempt"] == 1
    att = await attempts(db, long)
    assert [(a["outcome"], a["worker_id"]) for a in att] == [("running", "next")]


async def test_second_sigterm_exits_at_once(db: asyncpg.Pool, spawn) -> None:
    proc = spawn(env={"SHUTDOWN_GRACE_SECONDS": "60"})
    [jid] = await submit(db, "test.sleep", [{"seconds": 60}])
    await wait_for(lambda: _count(db, "SELECT count(*) FROM ledger WHERE job_id = $1", jid))
    proc.signal(signal.SIGTERM)
    await wait_for(
        lambda: _count(
            db, "SELECT count(*) FROM workers WHERE id = $1 AND status = 'stopping'", proc.worker_id
        )
    )
    proc.signal(signal.SIGTERM)
    assert proc.wait(5) == 143
    assert (await job(db, jid))["status"] == "running"  # left for the rescuer
