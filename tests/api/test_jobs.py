"""Job routes: submission defaults, idempotency (incl. races), batch, listing, cancel, events,
attempts, definitions, OpenAPI and request logging."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid
from typing import Any

import asyncpg
import pytest

from jobserver.api.keys import ROUTES_KEY
from jobserver.db.channels import CANCEL_CHANNEL, JOBS_CHANNEL
from jobserver.db.jobs import JobFilter, job_count
from jobserver.db.pool import connect
from jobserver.logs import JsonFormatter
from tests.api.conftest import Api, wait_for


class Listener:
    """A LISTEN session collecting notifications on one channel."""

    def __init__(self, conn: asyncpg.Connection, channel: str) -> None:
        self.conn, self.channel, self.payloads = conn, channel, []

    def __call__(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self.payloads.append(payload)

    async def wait(self, n: int = 1) -> list[str]:
        async def got() -> bool:
            return len(self.payloads) >= n

        await wait_for(got, within=5)
        return self.payloads


@pytest.fixture
async def listen(database_url: str) -> Any:
    conns: list[asyncpg.Connection] = []

    async def start(channel: str) -> Listener:
        conn = await connect(database_url)
        conns.append(conn)
        listener = Listener(conn, channel)
        await conn.add_listener(channel, listener)
        return listener

    yield start
    for c in conns:
        await c.close()


async def test_submit_returns_full_job_with_defaults(api: Api, listen: Any) -> None:
    jobs_channel = await listen(JOBS_CHANNEL)
    r = await api.call("POST", "/v1/jobs", json={"definitionKey": "echo"})
    assert r.status == 201, r.body
    j = r.body
    # version omitted -> latest registered (echo@2 from the test registry); its default attempts
    assert (j["definitionKey"], j["definitionVersion"], j["maxAttempts"]) == ("echo", 2, 7)
    assert j["jobId"] == j["id"] and uuid.UUID(j["jobId"])
    assert j["status"] == "queued" and j["attempt"] == 0 and j["priority"] == 0
    assert j["queue"] == "default" and j["params"] == {} and j["owner"] == "admin"
    for key in (
        "result",
        "lastError",
        "progress",
        "workerId",
        "startedAt",
        "finishedAt",
        "cancelRequestedAt",
        "expiresAt",
        "processingTimeMs",
    ):
        assert j[key] is None, key
    assert j["createdAt"] and j["runAt"] and j["queueTimeMs"] is not None
    assert await jobs_channel.wait() == ["default"]
    events = await api.call("GET", f"/v1/jobs/{j['jobId']}/events")
    assert [e["event"] for e in events.body["items"]] == ["created"]
    assert events.body["nextCursor"] is None


async def test_submit_with_every_option(api: Api) -> None:
    run_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    j = await api.submit(
        definitionKey="strict",
        definitionVersion=1,
        params={"name": "a", "count": 3, "tags": ["x"], "inner": {"level": "high"}},
        priority=-5,
        maxAttempts=4,
        queue="emails",
        runAt=run_at.isoformat(),
        expiresAt=(run_at + dt.timedelta(minutes=5)).isoformat(),
        timeoutSeconds=12.5,
    )
    assert (j["priority"], j["maxAttempts"], j["queue"], j["timeoutSeconds"]) == (
        -5,
        4,
        "emails",
        12.5,
    )
    assert dt.datetime.fromisoformat(j["runAt"]) == run_at
    d = (
        await api.submit(delaySeconds=60, runAt=None)
        if False
        else await api.submit(delaySeconds=60)
    )
    delay = dt.datetime.fromisoformat(d["runAt"]) - dt.datetime.fromisoformat(d["createdAt"])
    assert 55 <= delay.total_seconds() <= 65
    # a schema with a local $ref accepts valid params
    await api.submit(definitionKey="refy", definitionVersion=1, params={"n": 3})


async def test_idempotent_repeat_and_conflict(api: Api) -> None:
    body = {"definitionKey": "echo", "params": {"message": "once"}, "idempotencyKey": "k"}
    first = await api.call("POST", "/v1/jobs", json=body)
    again = await api.call("POST", "/v1/jobs", json=body)
    assert (first.status, again.status) == (201, 200)
    assert first.body["jobId"] == again.body["jobId"]
    changed = await api.call("POST", "/v1/jobs", json={**body, "params": {"message": "twice"}})
    assert (changed.status, changed.body["code"]) == (409, "idempotency_conflict")
    assert await api.job_count() == 1


async def test_concurrent_submissions_with_one_key_make_one_job(api: Api) -> None:
    body = {"definitionKey": "echo", "params": {"message": "race"}, "idempotencyKey": "race"}
    replies = await asyncio.gather(*(api.call("POST", "/v1/jobs", json=body) for _ in range(20)))
    assert sorted(r.status for r in replies) == [200] * 19 + [201]
    assert len({r.body["jobId"] for r in replies}) == 1
    assert await api.job_count() == 1
    batch = {"jobs": [body, {"definitionKey": "echo", "idempotencyKey": "b2"}]}
    replies = await asyncio.gather(
        *(api.call("POST", "/v1/jobs/batch", json=batch) for _ in range(8))
    )
    assert all(r.status in (200, 201) for r in replies), [r.body for r in replies]
    assert len({tuple(r.body["jobIds"]) for r in replies}) == 1
    assert (
        replies[0].body["jobIds"][0]
        == (await api.call("POST", "/v1/jobs", json=body)).body["jobId"]
    )
    assert await api.job_count() == 2


async def test_batch_inserts_all_in_order_with_one_notify(api: Api, listen: Any) -> None:
    channel = await listen(JOBS_CHANNEL)
    items = [
        {
            "definitionKey": "echo",
            "definitionVersion": 1,
            "params": {"message": str(i)},
            "queue": "q1",
        }
        for i in range(250)
    ]
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": items})
    assert r.status == 201, r.body
    assert r.body["created"] == 250 and r.body["existing"] == []
    ids = r.body["jobIds"]
    rows = await api.pool.fetch(
        "SELECT id::text, params->>'message' AS m FROM jobs WHERE id = ANY($1::uuid[])", ids
    )
    by_id = {row["id"]: row["m"] for row in rows}
    assert [by_id[i] for i in ids] == [str(i) for i in range(250)]
    # `created` is derived from the job row, not stored
    assert await api.pool.fetchval("SELECT count(*) FROM job_events") == 0
    events = await api.call("GET", f"/v1/jobs/{ids[-1]}/events")
    assert [e["event"] for e in events.body["items"]] == ["created"]
    assert await channel.wait() == ["q1"]
    # a repeat with an idempotent item reports it as existing
    keyed = [{"definitionKey": "echo", "idempotencyKey": "x"}, {"definitionKey": "echo"}]
    first = await api.call("POST", "/v1/jobs/batch", json={"jobs": keyed})
    second = await api.call("POST", "/v1/jobs/batch", json={"jobs": keyed[:1]})
    assert (first.status, second.status) == (201, 200)
    assert second.body == {"jobIds": [first.body["jobIds"][0]], "created": 0, "existing": [0]}
    conflict = [
        {"definitionKey": "echo", "idempotencyKey": "x", "priority": 3},
        {"definitionKey": "echo"},
    ]
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": conflict})
    assert (r.status, r.body["field"]) == (409, "jobs[0].idempotencyKey")
    assert await api.job_count() == 252


async def _page_through(api: Api, params: dict[str, str], token: str = "manage") -> list[dict]:
    seen: list[dict] = []
    cursor = None
    for _ in range(50):
        q = dict(params, **({"cursor": cursor} if cursor else {}))
        r = await api.call("GET", "/v1/jobs", params=q, token=token)
        assert r.status == 200, r.body
        assert set(r.body) == {
            "items",
            "nextCursor",
            "pendingCount",
            "runningCount",
            "countsAreEstimates",
        }
        seen.extend(r.body["items"])
        cursor = r.body["nextCursor"]
        if cursor is None:
            return seen
    raise AssertionError("pagination did not end")


async def test_list_filters_sort_and_cursor(api: Api) -> None:
    items = [
        {
            "definitionKey": "echo",
            "definitionVersion": 1,
            "priority": i % 5,
            "queue": "a" if i % 2 else "b",
        }
        for i in range(23)
    ]
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": items})
    ids = r.body["jobIds"]
    strict = await api.submit(
        definitionKey="strict", definitionVersion=1, params={"name": "s", "count": 1}
    )
    await api.call("POST", f"/v1/jobs/{ids[0]}/cancel")
    r = await api.call("GET", "/v1/jobs")
    assert len(r.body["items"]) == 20 and r.body["nextCursor"]
    r = await api.call("GET", "/v1/jobs/count")
    assert r.body == {"total": 24, "isEstimate": False}
    r = await api.call("GET", "/v1/jobs")
    assert r.body["items"][0]["jobId"] == strict["jobId"]  # newest first by default

    everything = await _page_through(api, {"limit": "7"})
    assert len(everything) == 24 and len({j["jobId"] for j in everything}) == 24
    for sort_by in ("createdAt", "priority", "status"):
        for order in ("asc", "desc"):
            got = await _page_through(api, {"limit": "5", "sortBy": sort_by, "sortOrder": order})
            key = {"createdAt": "createdAt", "priority": "priority", "status": "status"}[sort_by]
            values = [j[key] for j in got]
            assert values == sorted(values, reverse=order == "desc"), (sort_by, order)
            assert len({j["jobId"] for j in got}) == 24

    def ids_of(reply: Any) -> set[str]:
        return {j["jobId"] for j in reply.body["items"]}

    async def count(params: Any) -> int:
        r = await api.call("GET", "/v1/jobs/count", params=params)
        assert r.status == 200 and r.body["isEstimate"] is False, r.body
        return int(r.body["total"])

    r = await api.call("GET", "/v1/jobs", params={"queue": "a", "limit": "100"})
    assert len(r.body["items"]) == 11 and all(j["queue"] == "a" for j in r.body["items"])
    assert r.body["nextCursor"] is None and await count({"queue": "a"}) == 11
    r = await api.call("GET", "/v1/jobs", params={"definitionKey": "strict"})
    assert ids_of(r) == {strict["jobId"]}
    r = await api.call("GET", "/v1/jobs", params={"status": "cancelled"})
    assert ids_of(r) == {ids[0]}
    r = await api.call("GET", "/v1/jobs", params=[("status", "cancelled,queued"), ("limit", "100")])
    assert len(r.body["items"]) == 24
    assert await count([("status", "cancelled"), ("status", "running")]) == 1
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    r = await api.call("GET", "/v1/jobs", params={"createdAfter": future})
    assert (r.body["items"], r.body["nextCursor"], r.body["pendingCount"]) == ([], None, 0)
    assert await count({"createdAfter": future}) == 0
    r = await api.call("GET", "/v1/jobs", params={"createdBefore": future, "limit": "1"})
    assert len(r.body["items"]) == 1 and r.body["nextCursor"]
    assert await count({"createdBefore": future}) == 24
    # a cursor from another sort order is refused
    r2 = await api.call(
        "GET", "/v1/jobs", params={"cursor": r.body["nextCursor"], "sortOrder": "asc"}
    )
    assert (r2.status, r2.body["field"]) == (422, "cursor")


async def test_count_switches_to_estimate_above_cap(api: Api) -> None:
    items = [{"definitionKey": "echo"}] * 30
    await api.call("POST", "/v1/jobs/batch", json={"jobs": items})
    await api.pool.execute("ANALYZE jobs")
    assert await job_count(api.pool, JobFilter(), cap=100) == (30, False)
    total, estimate = await job_count(api.pool, JobFilter(), cap=10)
    assert estimate is True and total >= 11


async def test_cancel_queued_running_and_terminal(api: Api, listen: Any) -> None:
    cancels = await listen(CANCEL_CHANNEL)
    queued = await api.submit(token="plain")
    r = await api.call("POST", f"/v1/jobs/{queued['jobId']}/cancel", token="plain")
    assert r.status == 200 and r.body["status"] == "cancelled"
    assert r.body["finishedAt"] and r.body["cancelRequestedAt"]
    r = await api.call("POST", f"/v1/jobs/{queued['jobId']}/cancel", token="plain")
    assert (r.status, r.body["code"], r.body["jobStatus"]) == (409, "invalid_state", "cancelled")

    running = await api.submit(token="plain")
    # a worker holds it (what job_runs' claim would have written)
    await api.pool.execute(
        "UPDATE jobs SET status='running', attempt=1, worker_id='w1', started_at=now(),"
        " lease_expires_at=now() + interval '1 minute' WHERE id=$1",
        uuid.UUID(running["jobId"]),
    )
    r = await api.call("POST", f"/v1/jobs/{running['jobId']}/cancel", token="plain")
    assert r.status == 200 and r.body["status"] == "cancelling", r.body
    assert r.body["finishedAt"] is None and r.body["workerId"] == "w1"
    assert await cancels.wait() == [running["jobId"]]
    r = await api.call("POST", f"/v1/jobs/{running['jobId']}/cancel", token="plain")
    assert r.status == 200 and r.body["status"] == "cancelling"
    events = await api.call("GET", f"/v1/jobs/{running['jobId']}/events", token="plain")
    assert [e["event"] for e in events.body["items"]] == ["created", "started", "cancel_requested"]
    assert events.body["items"][2]["workerId"] == "w1"
    events = await api.call("GET", f"/v1/jobs/{queued['jobId']}/events", token="plain")
    assert [e["event"] for e in events.body["items"]] == ["created", "cancelled"]

    for status in ("succeeded", "failed", "expired"):
        done = await api.submit()
        await api.pool.execute(
            "UPDATE jobs SET status=$2, finished_at=now() WHERE id=$1",
            uuid.UUID(done["jobId"]),
            status,
        )
        r = await api.call("POST", f"/v1/jobs/{done['jobId']}/cancel")
        assert (r.status, r.body["jobStatus"]) == (409, status)
    assert len(cancels.payloads) == 1


async def test_cancel_races_safely_with_many_cancels(api: Api) -> None:
    j = await api.submit()
    replies = await asyncio.gather(
        *(api.call("POST", f"/v1/jobs/{j['jobId']}/cancel") for _ in range(10))
    )
    assert sorted(r.status for r in replies) == [200] + [409] * 9
    n = await api.pool.fetchval(
        "SELECT count(*) FROM job_events WHERE job_id=$1 AND event='cancelled'",
        uuid.UUID(j["jobId"]),
    )
    assert n == 1


async def test_get_job_timings_and_attempts(api: Api) -> None:
    j = await api.submit()
    job_id = uuid.UUID(j["jobId"])
    await api.pool.execute(
        "UPDATE jobs SET status='succeeded', attempt=1, worker_id='w1',"
        " started_at=created_at + interval '2 seconds',"
        " finished_at=created_at + interval '5 seconds', result='{\"ok\": true}' WHERE id=$1",
        job_id,
    )
    await api.pool.execute(
        "INSERT INTO job_attempts (job_id, attempt, worker_id, finished_at, outcome, duration_ms)"
        " VALUES ($1, 1, 'w1', now(), 'succeeded', 3000)",
        job_id,
    )
    r = await api.call("GET", f"/v1/jobs/{job_id}")
    assert (r.body["queueTimeMs"], r.body["processingTimeMs"]) == (2000, 3000)
    assert r.body["result"] == {"ok": True} and r.body["workerId"] == "w1"
    r = await api.call("GET", f"/v1/jobs/{job_id}/attempts")
    assert r.status == 200
    [a] = r.body["items"]
    assert r.body["nextCursor"] is None
    assert (a["attempt"], a["workerId"], a["outcome"], a["durationMs"]) == (
        1,
        "w1",
        "succeeded",
        3000,
    )


async def test_events_paginate(api: Api) -> None:
    j = await api.submit()
    await api.call("POST", f"/v1/jobs/{j['jobId']}/cancel")
    r = await api.call("GET", f"/v1/jobs/{j['jobId']}/events", params={"limit": "1"})
    assert [e["event"] for e in r.body["items"]] == ["created"]
    r = await api.call(
        "GET",
        f"/v1/jobs/{j['jobId']}/events",
        params={"limit": "1", "cursor": r.body["nextCursor"]},
    )
    assert [e["event"] for e in r.body["items"]] == ["cancelled"]
    assert r.body["nextCursor"] is None
    # a cursor of another job's events, or of another list, is refused naming `cursor`
    other = await api.submit()
    first = await api.call("GET", f"/v1/jobs/{j['jobId']}/events", params={"limit": "1"})
    for path in (f"/v1/jobs/{other['jobId']}/events", "/v1/jobs", "/v1/schedules"):
        r = await api.call("GET", path, params={"cursor": first.body["nextCursor"]})
        assert (r.status, r.body["field"]) == (422, "cursor"), (path, r.body)


async def test_definitions_listing(api: Api) -> None:
    r = await api.call("GET", "/v1/definitions", token="view")
    assert r.status == 200
    refs = {d["ref"]: d for d in r.body["items"]}
    assert {"echo@1", "echo@2", "failing@1", "strict@1"} <= set(refs)
    assert refs["echo@2"]["latest"] and not refs["echo@1"]["latest"]
    assert refs["strict@1"]["paramsSchema"]["required"] == ["name", "count"]
    assert refs["strict@1"]["defaultMaxAttempts"] == 5
    r = await api.call("GET", "/v1/definitions", params={"key": "echo"})
    assert {d["ref"] for d in r.body["items"]} == {"echo@1", "echo@2"}
    pages: list[str] = []
    cursor = None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        r = await api.call("GET", "/v1/definitions", params=params)
        pages += [d["ref"] for d in r.body["items"]]
        cursor = r.body["nextCursor"]
        if cursor is None:
            break
    assert pages == sorted(refs, key=lambda ref: (ref.split("@")[0], int(ref.split("@")[1])))


async def test_openapi_describes_every_registered_route(api: Api) -> None:
    r = await api.call("GET", "/openapi.json", token=None)
    doc = r.body
    assert doc["openapi"].startswith("3.1")
    registered = set()
    static = set()  # the dashboard's files (jobserver.ui): no API, not in the document
    for resource in api.app.router.resources():
        for route in resource:
            if route.method == "HEAD":
                continue
            if resource.canonical == "/ui" or resource.canonical.startswith("/ui/"):
                static.add(resource.canonical)
            else:
                registered.add((route.method.lower(), resource.canonical))
    assert len(registered) == len(api.app[ROUTES_KEY])
    assert static == {"/ui", "/ui/{path}"} and not static & set(doc["paths"])
    for method, path in registered:
        assert method in doc["paths"].get(path, {}), (method, path)
    post = doc["paths"]["/v1/jobs"]["post"]
    assert (
        "definitionKey"
        in post["requestBody"]["content"]["application/json"]["schema"]["properties"]
    )
    assert {"201", "401", "403", "409", "413", "415", "422"} <= set(post["responses"])
    listing = doc["paths"]["/v1/jobs"]["get"]
    assert {"status", "limit", "cursor", "sortBy"} <= {p["name"] for p in listing["parameters"]}
    get_one = doc["paths"]["/v1/jobs/{id}"]["get"]
    assert any(p["in"] == "path" and p["name"] == "id" for p in get_one["parameters"])
    assert doc["paths"]["/healthz"]["get"]["security"] == []


async def test_request_log_lines(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="jobserver.api.access")
    r = await api.call("GET", "/v1/jobs", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"
    r2 = await api.call("GET", "/v1/nothing", headers={"X-Request-Id": "bad id\twith\ttabs"})
    generated = r2.headers["X-Request-Id"]
    assert generated and generated != "bad id\twith\ttabs"
    lines = [
        json.loads(JsonFormatter().format(rec))
        for rec in caplog.records
        if rec.name == "jobserver.api.access"
    ]
    first = next(line for line in lines if line.get("requestId") == "abc-123")
    assert (first["method"], first["path"], first["status"]) == ("GET", "/v1/jobs", 200)
    assert isinstance(first["ms"], float | int)
    second = next(line for line in lines if line.get("requestId") == generated)
    assert second["status"] == 404
