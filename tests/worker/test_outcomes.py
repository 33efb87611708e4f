"""Outcomes of a run: success, failure with retries and back-off, dead-lettering, timeouts."""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import asyncpg
import psutil

from jobserver.config import Settings
from jobserver.db.events import job_events_list
from tests.worker.conftest import attempts, events, job, status_is, submit, wait_for


async def test_success_writes_result_attempt_and_events(db: asyncpg.Pool, start_worker) -> None:
    [jid] = await submit(db, "echo", [{"message": "hi"}])
    w = await start_worker()
    await wait_for(lambda: status_is(db, jid, "succeeded"))
    row = await job(db, jid)
    assert row["result"] == {"message": "hi"}
    assert row["attempt"] == 1 and row["worker_id"] == w.worker_id
    assert row["finished_at"] is not None and row["lease_expires_at"] is None
    [att] = await attempts(db, jid)
    assert att["outcome"] == "succeeded" and att["finished_at"] is not None
    assert att["duration_ms"] is not None and att["worker_id"] == w.worker_id
    assert row["created_at"] <= att["started_at"] <= att["finished_at"] == row["finished_at"]
    assert await events(db, jid) == ["created", "started", "succeeded"]
    # the success wrote the jobs row and nothing else: no stored attempt or event rows
    assert not await db.fetchval("SELECT count(*) FROM job_attempts WHERE job_id = $1", jid)
    stored = await db.fetch("SELECT event FROM job_events WHERE job_id = $1", jid)
    assert {r["event"] for r in stored} <= {"created"}


async def test_context_events_and_progress(db: asyncpg.Pool, start_worker) -> None:
    [jid] = await submit(db, "test.events", [{}])
    await start_worker()
    await wait_for(lambda: status_is(db, jid, "succeeded"))
    row = await job(db, jid)
    assert row["result"] == {"jobId": str(jid), "attempt": 1}
    assert row["progress"] == {"done": 2, "total": 2, "percent": 100.0}
    rows = await job_events_list(db, jid)
    assert [r["id"] for r in rows] == list(range(1, 7))
    assert [r["event"] for r in rows] == [
        "created",
        "started",
        "custom",
        "progress",
        "progress",
        "succeeded",
    ]
    assert rows[2]["details"] == {"name": "checkpoint", "data": {"step": 1}}
    assert rows[3]["details"]["message"] == "half way"


async def test_failure_retries_with_backoff_then_dead_letters(
    db: asyncpg.Pool, start_worker
) -> None:
    # test.flaky overrides the back-off: base 0.4 s, jitter 25%, 3 attempts
    [jid] = await submit(db, "test.flaky", [{}])
    await start_worker()
    await wait_for(lambda: status_is(db, jid, "failed"), within=15)
    row = await job(db, jid)
    assert row["attempt"] == 3 and row["last_error"] == "ValueError: flaky failure on attempt 3"
    runs = await attempts(db, jid)
    assert [a["outcome"] for a in runs] == ["failed"] * 3
    assert all("Traceback" in a["traceback"] for a in runs)
    retry = await db.fetch(
        "SELECT details FROM job_events WHERE job_id = $1 AND event = 'retry_scheduled'"
        " ORDER BY id",
        jid,
    )
    assert len(retry) == 2
    assert "flaky failure" in retry[0]["details"]["error"]
    # each delay is the back-off within its jitter bounds, and no retry started before it was
    # due (how much later it started is scheduling latency: not asserted, the machine is noisy)
    for n, (prev, nxt) in enumerate(itertools.pairwise(runs), start=1):
        base = min(10, 0.4 * 2 ** (n - 1))
        delay = retry[n - 1]["details"]["delaySeconds"]
        assert base * 0.75 <= delay <= base * 1.25, (n, delay)
        gap = (nxt["started_at"] - prev["finished_at"]).total_seconds()
        assert gap >= delay - 0.05, (n, gap, delay)
    ev = await events(db, jid)
    assert ev[-2:] == ["failed", "dead_lettered"]
    dlq = await db.fetchrow("SELECT attempts, history FROM dead_letter_jobs WHERE id = $1", jid)
    assert dlq["attempts"] == 3 and len(dlq["history"]) == 3


async def test_retry_then_success(db: asyncpg.Pool, start_worker) -> None:
    [jid] = await submit(db, "test.flaky", [{"succeedOn": 2}])
    await start_worker()
    await wait_for(lambda: status_is(db, jid, "succeeded"), within=10)
    row = await job(db, jid)
    assert row["result"] == {"attempt": 2} and row["attempt"] == 2
    outcomes = await attempts(db, jid)
    assert [r["outcome"] for r in outcomes] == ["failed", "succeeded"]
    ev = await events(db, jid)
    assert ev == ["created", "started", "retry_scheduled", "started", "succeeded"]


async def test_timeout_fails_the_attempt_and_retries(
    db: asyncpg.Pool, start_worker, fast_settings: Settings
) -> None:
    [jid] = await submit(db, "test.sleep", [{"seconds": 30}], timeout_seconds=0.3, max_attempts=2)
    await start_worker(replace(fast_settings, backoff_base_seconds=0.1))
    await wait_for(lambda: status_is(db, jid, "failed"), within=10)
    row = await job(db, jid)
    assert row["last_error"] == "timed out after 0.3 s"
    outcomes = await attempts(db, jid)
    assert [r["outcome"] for r in outcomes] == ["timed_out", "timed_out"]
    ev = await events(db, jid)
    assert ev.count("timed_out") == 2 and "retry_scheduled" in ev


async def test_a_jobs_own_timeout_never_lengthens_its_definitions(
    db: asyncpg.Pool, start_worker
) -> None:
    """The API refuses such a job; a row written some other way (an older API, SQL) still
    cannot hold a slot past the definition's timeout."""
    [jid] = await submit(db, "test.brief", [{"seconds": 30}], timeout_seconds=604800)
    await start_worker()
    await wait_for(lambda: status_is(db, jid, "failed"), within=10)
    assert (await job(db, jid))["last_error"] == "timed out after 0.3 s"


async def test_timeout_stops_the_jobs_cpu_work(db: asyncpg.Pool, start_worker) -> None:
    pid_file = tempfile.mktemp(prefix="jobserver-cpu-", dir="/tmp")
    [jid] = await submit(
        db, "test.cpu_spin", [{"pidFile": pid_file, "seconds": 60}], timeout_seconds=3
    )
    await start_worker()

    def read_pid() -> str:
        return Path(pid_file).read_text() if os.path.exists(pid_file) else ""

    async def pid_written() -> str:
        return await asyncio.to_thread(read_pid)

    pid = int(await wait_for(pid_written))
    assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    await wait_for(lambda: status_is(db, jid, "failed"), within=20)
    assert (await job(db, jid))["last_error"] == "timed out after 3 s"
    os.unlink(pid_file)

    async def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    # the pool process that ran the call is terminated with the job, not left spinning for 60 s
    await wait_for(gone, within=10)


async def test_unserialisable_result_fails(db: asyncpg.Pool, start_worker) -> None:
    [jid] = await submit(db, "test.badresult", [{}])
    await start_worker()
    await wait_for(lambda: status_is(db, jid, "failed", "succeeded"))
    row = await job(db, jid)
    assert row["status"] == "failed" and "JSON" in row["last_error"]
