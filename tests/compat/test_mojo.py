"""The Django-style jobs API (`mojo-jobs-api.md`) on its compatibility routes.

Every example request of the document, sent as written (only an Authorization header added,
example ids replaced by real ones), answers with the fields it shows, in its types and
vocabulary; `func` is a registered definition key (the test registers the document's
`myapp.jobs.send_email`). Then its behaviours end to end: a running job cancelled with a
worker, a failed job retried with a delay (a new job, later, `retried_from`), publish from a
template, runner ping/shutdown/broadcast against a real worker process, channel health. And
bad input: a 4xx in the document's error shape naming the field, nothing written; a
malformed id and another owner's job are the not-found answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from jobserver.config import Settings
from jobserver.db.definitions import definition_upsert
from jobserver.registry import Registry, definition, load_modules
from jobserver.worker.worker import Worker
from tests.api.conftest import FAST_WORKER, Api
from tests.faults.helpers import Procs
from tests.waiting import wait_for

DEFS = Registry()


EMAIL_SCHEMA = {
    "type": "object",
    "properties": {
        "recipients": {"type": "array", "items": {"type": "string"}},
        "subject": {"type": "string"},
    },
}


@definition(
    "myapp.jobs.send_email", 1, params_schema=EMAIL_SCHEMA, default_max_attempts=4, target=DEFS
)
async def send_email(params: Any, ctx: Any) -> dict[str, Any]:
    """The document's `func`, registered under its import path as the definition key."""
    return {"sent": len(params.get("recipients", []))}


@definition("mojo.wait", 1, default_max_attempts=1, target=DEFS)
async def wait_cancelled(params: Any, ctx: Any) -> None:
    """Report progress as metadata, then wait until cancelled (cooperative cancel)."""
    await ctx.set_metadata({"emails_sent": 42})
    await asyncio.wait_for(ctx.cancelled.wait(), 60)


JSON = {"Content-Type": "application/json"}
RUNNER = "worker-01-1234"  # the document's runner id, given to a real worker process


@pytest.fixture
async def mojo(compat_api: Api) -> Api:
    for d in DEFS.all():
        await definition_upsert(compat_api.pool, d.metadata())
    return compat_api


@pytest.fixture
async def worker(mojo: Api, settings: Settings) -> AsyncIterator[Worker]:
    registry = Registry()
    for d in [*load_modules().all(), *DEFS.all()]:
        registry.add(d)
    w = Worker(
        replace(settings, **FAST_WORKER, worker_id="mojo-worker", cancel_check_interval_ms=100),
        registry,
        pool=mojo.pool,
    )
    await w.start()
    yield w
    await w.stop(grace=0)


def _ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _error(reply: Any, status: int, code: str, field: str | None = None) -> None:
    assert reply.status == status, (reply.status, reply.body)
    body = reply.body
    assert body["status"] is False and body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"]
    if field is not None:
        assert body["field"] == field and field in body["error"], body


async def _job(api: Api, job_id: str, token: str = "manage") -> dict[str, Any]:
    r = await api.call("GET", f"/api/jobs/job/{job_id}", token=token)
    assert r.status == 200 and r.body["status"] is True, r.body
    return dict(r.body["data"])


PUBLISH_EXAMPLE = {
    "func": "myapp.jobs.send_email",
    "payload": {
        "recipients": ["user@example.com"],
        "subject": "Welcome",
        "template": "welcome_email",
    },
    "channel": "emails",
    "delay": 60,
    "max_retries": 3,
}
STATUS_FIELDS = {
    "id": str,
    "status": str,
    "channel": str,
    "func": str,
    "created": str,
    "started_at": (str, type(None)),
    "finished_at": (str, type(None)),
    "attempt": int,
    "max_retries": int,
    "last_error": str,
    "metadata": dict,
    "runner_id": (str, type(None)),
    "cancel_requested": bool,
    "duration_ms": int,
    "is_terminal": bool,
    "is_retriable": bool,
    "recent_events": list,
    "queue_position": (int, type(None)),
}


