"""A job's answer: `queuePosition` in claim order (single GET only), `isTerminal`,
`isRetriable`, the `metadata` a real running job sets with ctx.set_metadata; the list's
`pendingCount` and `runningCount` for its filter, and `since`."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from jobserver.config import Settings
from jobserver.db.definitions import definition_upsert
from jobserver.registry import Registry, definition, load_modules
from jobserver.worker.worker import Worker
from tests.api.conftest import FAST_WORKER, Api
from tests.waiting import wait_for

DEFS = Registry()


@definition("answer.report", 1, default_max_attempts=1, target=DEFS)
async def report(params: Any, ctx: Any) -> dict[str, Any]:
    """Report as it goes, then wait until cancelled (or `finish`)."""
    assert await ctx.set_metadata({"emailsSent": 1, "batch": params.get("batch")})
    assert await ctx.set_metadata({"emailsSent": 42})
    if not params.get("finish"):
        await asyncio.wait_for(ctx.cancelled.wait(), 60)
    return {"done": True}


@definition("answer.grow", 1, default_max_attempts=1, target=DEFS)
async def grow(params: Any, ctx: Any) -> None:
    """Two pieces of metadata, each within the limit, together over it."""
    await ctx.set_metadata({"a": "x" * 600})
    await ctx.set_metadata({"b": "x" * 600})


async def _worker(api: Api, settings: Settings, **overrides: Any) -> Worker:
    registry = Registry()
    for d in [*load_modules().all(), *DEFS.all()]:
        registry.add(d)
    for d in DEFS.all():
        await definition_upsert(api.pool, d.metadata())
    fast = replace(settings, **FAST_WORKER, worker_id="answer-worker", **overrides)
    w = Worker(fast, registry, pool=api.pool)
    await w.start()
    return w


@pytest.fixture
async def worker(api: Api, settings: Settings) -> AsyncIterator[Worker]:
    w = await _worker(api, settings)
    yield w
    await w.stop(grace=0)


@pytest.fixture
async def small_worker(api: Api, settings: Settings) -> AsyncIterator[Worker]:
    w = await _worker(api, settings, max_result_bytes=1000)
    yield w
    await w.stop(grace=0)


async def get(api: Api, job_id: str, token: str = "plain") -> dict[str, Any]:
    r = await api.call("GET", f"/v1/jobs/{job_id}", token=token)
    assert r.status == 200, r.body
    return dict(r.body)


async def test_metadata_set_by_a_running_job_shows_in_its_answer(api: Api, worker: Worker) -> None:
    r = await api.call(
        "POST",
        "/v1/jobs",
        token="plain",
        json={"definitionKey": "answer.report", "params": {"batch": "b-7"}},
    )
    assert r.status == 201, r.body
    job_id = r.body["id"]
    assert r.body["metadata"] is None

    async def reported() -> dict[str, Any] | None:
        job = await get(api, job_id)
        return job if job["metadata"] and job["metadata"]["emailsSent"] == 42 else None

    running = await wait_for(reported, within=30)
    assert running["status"] == "running" and not running["isTerminal"]
    assert running["metadata"] == {"emailsSent": 42, "batch": "b-7"}  # merged shallowly
    listed = await api.call("GET", "/v1/jobs", token="plain")
    assert listed.body["items"][0]["metadata"] == running["metadata"]
    assert "queuePosition" not in listed.body["items"][0]  # the single GET's only
    assert (listed.body["pendingCount"], listed.body["runningCount"]) == (0, 1)
    assert (await api.call("POST", f"/v1/jobs/{job_id}/cancel", token="plain")).status == 200

    async def cancelled() -> dict[str, Any] | None:
        job = await get(api, job_id)
        return job if job["status"] == "cancelled" else None

    done = await wait_for(cancelled, within=30)
    assert done["metadata"] == {"emailsSent": 42, "batch": "b-7"}  # kept once finished
    assert done["isTerminal"] and done["isRetriable"]
    # the retry starts with no metadata of its own; it sets its own when it runs
    r = await api.call("POST", f"/v1/jobs/{job_id}/retry", token="plain")
    assert r.status == 201 and r.body["metadata"] is None, r.body


async def test_metadata_merged_past_the_limit_fails_the_attempt(
    api: Api, small_worker: Worker
) -> None:
    r = await api.call("POST", "/v1/jobs", token="plain", json={"definitionKey": "answer.grow"})
    assert r.status == 201, r.body

    async def failed() -> dict[str, Any] | None:
        job = await get(api, r.body["id"])
        return job if job["status"] == "failed" else None

    job = await wait_for(failed, within=30)
    assert "result_not_storable" in job["lastError"] and "metadata" in job["lastError"], job
    assert job["metadata"] == {"a": "x" * 600}  # the merge that fitted stays


async def test_flags_by_status(api: Api) -> None:
    job = await api.submit("plain")
    expected = {
        "queued": (False, False),
        "running": (False, False),
        "cancelling": (False, False),
        "succeeded": (True, False),
        "failed": (True, True),
        "cancelled": (True, True),
        "expired": (True, True),
    }
    for status, flags in expected.items():
        await api.pool.execute("UPDATE jobs SET status = $2 WHERE id = $1::uuid", job["id"], status)
        body = await get(api, job["id"])
        assert (body["isTerminal"], body["isRetriable"]) == flags, status
        assert body["queuePosition"] == (0 if status == "queued" else None), status


async def test_queue_position_in_claim_order(api: Api) -> None:
    now = dt.datetime.now(dt.UTC)

    async def submit(**fields: Any) -> str:
        return str((await api.submit("plain", **fields))["id"])

    elsewhere = await submit(queue="other", priority=9)
    first = await submit()
    second = await submit()
    urgent = await submit(priority=5)
    later = await submit(runAt=(now + dt.timedelta(hours=1)).isoformat())
    positions = {elsewhere: 0, urgent: 0, first: 1, second: 2, later: 3}
    for job_id, ahead in positions.items():
        body = await get(api, job_id)
        assert (body["queuePosition"], body["queuePositionCapped"]) == (ahead, False), job_id
    # claimed: no longer queued, no position; the jobs behind it move up
    await api.pool.execute(
        "UPDATE jobs SET status = 'running', worker_id = 'w', attempt = 1 WHERE id = $1::uuid",
        urgent,
    )
    assert (await get(api, urgent))["queuePosition"] is None
    assert (await get(api, second))["queuePosition"] == 1
    # another owner's jobs count too: claims take them from the same queue
    await api.submit("other", priority=7)
    assert (await get(api, second))["queuePosition"] == 2


async def test_list_counts_follow_the_filter(api: Api) -> None:
    mine = [await api.submit("plain", queue="mail") for _ in range(3)]
    await api.submit("plain", queue="sms")
    await api.submit("other", queue="mail")
    await api.pool.execute(
        "UPDATE jobs SET status = 'running', worker_id = 'w', attempt = 1 WHERE id = $1::uuid",
        mine[0]["id"],
    )

    async def counts(token: str = "plain", **query: str) -> tuple[int, int, bool]:
        r = await api.call("GET", "/v1/jobs", token=token, params=query)
        assert r.status == 200, r.body
        return r.body["pendingCount"], r.body["runningCount"], r.body["countsAreEstimates"]

    assert await counts() == (3, 1, False)  # alice's own jobs
    assert await counts("manage") == (4, 1, False)  # everybody's
    assert await counts(queue="mail") == (2, 1, False)
    assert await counts("manage", queue="mail") == (3, 1, False)
    assert await counts(status="running") == (0, 1, False)
    assert await counts(status="succeeded,failed") == (0, 0, False)
    r = await api.call("GET", "/v1/jobs", token="plain", params={"page": "1", "limit": "1"})
    assert (r.body["total"], r.body["pendingCount"], r.body["runningCount"]) == (4, 3, 1)


async def test_since_is_created_after(api: Api) -> None:
    old = await api.submit("plain")
    cut = await api.pool.fetchval("SELECT created_at FROM jobs WHERE id = $1::uuid", old["id"])
    new = await api.submit("plain")
    r = await api.call("GET", "/v1/jobs", token="plain", params={"since": cut.isoformat()})
    assert r.status == 200 and [j["id"] for j in r.body["items"]] == [new["id"]], r.body
    assert r.body["pendingCount"] == 1
    r = await api.call("GET", "/v1/jobs/count", token="plain", params={"since": cut.isoformat()})
    assert r.body["total"] == 1
    both = {"since": cut.isoformat(), "createdAfter": cut.isoformat()}
    r = await api.call("GET", "/v1/jobs", token="plain", params=both)
    assert (r.status, r.body["field"]) == (422, "since, createdAfter"), r.body
    r = await api.call("GET", "/v1/jobs", token="plain", params={"since": "yesterday"})
    assert (r.status, r.body["field"]) == (422, "since"), r.body
