"""Broadcast jobs against real processes: an API process, `jobserver-worker` processes and a
scheduler.

- a broadcast job runs exactly once on each of 3 workers (the jobs' own ledger and the
  succeeded children, counted per worker), and its parent sums them; a repeat of its
  idempotency key answers the same parent;
- a 4th worker killed (kill -9) after the submission: its child ends failed (rescued, never
  moved to another worker) and the parent failed with the sums;
- no live worker with the definition (or serving the queue) -> 422 naming `broadcast`, nothing
  written; a batch item with `broadcast` -> 422 naming `jobs[0].broadcast`;
- cancelling the parent cancels the children, running ones included; the parent cannot be
  retried or cloned (409: submitting it again broadcasts to the workers of now).
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.faults.conftest import Row
from tests.faults.helpers import Procs, wait_for

pytestmark = [pytest.mark.faults]


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session, self.base, self.token = session, base, token

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(
            method,
            self.base + path,
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as r:
            return r.status, await r.json(content_type=None)


@pytest.fixture
async def api(procs: Procs, tokens: dict[str, str]) -> AsyncIterator[Api]:
    _, base = await procs.api()
    async with aiohttp.ClientSession() as session:
        yield Api(session, base, tokens["alice"])


async def _live(db: asyncpg.Pool, names: list[str]) -> None:
    """Every named worker is registered and active (as the API reads the fleet)."""

    async def up() -> bool:
        n = await db.fetchval(
            "SELECT count(*) FROM workers WHERE id = ANY($1) AND status = 'active'"
            " AND last_seen_at > now() - interval '0.5 seconds'",
            names,
        )
        return bool(n == len(names))

    await wait_for(up, within=30, step=0.1)


def _body(ms: int, **extra: Any) -> dict[str, Any]:
    return {"definitionKey": "faults.work", "params": {"ms": ms}, "broadcast": True, **extra}


async def _terminal(db: asyncpg.Pool, job_id: uuid.UUID, within: float = 60) -> asyncpg.Record:
    async def done() -> bool:
        status = await db.fetchval("SELECT status FROM jobs WHERE id = $1", job_id)
        return status in ("succeeded", "failed", "cancelled")

    await wait_for(done, within=within)
    row = await db.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
    assert row is not None
    return row


async def _children(db: asyncpg.Pool, parent: asyncpg.Record) -> dict[str, asyncpg.Record]:
    rows = await db.fetch(
        "SELECT id, queue, status, worker_id, attempt FROM jobs WHERE id = ANY($1)",
        parent["depends_on"],
    )
    return {r["queue"][1:]: r for r in rows}


@pytest.mark.scenario("broadcast job: once on each of 3 workers")
async def test_a_broadcast_job_runs_exactly_once_on_each_of_three_workers(
    db: asyncpg.Pool, procs: Procs, api: Api, report: Row
) -> None:
    names = ["bc-1", "bc-2", "bc-3"]
    for n in names:
        procs.worker(n)
    await _live(db, names)
    status, body = await api.call("POST", "/v1/jobs", _body(50, idempotencyKey="everyone"))
    assert status == 201, body
    assert body["broadcast"] is True and body["status"] == "waiting"
    assert sorted(c["workerId"] for c in body["broadcastChildren"]) == names
    parent_id = uuid.UUID(body["id"])
    parent = await _terminal(db, parent_id)
    assert parent["status"] == "succeeded", parent
    assert parent["result"] == {
        "workers": dict.fromkeys(names, "succeeded"),
        "succeeded": 3,
        "failed": 0,
    }
    children = await _children(db, parent)
    assert sorted(children) == names
    for worker, c in children.items():  # each ran on its own worker, once
        assert (c["status"], c["worker_id"], c["attempt"]) == ("succeeded", worker, 1)
    ran = await db.fetch(
        "SELECT worker_id, count(*) AS n FROM fault_ledger WHERE job_id = ANY($1)"
        " GROUP BY worker_id ORDER BY worker_id",
        parent["depends_on"],
    )
    assert [(r["worker_id"], r["n"]) for r in ran] == [(n, 1) for n in names]
    per_worker = await db.fetch(
        "SELECT worker_id, count(*) AS n FROM jobs WHERE id = ANY($1) AND status = 'succeeded'"
        " GROUP BY worker_id ORDER BY worker_id",
        parent["depends_on"],
    )
    assert [(r["worker_id"], r["n"]) for r in per_worker] == [(n, 1) for n in names]

    status, again = await api.call("POST", "/v1/jobs", _body(50, idempotencyKey="everyone"))
    assert (status, again["id"]) == (200, body["id"]), again  # same key -> same parent
    status, shown = await api.call("GET", f"/v1/jobs/{parent_id}")
    assert status == 200 and shown["status"] == "succeeded"
    assert {c["workerId"]: c["status"] for c in shown["broadcastChildren"]} == dict.fromkeys(
        names, "succeeded"
    )
    report.accepted = report.terminal = 1
    report.note = "3 children, each succeeded once on its own worker; parent succeeded 3/0"


@pytest.mark.scenario("broadcast job: a killed fourth worker")
async def test_a_worker_killed_after_the_submission_fails_its_child_and_the_parent(
    db: asyncpg.Pool, procs: Procs, api: Api, report: Row
) -> None:
    names = ["k-1", "k-2", "k-3", "k-4"]
    workers = [procs.worker(n) for n in names]
    procs.scheduler("k-sched")
    await _live(db, names)
    status, body = await api.call("POST", "/v1/jobs", _body(300))
    assert status == 201, body
    assert len(body["broadcastChildren"]) == 4
    workers[3].signal(signal.SIGKILL)
    await asyncio.to_thread(workers[3].wait, 10)
    parent = await _terminal(db, uuid.UUID(body["id"]))
    assert parent["status"] == "failed", parent
    assert parent["result"] == {
        "workers": {"k-1": "succeeded", "k-2": "succeeded", "k-3": "succeeded", "k-4": "failed"},
        "succeeded": 3,
        "failed": 1,
    }
    children = await _children(db, parent)
    dead = children["k-4"]
    assert dead["status"] == "failed"
    assert dead["worker_id"] in (None, "k-4")  # rescued, never run by another worker
    others = await db.fetchval(
        "SELECT count(*) FROM fault_ledger WHERE job_id = $1 AND worker_id <> 'k-4'", dead["id"]
    )
    assert others == 0
    why = await db.fetchval(
        "SELECT details->>'error' FROM job_events WHERE job_id = $1 AND event = 'failed'",
        dead["id"],
    )
    assert why in ("worker k-4 is gone", "lease expired"), why
    report.accepted = report.terminal = 1
    report.note = f"killed worker's child failed ({why}); parent failed 3/1"


@pytest.mark.scenario("broadcast job: refused, cancelled")
async def test_no_worker_is_a_422_and_cancel_reaches_the_children(
    db: asyncpg.Pool, procs: Procs, api: Api, report: Row
) -> None:
    before = await db.fetchval("SELECT count(*) FROM jobs")
    status, body = await api.call("POST", "/v1/jobs", _body(10))
    assert status == 422 and body["field"] == "broadcast", body
    assert body["code"] == "no_workers"
    batch = {"jobs": [_body(10)]}
    status, body = await api.call("POST", "/v1/jobs/batch", batch)
    assert status == 422 and body["field"] == "jobs[0].broadcast", body
    status, body = await api.call("POST", "/v1/jobs", _body(10, dependsOn=[str(uuid.uuid4())]))
    assert status == 422 and body["field"] == "dependsOn", body
    status, body = await api.call("POST", "/v1/jobs", _body(10, broadcast="yes"))
    assert status == 422 and body["field"] == "broadcast", body

    procs.worker("c-1", "--queues", "default")
    procs.worker("c-2", "--queues", "default")
    await _live(db, ["c-1", "c-2"])
    status, body = await api.call("POST", "/v1/jobs", _body(10, queue="emails"))
    assert status == 422 and body["field"] == "broadcast", body  # nobody serves emails
    assert await db.fetchval("SELECT count(*) FROM jobs") == before  # nothing written

    status, body = await api.call("POST", "/v1/jobs", _body(60_000))
    assert status == 201, body
    ids = [uuid.UUID(c["id"]) for c in body["broadcastChildren"]]

    async def both_running() -> bool:
        n = await db.fetchval(
            "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'running'", ids
        )
        return bool(n == 2)

    await wait_for(both_running, within=30)
    status, cancelled = await api.call("POST", f"/v1/jobs/{body['id']}/cancel")
    assert status == 200 and cancelled["status"] == "cancelled", cancelled

    async def children_cancelled() -> bool:
        rows = await db.fetch("SELECT status FROM jobs WHERE id = ANY($1)", ids)
        return [r[0] for r in rows] == ["cancelled", "cancelled"]

    await wait_for(children_cancelled, within=30)
    for action in ("retry", "clone"):  # a copy would not broadcast: submit it again
        status, refused = await api.call("POST", f"/v1/jobs/{body['id']}/{action}", {})
        assert status == 409 and refused["code"] == "invalid_state", (action, refused)
    report.accepted = report.terminal = 1
    report.note = "no worker: 422 broadcast; cancel: both running children cancelled"