async def test_every_documented_job_request(mojo: Api) -> None:
    before = dt.datetime.now(dt.UTC)
    r = await mojo.call("POST", "/api/jobs/publish", json=PUBLISH_EXAMPLE)
    assert r.status == 200, r.body
    assert (r.body["status"], r.body["message"]) == (True, "Job published successfully")
    job_id = r.body["job_id"]
    uuid.UUID(job_id)
    job = await _job(mojo, job_id)
    assert (job["status"], job["channel"], job["func"], job["max_retries"]) == (
        "pending",
        "emails",
        "myapp.jobs.send_email",
        3,
    )
    assert job["payload"] == PUBLISH_EXAMPLE["payload"]
    assert 55 < (_ts(job["run_at"]) - before).total_seconds() < 70  # delay: 60
    assert job["expires_at"] is not None  # expires_in defaults to 900
    v1 = await mojo.call("GET", f"/v1/jobs/{job_id}")
    assert (v1.body["maxAttempts"], v1.body["queue"]) == (4, "emails")

    # GET /api/jobs/list?channel=emails&status=pending&limit=50
    r = await mojo.call("GET", "/api/jobs/list?channel=emails&status=pending&limit=50")
    assert r.status == 200 and r.body["status"] is True, r.body
    assert [j["id"] for j in r.body["data"]] == [job_id] and r.body["count"] == 1
    r = await mojo.call("GET", "/api/jobs/list?channel=emails&status=completed")
    assert (r.status, r.body["data"]) == (200, [])
    # GET /api/jobs/job (the standard list)
    r = await mojo.call("GET", "/api/jobs/job")
    assert r.status == 200, r.body
    assert (r.body["count"], r.body["start"], r.body["size"]) == (1, 0, 10)
    assert r.body["data"][0]["id"] == job_id

    # {"get_status": true}
    r = await mojo.call("POST", f"/api/jobs/job/{job_id}", json={"get_status": True})
    assert r.status == 200 and r.body["status"] is True, r.body
    data = r.body["data"]
    for name, kind in STATUS_FIELDS.items():
        assert isinstance(data[name], kind), (name, data[name])
    assert data["status"] == "pending" and data["queue_position"] == 0
    assert [e["event"] for e in data["recent_events"]] == ["created"]
    assert set(data["recent_events"][0]) >= {"event", "at", "runner_id", "details"}

    # {"publish_job": {...}}: a new job with this one as its template
    example = {
        "publish_job": {
            "payload": {"recipients": ["new@example.com"], "subject": "Updated subject"},
            "delay": 300,
            "channel": "high_priority",
        }
    }
    r = await mojo.call("POST", f"/api/jobs/job/{job_id}", json=example)
    assert r.status == 200, r.body
    assert (r.body["status"], r.body["message"], r.body["template_job_id"]) == (
        True,
        "Job published successfully",
        job_id,
    )
    copy = await _job(mojo, r.body["job_id"])
    assert (copy["channel"], copy["func"], copy["cloned_from"]) == (
        "high_priority",
        "myapp.jobs.send_email",
        job_id,
    )
    assert copy["payload"] == {  # deep-merged over the template's payload
        "recipients": ["new@example.com"],
        "subject": "Updated subject",
        "template": "welcome_email",
    }
    assert 290 < (_ts(copy["run_at"]) - before).total_seconds() < 320

    # {"cancel_request": true}
    r = await mojo.call("POST", f"/api/jobs/job/{job_id}", json={"cancel_request": True})
    assert r.status == 200, r.body
    assert r.body == {
        "status": True,
        "message": f"Job {job_id} cancellation requested",
        "job_id": job_id,
    }
    assert (await _job(mojo, job_id))["status"] == "canceled"
    r = await mojo.call("GET", "/api/jobs/list?status=canceled")
    assert [j["id"] for j in r.body["data"]] == [job_id]

    # {"retry_request": true}: immediate, a new job
    r = await mojo.call("POST", f"/api/jobs/job/{job_id}", json={"retry_request": True})
    assert r.status == 200, r.body
    assert (r.body["status"], r.body["message"], r.body["original_job_id"]) == (
        True,
        "Job retry scheduled",
        job_id,
    )
    assert r.body["delayed"] is False and r.body["new_job_id"] != job_id
    retried = await _job(mojo, r.body["new_job_id"])
    assert (retried["status"], retried["retried_from"]) == ("pending", job_id)
    # a job is retried once: the second time is a 409 in the document's shape
    r = await mojo.call("POST", f"/api/jobs/job/{job_id}", json={"retry_request": True})
    _error(r, 409, "INVALID_STATE")

    # {"retry_request": {"retry": true, "delay": 60}} on the cancelled copy
    await mojo.call("POST", f"/api/jobs/job/{copy['id']}", json={"cancel_request": True})
    asked = dt.datetime.now(dt.UTC)
    r = await mojo.call(
        "POST",
        f"/api/jobs/job/{copy['id']}",
        json={"retry_request": {"retry": True, "delay": 60}},
    )
    assert r.status == 200 and r.body["delayed"] is True, r.body
    later = await _job(mojo, r.body["new_job_id"])
    assert later["retried_from"] == copy["id"] and later["status"] == "pending"
    assert 55 < (_ts(later["run_at"]) - asked).total_seconds() < 70

    # GET /api/jobs/job/<job_id>/events
    r = await mojo.call("GET", f"/api/jobs/job/{job_id}/events")
    assert r.status == 200, r.body
    events = [e["event"] for e in r.body["data"]]
    assert events[0] == "created" and "canceled" in events, events

    # DELETE /api/jobs/job/<job_id>: a finished job
    r = await mojo.call("DELETE", f"/api/jobs/job/{job_id}")
    assert r.status == 200 and r.body["job_id"] == job_id, r.body
    _error(await mojo.call("GET", f"/api/jobs/job/{job_id}"), 404, "NOT_FOUND")
    # a live one is a 409
    _error(await mojo.call("DELETE", f"/api/jobs/job/{later['id']}"), 409, "INVALID_STATE")


