"""Runner control against real processes: an API process and `jobserver-worker` processes.

- ping: a live worker answers within the timeout, with the measured round trip;
- shutdown: a busy worker told `graceful` lets short jobs finish, hands the long ones back
  without using an attempt and exits 0; `immediate` hands everything back at once and exits 0;
- queue pause: no worker claims a paused queue (those of that queue, those of every queue, and
  one started while it is paused), other queues go on; after resume the jobs run;
- broadcast: reaches 3 live workers and names a SIGKILLed fourth as not answering; a worker's
  own pause (broadcast pause) holds only that worker, until resume;
- reload: a worker re-reads its `.env` and says which settings changed (a `--concurrency`
  given at start stays);
- stuck jobs: a worker SIGSTOPped past its lease (no scheduler, so nobody rescues the job)
  makes its job show in the queue's health as stuck (id, worker, since = the lease), with the
  stuck alert; woken with SIGCONT it renews the lease and the job is no longer stuck.

Each "stays queued" is read once something that happened after it proves the workers were
claiming meanwhile (a later job of another queue ran), never after a sleep.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from jobserver.db.jobs import NewJob, job_insert_many
from tests.faults.conftest import Row
from tests.faults.helpers import (
    LEASE,
    ROOT,
    Proc,
    Procs,
    active_workers,
    audit,
    wait_for,
    wait_terminal,
)

pytestmark = [pytest.mark.faults]


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session, self.base, self.token = session, base, token

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.post(
            self.base + path,
            json=body if body is not None else {},
            headers={"Authorization": f"Bearer {self.token}"},
        ) as r:
            return r.status, await r.json(content_type=None)

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(
            self.base + path, headers={"Authorization": f"Bearer {self.token}"}
        ) as r:
            return r.status, await r.json(content_type=None)

    async def status_of(self, worker_id: str) -> dict[str, Any]:
        status, body = await self.post(
            "/v1/runners/broadcast", {"command": "status", "timeoutMs": 5000}
        )
        assert status == 200, body
        [reply] = [r["reply"] for r in body["replies"] if r["runnerId"] == worker_id]
        return dict(reply)


@pytest.fixture
async def api(procs: Procs, tokens: dict[str, str]) -> AsyncIterator[Api]:
    _, base = await procs.api()
    async with aiohttp.ClientSession() as session:
        yield Api(session, base, tokens["manage"])


async def _listening(api: Api, *names: str) -> None:
    """Every named worker answers a ping (it is registered and its LISTEN session is up)."""
    for name in names:

        async def pong(name: str = name) -> bool:
            status, body = await api.post(f"/v1/runners/{name}/ping", {"timeoutMs": 500})
            return status == 200 and bool(body["answered"])

        await wait_for(pong, within=30, step=0.1)


async def _submit(db: asyncpg.Pool, n: int, ms: int, queue: str = "default") -> list[uuid.UUID]:
    async with db.acquire() as conn, conn.transaction():
        return await job_insert_many(
            conn, [NewJob("faults.work", 1, 3, params={"ms": ms}, queue=queue) for _ in range(n)]
        )


async def _job(db: asyncpg.Pool, job_id: uuid.UUID) -> asyncpg.Record:
    row = await db.fetchrow("SELECT status, worker_id, attempt FROM jobs WHERE id = $1", job_id)
    assert row is not None
    return row


@pytest.mark.scenario("runner control: ping")
async def test_ping_answers_within_the_timeout(
    db: asyncpg.Pool, procs: Procs, api: Api, report: Row
) -> None:
    procs.worker("pinged")
    await _listening(api, "pinged")
    status, body = await api.post("/v1/runners/pinged/ping", {"timeoutMs": 3000})
    assert status == 200, body
    assert body["answered"] and body["reply"] == {"pong": True}
    assert 0 < body["ms"] <= 3000
    report.note = f"round trip {body['ms']:.1f} ms"


@pytest.mark.scenario("runner control: shutdown")
async def test_graceful_and_immediate_shutdown_of_busy_workers(
    db: asyncpg.Pool, procs: Procs, api: Api, report: Row
) -> None:
    env = {"SHUTDOWN_GRACE_SECONDS": "1.5"}
    graceful = procs.worker("graceful", "--concurrency", "20", "--queues", "default", env=env)
    immediate = procs.worker("immediate", "--concurrency", "20", "--queues", "now", env=env)
    await _listening(api, "graceful", "immediate")
    short = await _submit(db, 5, 300)
    long = await _submit(db, 5, 5000)
    now = await _submit(db, 5, 5000, queue="now")
    ids = [*short, *long, *now]

    async def all_started() -> bool:
        n = await db.fetchval(
            "SELECT count(DISTINCT job_id) FROM fault_ledger WHERE job_id = ANY($1)", ids
        )
        return n == len(ids)

    await wait_for(all_started, within=20)
    status, body = await api.post("/v1/runners/graceful/shutdown", {"mode": "graceful"})
    assert status == 200 and body["answered"], body
    assert body["reply"]["mode"] == "graceful" and body["reply"]["stopping"]
    status, body = await api.post("/v1/runners/immediate/shutdown", {"mode": "immediate"})
    assert status == 200 and body["answered"], body
    for p in (graceful, immediate):
        code = await asyncio.to_thread(p.wait, 20)
        assert code == 0, p.output()[-3000:]
    rows = {
        r["id"]: (r["status"], r["attempt"])
        for r in await db.fetch("SELECT id, status, attempt FROM jobs WHERE id = ANY($1)", ids)
    }
    assert all(rows[i][0] == "succeeded" for i in short), "short jobs did not finish"
    assert all(rows[i] == ("queued", 0) for i in long), [rows[i] for i in long]
    assert all(rows[i] == ("queued", 0) for i in now), [rows[i] for i in now]
    statuses = await db.fetch(
        "SELECT status FROM workers WHERE id IN ('graceful', 'immediate') ORDER BY id"
    )
    assert [r["status"] for r in statuses] == ["stopped", "stopped"]

    procs.worker("next", "--concurrency", "20", "--queues", "default,now")
    await wait_terminal(db, ids, 30, procs)
    a = await audit(db, ids)
    report.accepted, report.terminal, report.duplicates = a.accepted, a.terminal, a.duplicates
    report.why = a.why()
    a.assert_clean()
    assert a.explained == {"handed back": len(long) + len(now)}
    report.note = "graceful: 5 finished, 5 handed back; immediate: 5 handed back; both exit 0"


@pytest.mark.scenario("runner control: queue pause")
async def test_a_paused_queue_is_claimed_by_no_worker_until_resumed(
    db: asyncpg.Pool, procs: Procs, api: Api, report: Row
) -> None:
    procs.worker("default-only", "--queues", "default")
    procs.worker("emails-only", "--queues", "emails")
    await _listening(api, "default-only", "emails-only")
    status, body = await api.post("/v1/queues/emails/pause", {"reason": "SMTP maintenance"})
    assert status == 200, body
    assert body["acknowledged"] == ["emails-only"] and body["notAnswered"] == []
    assert (await api.status_of("emails-only"))["claiming"] is False

    [held] = await _submit(db, 1, 20, queue="emails")
    [later] = await _submit(db, 1, 20)  # submitted after: its run shows claims went on
    await wait_for(lambda: _succeeded(db, later), within=20)
    assert (await _job(db, held))["status"] == "queued"

    # a worker of every queue started while the queue is paused skips it too
    procs.worker("latecomer")
    await _listening(api, "latecomer")
    reply = await api.status_of("latecomer")
    assert (reply["pausedQueues"], reply["claiming"]) == (["emails"], True)
    [other] = await _submit(db, 1, 20, queue="other")  # only the latecomer takes "other"
    await wait_for(lambda: _succeeded(db, other), within=20)
    assert (await _job(db, other))["worker_id"] == "latecomer"
    assert (await _job(db, held))["status"] == "queued"
    status, listed = await api.get("/v1/queues/paused")
    assert [q["queue"] for q in listed["items"]] == ["emails"]

    status, body = await api.post("/v1/queues/emails/resume")
    assert status == 200 and body["changed"], body
    assert body["acknowledged"] == ["emails-only", "latecomer"]
    await wait_for(lambda: _succeeded(db, held), within=20)
    report.accepted = report.terminal = 3
    report.note = "the paused queue's job stayed queued while 2 later jobs ran; ran after resume"


@pytest.mark.scenario("runner control: broadcast")
async def test_broadcast_reaches_three_and_names_a_killed_fourth(
    db: asyncpg.Pool, procs: Procs, api: Api, report: Row
) -> None:
    names = ["b-1", "b-2", "b-3", "b-4"]
    workers = [procs.worker(n) for n in names]
    await _listening(api, *names)
    workers[3].signal(signal.SIGKILL)
    await asyncio.to_thread(workers[3].wait, 10)
    assert await active_workers(db, names) == 4  # no scheduler: its row still says active
    status, body = await api.post("/v1/runners/broadcast", {"command": "status", "timeoutMs": 2000})
    assert status == 200, body
    assert (body["expected"], body["answered"]) == (4, 3)
    assert sorted(r["runnerId"] for r in body["replies"]) == names[:3]
    assert body["notAnswered"] == ["b-4"]
    assert all(r["reply"]["state"] == "active" for r in body["replies"])

    # a worker's own pause holds that worker alone, until resume
    status, body = await api.post("/v1/runners/broadcast", {"command": "pause", "timeoutMs": 2000})
    assert sorted(r["runnerId"] for r in body["replies"]) == names[:3]
    [held] = await _submit(db, 1, 20)
    fresh = procs.worker("b-fresh")  # not paused: it takes the job
    await wait_for(lambda: _succeeded(db, held), within=30)
    assert (await _job(db, held))["worker_id"] == "b-fresh"
    await _listening(api, "b-fresh")
    status, body = await api.post("/v1/runners/broadcast", {"command": "resume", "timeoutMs": 3000})
    assert {r["runnerId"]: r["reply"]["changed"] for r in body["replies"]} == {
        "b-1": True,
        "b-2": True,
        "b-3": True,
        "b-fresh": False,
    }
    assert fresh.alive()
    report.note = "3 replies, the SIGKILLed fourth named in notAnswered"


async def _succeeded(db: asyncpg.Pool, job_id: uuid.UUID) -> bool:
    return bool((await _job(db, job_id))["status"] == "succeeded")


class WorkerIn(Proc):
    """A worker process started in a directory of its own (its `.env` is read from there)."""

    def __init__(self, name: str, cwd: Path, env: dict[str, str], *args: str) -> None:
        self.name = name
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by Procs.close()
        self.started = time.time()
        argv = [sys.executable, "-m", "jobserver.cli.worker", "--module", "tests.faults.defs"]
        self.p = subprocess.Popen(
            [*argv, *args], env=env, cwd=cwd, stdout=self.log, stderr=self.log
        )


@pytest.mark.scenario("runner control: reload")
async def test_reload_reports_the_changed_settings(
    db: asyncpg.Pool, procs: Procs, api: Api, report: Row, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MAX_CONCURRENT_EXECUTIONS=2\nLOG_LEVEL=WARNING\nPOLL_INTERVAL_MS=200\n")
    env = procs.env()
    for name in ("MAX_CONCURRENT_EXECUTIONS", "LOG_LEVEL", "POLL_INTERVAL_MS"):
        env.pop(name, None)  # from .env only
    env["PYTHONPATH"] = str(ROOT)  # tests.faults.defs, from another working directory
    for name, args in (("reloaded", ()), ("pinned", ("--concurrency", "3"))):
        w = WorkerIn(name, tmp_path, {**env, "WORKER_ID": name}, *args)
        procs.all.append(w)
    await _listening(api, "reloaded", "pinned")
    status, body = await api.post("/v1/runners/broadcast", {"command": "reload"})
    assert {r["runnerId"]: r["reply"] for r in body["replies"]} == {
        "reloaded": {"changed": {}, "ignored": {}},
        "pinned": {"changed": {}, "ignored": {}},
    }

    env_file.write_text("MAX_CONCURRENT_EXECUTIONS=5\nLOG_LEVEL=DEBUG\nPOLL_INTERVAL_MS=200\n")
    status, body = await api.post("/v1/runners/broadcast", {"command": "reload"})
    assert status == 200, body
    replies = {r["runnerId"]: r["reply"] for r in body["replies"]}
    assert replies["reloaded"] == {
        "changed": {
            "MAX_CONCURRENT_EXECUTIONS": {"from": 2, "to": 5},
            "LOG_LEVEL": {"from": "WARNING", "to": "DEBUG"},
        },
        "ignored": {},
    }
    assert replies["pinned"] == {
        "changed": {"LOG_LEVEL": {"from": "WARNING", "to": "DEBUG"}},
        "ignored": {"MAX_CONCURRENT_EXECUTIONS": "--concurrency 3 given"},
    }
    status, runner = await api.get("/v1/runners/reloaded")
    assert runner["maxConcurrency"] == 5
    reply = await api.status_of("reloaded")
    assert (reply["concurrency"], reply["settings"]["LOG_LEVEL"]) == (5, "DEBUG")
    report.note = "MAX_CONCURRENT_EXECUTIONS and LOG_LEVEL changed; --concurrency kept"


async def _health(api: Api, queue: str) -> dict[str, Any]:
    status, body = await api.get(f"/v1/queues/{queue}/health?ttl=0")
    assert status == 200, body
    return dict(body)


@pytest.mark.scenario("queue health: SIGSTOPped worker")
async def test_a_job_whose_worker_is_stopped_past_its_lease_is_stuck(
    db: asyncpg.Pool, procs: Procs, api: Api, report: Row
) -> None:
    """No scheduler runs, so nobody rescues the job: it stays held, past its lease, for as
    long as its worker is stopped, and the queue's health must say so."""
    frozen = procs.worker("frozen", "--queues", "stuckq")
    await _listening(api, "frozen")
    [job] = await _submit(db, 1, 120_000, queue="stuckq")

    async def started() -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM fault_ledger WHERE job_id = $1", job))

    await wait_for(started, within=20)

    async def running() -> dict[str, Any] | None:  # as of the heartbeat after the start
        h = await _health(api, "stuckq")
        return h if h["counts"]["running"] == 1 else None

    before = await wait_for(running, within=10, step=0.05)
    assert (before["counts"]["pending"], before["counts"]["stuck"]) == (0, 0), before
    assert before["stuckJobs"] == [] and before["alerts"] == [] and before["status"] == "healthy"

    frozen.signal(signal.SIGSTOP)
    try:

        async def lease_passed() -> Any:
            return await db.fetchval(
                "SELECT lease_expires_at FROM jobs"
                " WHERE id = $1 AND status = 'running' AND lease_expires_at < now()",
                job,
            )

        lease = await wait_for(lease_passed, within=LEASE * 5, step=0.1)
        h = await _health(api, "stuckq")
        assert h["counts"]["stuck"] == 1 and h["counts"]["running"] == 1, h
        assert h["stuckJobs"] == [
            {
                "id": str(job),
                "workerId": "frozen",
                "since": h["stuckJobs"][0]["since"],
                "reason": "lease_expired",
            }
        ], h["stuckJobs"]
        assert datetime.fromisoformat(h["stuckJobs"][0]["since"]) == lease
        assert h["alerts"] == [
            {
                "rule": "stuck",
                "severity": "warning",  # critical from 2 (twice QUEUE_ALERT_STUCK)
                "value": 1,
                "threshold": 1,
                "message": "1 stuck jobs (threshold 1)",
            }
        ]
        assert h["status"] == "degraded"
        status, listed = await api.get("/v1/queues?ttl=0")
        assert status == 200, listed
        [row] = [q for q in listed["items"] if q["name"] == "stuckq"]
        assert (row["counts"]["stuck"], row["status"]) == (1, "degraded")
        status, system = await api.get("/v1/health?ttl=0")
        assert status == 200, system
        assert {"name": "stuckq", "status": "degraded", "alerts": 1} in system["queues"]
    finally:
        frozen.signal(signal.SIGCONT)

    # woken, the worker renews the lease it still holds (nobody rescued it): no longer stuck
    async def renewed() -> bool:
        h = await _health(api, "stuckq")
        return h["counts"]["stuck"] == 0 and h["counts"]["running"] == 1

    await wait_for(renewed, within=LEASE * 5, step=0.1)
    assert (await _job(db, job))["worker_id"] == "frozen"
    frozen.kill()
    report.accepted = 1
    report.note = "stuck (lease_expired, since = the lease) and a stuck warning while stopped"