async def test_health_stats_and_channel_health(mojo: Api) -> None:
    r = await mojo.call("POST", "/api/jobs/publish", json={**PUBLISH_EXAMPLE, "delay": 0})
    assert r.status == 200, r.body
    r = await mojo.call("GET", "/api/jobs/health/emails", token="view")
    assert r.status == 200 and r.body["status"] is True, r.body
    h = r.body["data"]
    assert h["channel"] == "emails"
    assert h["status"] == "unhealthy"  # no runner serves it (the no_runners alert)
    for name in ("total", "unclaimed", "pending", "scheduled", "stuck"):
        assert isinstance(h["messages"][name], int), name
    assert h["messages"]["total"] == 1 and h["messages"]["unclaimed"] == 1
    assert set(h["runners"]) == {"active", "total"}
    assert isinstance(h["stuck_jobs"], list) and isinstance(h["alerts"], list)
    assert {"jobs_per_minute", "success_rate", "avg_duration_ms"} <= set(h["metrics"])
    assert any(a["rule"] == "no_runners" for a in h["alerts"]), h["alerts"]
    _error(await mojo.call("GET", "/api/jobs/health/nosuch", token="view"), 404, "NOT_FOUND")

    r = await mojo.call("GET", "/api/jobs/health", token="view")
    assert r.status == 200 and r.body["status"] is True, r.body
    assert {c["channel"] for c in r.body["data"]["channels"]} == {"emails"}
    assert r.body["data"]["database"]["ok"] is True
    r = await mojo.call("GET", "/api/jobs/stats", token="view")
    assert r.status == 200 and r.body["data"]["pending"] == 1, r.body
    # view_jobs or manage_jobs: a plain token is refused, no token is a 401
    _error(await mojo.call("GET", "/api/jobs/health/emails", token="plain"), 403, "FORBIDDEN")
    _error(await mojo.call("GET", "/api/jobs/stats", token=None), 401, "UNAUTHORIZED")


async def test_cancel_a_running_job_and_retry_a_failed_one_with_a_delay(
    mojo: Api, worker: Worker
) -> None:
    r = await mojo.call(
        "POST", "/api/jobs/publish", token="plain", json={"func": "mojo.wait", "payload": {}}
    )
    assert r.status == 200, r.body
    job_id = r.body["job_id"]

    async def running() -> dict[str, Any] | None:
        j = await _job(mojo, job_id, "plain")
        return j if j["status"] == "running" and j["metadata"] else None

    job = await wait_for(running, within=20)
    assert (job["runner_id"], job["metadata"], job["cancel_requested"]) == (
        "mojo-worker",
        {"emails_sent": 42},
        False,
    )
    r = await mojo.call("POST", f"/api/jobs/job/{job_id}", token="plain", json={"get_status": True})
    events = [e["event"] for e in r.body["data"]["recent_events"]]
    assert "running" in events and r.body["data"]["runner_id"] == "mojo-worker", events
    r = await mojo.call(
        "POST", f"/api/jobs/job/{job_id}", token="plain", json={"cancel_request": True}
    )
    assert r.status == 200 and r.body["message"] == f"Job {job_id} cancellation requested"

    async def canceled() -> dict[str, Any] | None:
        j = await _job(mojo, job_id, "plain")
        return j if j["status"] == "canceled" else None

    done = await wait_for(canceled, within=20)
    assert done["cancel_requested"] is True and done["is_terminal"] is True

    # a failed job (no retries left), retried with a delay: a new job, later
    r = await mojo.call(
        "POST",
        "/api/jobs/publish",
        token="plain",
        json={"func": "failing", "payload": {"reason": "smtp down"}, "max_retries": 0},
    )
    failing_id = r.body["job_id"]

    async def failed() -> dict[str, Any] | None:
        j = await _job(mojo, failing_id, "plain")
        return j if j["status"] == "failed" else None

    gone = await wait_for(failed, within=20)
    assert "smtp down" in gone["last_error"] and gone["is_retriable"] is True
    asked = dt.datetime.now(dt.UTC)
    r = await mojo.call(
        "POST",
        f"/api/jobs/job/{failing_id}",
        token="plain",
        json={"retry_request": {"retry": True, "delay": 60}},
    )
    assert r.status == 200, r.body
    assert (r.body["original_job_id"], r.body["delayed"]) == (failing_id, True)
    new = await _job(mojo, r.body["new_job_id"], "plain")
    assert (new["status"], new["retried_from"], new["attempt"]) == ("pending", failing_id, 0)
    assert 55 < (_ts(new["run_at"]) - asked).total_seconds() < 70
    assert (await _job(mojo, failing_id, "plain"))["retried_as"] == new["id"]


async def test_runner_ping_shutdown_and_broadcast_with_a_worker_process(
    mojo: Api, database_url: str
) -> None:
    procs = Procs(database_url)
    try:
        proc = procs.worker(RUNNER, "--queues", "emails")

        async def responsive() -> bool:
            r = await mojo.call(
                "POST", "/api/jobs/runners/ping", json={"runner_id": RUNNER, "timeout": 0.5}
            )
            assert proc.alive(), proc.output()[-2000:]
            return r.status == 200 and bool(r.body["data"]["responsive"])

        await wait_for(responsive, within=30, step=0.1)
        # the document's ping, as written
        r = await mojo.call(
            "POST",
            "/api/jobs/runners/ping",
            headers=JSON,
            json={"runner_id": "worker-01-1234", "timeout": 2.0},
        )
        assert r.status == 200 and r.body["status"] is True, r.body
        ping = r.body["data"]
        assert (ping["runner_id"], ping["responsive"], ping["timeout"]) == (RUNNER, True, 2.0)
        assert 0 <= ping["response_time_ms"] <= 2000

        r = await mojo.call("GET", "/api/jobs/runners?channel=emails", token="view")
        assert r.status == 200, r.body
        [runner] = r.body["data"]
        assert (runner["runner_id"], runner["channels"], runner["alive"]) == (
            RUNNER,
            ["emails"],
            True,
        )
        assert runner["pid"] == proc.pid
        r = await mojo.call("GET", "/api/jobs/runners?channel=other", token="view")
        assert r.body["data"] == []

        r = await mojo.call(
            "POST",
            "/api/jobs/runners/broadcast",
            json={"command": "status", "data": {}, "timeout": 2.0},
        )
        assert r.status == 200, r.body
        b = r.body["data"]
        assert (b["command"], b["sent_to"], b["answered"], b["not_answered"]) == (
            "status",
            1,
            1,
            [],
        )
        assert b["responses"][0]["runner_id"] == RUNNER

        # runner commands are manage_jobs
        r = await mojo.call(
            "POST", "/api/jobs/runners/ping", token="view", json={"runner_id": RUNNER}
        )
        _error(r, 403, "FORBIDDEN")

        r = await mojo.call(
            "POST",
            "/api/jobs/runners/shutdown",
            json={"runner_id": "worker-01-1234", "graceful": True},
        )
        assert r.status == 200 and r.body["status"] is True, r.body
        assert r.body["data"]["acknowledged"] is True and RUNNER in r.body["message"]
        assert await asyncio.to_thread(proc.wait, 30) == 0

        async def stopped() -> bool:
            r = await mojo.call("GET", "/api/jobs/runners", token="view")
            return r.body["data"][0]["status"] == "stopped"

        await wait_for(stopped, within=10)
        r = await mojo.call("POST", "/api/jobs/runners/ping", json={"runner_id": RUNNER})
        _error(r, 409, "INVALID_STATE")
        r = await mojo.call("POST", "/api/jobs/runners/ping", json={"runner_id": "nope"})
        _error(r, 404, "NOT_FOUND")
    finally:
        procs.close()


async def test_bad_input_names_the_field_and_writes_nothing(mojo: Api, pool: asyncpg.Pool) -> None:
    before = await mojo.job_count()
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"payload": {}}, 422, "func"),
        ({"func": "myapp.jobs.nosuch", "payload": {}}, 422, "func"),
        ({"func": "bad key!", "payload": {}}, 422, "func"),
        ({"func": "echo", "payload": []}, 422, "payload"),
        ({"func": "failing", "payload": {"reason": 5}}, 422, "payload.reason"),
        ({**PUBLISH_EXAMPLE, "max_retries": 20}, 422, "max_retries"),
        ({**PUBLISH_EXAMPLE, "delay": -1}, 422, "delay"),
        ({**PUBLISH_EXAMPLE, "channel": "no spaces"}, 422, "channel"),
        ({**PUBLISH_EXAMPLE, "colour": "red"}, 422, "colour"),
    ]
    for body, status, field in cases:
        r = await mojo.call("POST", "/api/jobs/publish", json=body)
        _error(r, status, "VALIDATION_ERROR" if field != "func" else r.body["code"], field)
    r = await mojo.call("POST", "/api/jobs/publish", data="{", headers=JSON)
    _error(r, 400, "INVALID_JSON")
    r = await mojo.call("GET", "/api/jobs/list?status=done")
    _error(r, 422, "VALIDATION_ERROR", "status[0]")
    r = await mojo.call("GET", "/api/jobs/job?start=5&size=10")
    _error(r, 422, "VALIDATION_ERROR", "start")
    assert await mojo.job_count() == before

    job_id = (await mojo.call("POST", "/api/jobs/publish", json=PUBLISH_EXAMPLE)).body["job_id"]
    for body, field in [
        ({}, "cancel_request"),
        ({"cancel_request": True, "get_status": True}, "get_status"),
        ({"cancel_request": False}, "cancel_request"),
        ({"retry_request": {"delay": "soon"}}, "retry_request"),
        ({"publish_job": {"payload": {"subject": 5}}}, "publish_job.payload.subject"),
        ({"publish_job": {"channel": "a b"}}, "publish_job.channel"),
        ({"update": True}, "update"),
    ]:
        r = await mojo.call("POST", f"/api/jobs/job/{job_id}", json=body)
        _error(r, 422, "VALIDATION_ERROR", field)
    assert await mojo.job_count() == before + 1
    assert (await _job(mojo, job_id))["status"] == "pending"


async def test_a_malformed_id_and_another_owners_job_are_not_found(mojo: Api) -> None:
    r = await mojo.call("POST", "/api/jobs/publish", token="plain", json=PUBLISH_EXAMPLE)
    job_id = r.body["job_id"]
    for bad in ("a1b2c3d4e5f6789012345678901234567", "batch", "x" * 300, job_id + "0"):
        for method, suffix, body in [
            ("GET", "", None),
            ("DELETE", "", None),
            ("POST", "", {"get_status": True}),
            ("GET", "/events", None),
        ]:
            r = await mojo.call(method, f"/api/jobs/job/{bad}{suffix}", token="plain", json=body)
            _error(r, 404, "NOT_FOUND")
            assert r.body["error"] == "Job not found"
    for method, suffix, body in [
        ("GET", "", None),
        ("DELETE", "", None),
        ("POST", "", {"cancel_request": True}),
        ("POST", "", {"publish_job": {}}),
        ("GET", "/events", None),
    ]:
        r = await mojo.call(method, f"/api/jobs/job/{job_id}{suffix}", token="other", json=body)
        _error(r, 404, "NOT_FOUND")
    r = await mojo.call("GET", "/api/jobs/list", token="other")
    assert r.body["data"] == []
    # view_jobs sees every owner's jobs
    r = await mojo.call("GET", "/api/jobs/list", token="view")
    assert [j["id"] for j in r.body["data"]] == [job_id]
    assert (await _job(mojo, job_id, "plain"))["status"] == "pending"
