"""The webhook job system's compatibility routes (`janaah-webhook-jobs.md`): every example
request of the document sent as written (a loopback receiver for webhook.site, an
Authorization header), its answers' fields and vocabulary; its behaviours end to end with a
real worker and scheduler (retries as runs, a recurrent job stopped by 3 failures in a row,
cancel); bad input in the document's error shape, nothing written."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from jobserver.config import Settings
from jobserver.registry import load_modules
from jobserver.scheduler.cron import CronService
from jobserver.scheduler.expirer import Expirer
from jobserver.scheduler.failures import FailureWatch
from jobserver.worker.worker import Worker
from tests.api import conftest as api_fixtures
from tests.api.conftest import FAST_WORKER, Api
from tests.waiting import wait_for
from tests.worker import http_receiver
from tests.worker.http_receiver import Answer, Receiver

# fixtures of tests/api and tests/worker: a loopback webhook receiver, the cron service
allow_loopback = http_receiver.allow_loopback
receiver = http_receiver.receiver
services = api_fixtures.services

UTC = dt.UTC
DOC_URL = "https://webhook.site/endpoint"

# The document's request bodies, as written.
BASIC_JOB: dict[str, Any] = {
    "event": "user_signup",
    "type": "once",
    "request": {
        "url": DOC_URL,
        "method": "POST",
        "headers": {"Authorization": "Bearer token"},
        "payload": {"message": "Hello {{user.name}}!", "timestamp": "{{$timestamp}}"},
        "use_sources": True,
        "sources": {
            "user": {
                "collection": "users",
                "match": {"name": "John"},
                "fields": ["name", "email"],
                "single": True,
            }
        },
    },
}
SCHEDULED_JOB: dict[str, Any] = {
    "event": "reminder",
    "type": "once",
    "scheduled_at": "2025-07-22T15:00:00Z",
    "expires_at": "2025-07-22T16:00:00Z",
    "request": {
        "url": DOC_URL,
        "method": "POST",
        "payload": {"message": "Scheduled reminder"},
        "use_sources": False,
    },
}
RECURRENT_JOB: dict[str, Any] = {
    "event": "daily_report",
    "type": "recurrent",
    "every": 86400,
    "expires_at": "2025-08-01T00:00:00Z",
    "request": {
        "url": DOC_URL,
        "method": "POST",
        "payload": {"report_date": "{{$today}}", "timestamp": "{{$timestamp}}"},
        "use_sources": False,
    },
}
SIMULATE: dict[str, Any] = {
    "request": {
        "url": DOC_URL,
        "method": "POST",
        "payload": {"user": "{{user}}", "timestamp": "{{$timestamp}}"},
        "use_sources": True,
        "sources": {
            "user": {
                "collection": "users",
                "match": {"name": "John"},
                "fields": ["name", "email"],
                "single": True,
            }
        },
    }
}
STATUSES = {"pending", "running", "finished"}
REASONS = {"succeeded", "failed", "canceled", "expired", None}
RUN_FIELDS = {"run_id", "status", "started_at", "completed_at", "payload"}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, worker_id="janaah-worker", min_every=1)


@pytest.fixture
async def users(pool: asyncpg.Pool, database_url: str) -> AsyncIterator[None]:
    """The document's `users` collection, as a table of the sources database."""
    from jobserver.sources import shared

    await pool.execute(
        "CREATE TABLE users (name text, email text);"
        " INSERT INTO users VALUES ('John', 'john@example.com'), ('Eve', 'eve@example.com')"
    )
    shared.configure(database_url)
    yield
    await shared.close_all()
    shared.configure(None)


@pytest.fixture
async def worker(compat_api: Api, settings: Settings) -> AsyncIterator[Worker]:
    fast = {
        **FAST_WORKER,
        "backoff_base_seconds": 0.1,
        "backoff_max_seconds": 0.2,
        "backoff_jitter_percent": 0.0,
    }
    w = Worker(replace(settings, **fast), load_modules(), pool=compat_api.pool)
    await w.start()
    yield w
    await w.stop(grace=0)


def to(body: dict[str, Any], url: str) -> dict[str, Any]:
    """The document's body with its webhook.site URL replaced by a receiver's."""
    return {**body, "request": {**body["request"], "url": url}}


def is_time(value: Any) -> bool:
    return isinstance(value, str) and dt.datetime.fromisoformat(value) is not None


def check_job(job: dict[str, Any]) -> None:
    assert job["status"] in STATUSES and job["finish_reason"] in REASONS, job
    assert (job["finish_reason"] is None) == (job["status"] != "finished"), job
    assert is_time(job["created_at"]) and isinstance(job["runs"], list)
    for run in job["runs"]:
        assert run.keys() >= RUN_FIELDS and isinstance(run["run_id"], str), run
        assert run["status"] in {"running", "completed", "failed", "canceled", "interrupted"}


async def finished(api: Api, job_id: str, within: float = 30) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        r = await api.call("GET", f"/jobs/{job_id}")
        assert r.status == 200, r.body
        return r.body if r.body["status"] == "finished" else None

    body: dict[str, Any] = await wait_for(done, within=within)
    return body


# -- the document's examples ------------------------------------------------------------------


async def test_every_example_request_of_the_document(
    compat_api: Api, users: None, receiver: Receiver, worker: Worker
) -> None:
    api = compat_api
    url = receiver.tell("/endpoint", Answer(200, "ok"))
    # Create Job: the basic job runs at once, its payload rendered from the users table
    r = await api.call("POST", "/jobs", json=to(BASIC_JOB, url))
    assert r.status == 201, r.body
    assert r.body["message"] == "Job created and will run immediately"
    basic = r.body["job_id"]
    assert uuid.UUID(basic)
    # the scheduled job and the recurrent one, dates as written (both long past)
    r = await api.call("POST", "/jobs", json=to(SCHEDULED_JOB, url))
    assert r.status == 201 and isinstance(r.body["message"], str), r.body
    scheduled = r.body["job_id"]
    r = await api.call("POST", "/jobs", json=to(RECURRENT_JOB, url))
    assert r.status == 201 and isinstance(r.body["message"], str), r.body
    recurrent = r.body["job_id"]
    assert len({basic, scheduled, recurrent}) == 3

    # Get Job
    job = await finished(api, basic)
    assert set(job) >= {
        "id",
        "job_request",
        "status",
        "finish_reason",
        "created_at",
        "is_scheduled",
        "is_recurrent",
        "runs",
    }
    assert job["id"] == basic and job["finish_reason"] == "succeeded"
    assert job["is_scheduled"] is False and job["is_recurrent"] is False
    assert job["job_request"]["event"] == "user_signup" and job["job_request"]["type"] == "once"
    assert job["job_request"]["request"]["url"] == url
    assert job["job_request"]["request"]["method"] == "POST"
    assert job["job_request"]["request"]["payload"] == BASIC_JOB["request"]["payload"]
    check_job(job)
    [run] = job["runs"]
    assert run["status"] == "completed" and is_time(run["started_at"])
    assert is_time(run["completed_at"])
    assert run["payload"]["message"] == "Hello John!"
    assert run["payload"]["timestamp"].endswith("Z")
    [sent] = [s for s in receiver.at("/endpoint") if b"message" in s.body]
    assert json.loads(sent.body) == run["payload"]
    assert sent.headers["Authorization"] == "Bearer token"

    # the scheduled job expired (its window is past): finished, expired, no run
    await Expirer(api.pool).run_once()  # the scheduler's expirer
    job = await finished(api, scheduled)
    assert job["finish_reason"] == "expired" and job["runs"] == [], job
    assert job["job_request"]["expires_at"].startswith("2025-07-22T16:00:00")
    # the recurrent job: a schedule past its expiry (read with the id POST /jobs gave)
    r = await api.call("GET", f"/jobs/{recurrent}")
    assert r.status == 200, r.body
    check_job(r.body)
    assert r.body["is_recurrent"] is True
    assert r.body["job_request"]["type"] == "recurrent"
    assert r.body["job_request"]["every"] == 86400
    assert r.body["job_request"]["event"] == "daily_report"

    # List Jobs: the document's two queries
    r = await api.call("GET", "/jobs?status=finished&sort_by=created_at&sort_order=desc")
    assert r.status == 200, r.body
    assert set(r.body) >= {"jobs", "total", "page", "limit", "total_pages"}
    assert (r.body["page"], r.body["limit"]) == (1, 10)
    assert r.body["total"] >= 2 and r.body["total_pages"] == 1
    ids = [j["id"] for j in r.body["jobs"]]
    assert ids.index(scheduled) < ids.index(basic)  # newest first
    for j in r.body["jobs"]:
        check_job(j)
        assert j["status"] == "finished"
    r = await api.call("GET", "/jobs?event=user_signup&page=2&limit=20")
    assert r.status == 200, r.body
    assert (r.body["page"], r.body["limit"], r.body["jobs"]) == (2, 20, [])
    assert r.body["total"] == 1 and r.body["total_pages"] == 1
    r = await api.call("GET", "/jobs?event=user_signup")
    assert [j["id"] for j in r.body["jobs"]] == [basic]
    assert r.body["jobs"][0]["runs"][0]["payload"]["message"] == "Hello John!"
    # the Examples section: running jobs
    r = await api.call("GET", "/jobs?status=running")
    assert r.status == 200 and all(j["status"] == "running" for j in r.body["jobs"]), r.body

    # Simulate Request: the rendered payload itself
    r = await api.call("POST", "/simulate", json=SIMULATE)
    assert r.status == 200, r.body
    assert r.body["user"] == {"name": "John", "email": "john@example.com"}
    assert r.body["timestamp"].endswith("Z") and set(r.body) == {"user", "timestamp"}

    # Cancel Job: a job scheduled an hour from now
    later = (dt.datetime.now(UTC) + dt.timedelta(hours=1)).isoformat()
    body = {k: v for k, v in to(SCHEDULED_JOB, url).items() if k != "expires_at"}
    r = await api.call("POST", "/jobs", json={**body, "scheduled_at": later})
    assert r.status == 201 and r.body["message"].startswith("Job scheduled for"), r.body
    pending = r.body["job_id"]
    r = await api.call("GET", f"/jobs/{pending}")
    assert (r.body["status"], r.body["finish_reason"], r.body["is_scheduled"]) == (
        "pending",
        None,
        True,
    )
    r = await api.call("POST", f"/jobs/cancel/{pending}")
    assert r.status == 200 and r.body == {"message": f"Job {pending} has been canceled"}
    r = await api.call("GET", f"/jobs/{pending}")
    assert (r.body["status"], r.body["finish_reason"]) == ("finished", "canceled")


async def test_the_documented_error_names_the_fields(compat_api: Api) -> None:
    api = compat_api
    before = await api.job_count()
    body = {
        **SCHEDULED_JOB,
        "scheduled_at": "2030-07-22T02:00:00Z",
        "expires_at": "2030-07-22T01:00:00Z",
    }
    r = await api.call("POST", "/jobs", json=body)
    assert r.status == 422, r.body
    assert r.body["error"].startswith("expires_at: expires_at (2030-07-22T01:00:00+00:00)")
    assert "must be after scheduled_at (2030-07-22T02:00:00+00:00)" in r.body["error"]
    assert r.body["field"] == "expires_at"
    recurrent = {**RECURRENT_JOB, "scheduled_at": "2030-07-22T02:00:00Z",
                 "expires_at": "2030-07-22T01:00:00Z"}  # fmt: skip
    r = await api.call("POST", "/jobs", json=recurrent)
    assert r.status == 422 and r.body["field"] == "expires_at", r.body
    assert "scheduled_at" in r.body["error"]
    cases: list[tuple[Any, str]] = [
        ({"type": "once"}, "request"),
        ({**BASIC_JOB, "type": "daily"}, "type"),
        ({**BASIC_JOB, "request": {"method": "POST"}}, "request.url"),
        (to(BASIC_JOB, "ftp://x"), "request.url"),
        ({**BASIC_JOB, "request": {**BASIC_JOB["request"], "use_sources": "yes"}},
         "request.use_sources"),
        ({**BASIC_JOB, "request": {**BASIC_JOB["request"], "payload": "{{$nope}}"}},
         "request.payload"),
        ({**BASIC_JOB, "every": 60}, "every"),
        ({**RECURRENT_JOB, "every": None}, "every"),
        ({k: v for k, v in RECURRENT_JOB.items() if k != "every"}, "every"),
        ({**RECURRENT_JOB, "every": 10**7}, "every"),  # past MAX_EVERY
        ({**BASIC_JOB, "scheduled_at": "tomorrow"}, "scheduled_at"),
        ({**BASIC_JOB, "retries": 3}, "retries"),
    ]  # fmt: skip
    for bad, field in cases:
        r = await api.call("POST", "/jobs", json=bad)
        assert 400 <= r.status < 500, (bad, r.body)
        assert isinstance(r.body["error"], str) and field in r.body["error"], (bad, r.body)
    r = await api.call("POST", "/simulate", json={"request": {"url": 5}})
    assert r.status == 422 and "request.url" in r.body["error"], r.body
    for query, field in [("status=failed", "status"), ("limit=101", "limit"),
                         ("page=0", "page"), ("sort_by=priority", "sort_by"),
                         ("sortBy=createdAt", "sortBy")]:  # fmt: skip
        r = await api.call("GET", f"/jobs?{query}")
        assert r.status == 422 and field in r.body["error"], (query, r.body)
    r = await api.call("POST", "/jobs", data=b"{", headers={"Content-Type": "application/json"})
    assert r.status == 400 and "error" in r.body, r.body
    assert await api.job_count() == before
    assert await api.pool.fetchval("SELECT count(*) FROM schedules") == 0


async def test_not_found_and_access(compat_api: Api) -> None:
    api = compat_api
    for bad in ("abc123", str(uuid.uuid4()), "x" * 300):
        for method, path in (("GET", f"/jobs/{bad}"), ("POST", f"/jobs/cancel/{bad}")):
            r = await api.call(method, path)
            assert (r.status, r.body["error"]) == (404, "Job not found"), (path, r.body)
    later = (dt.datetime.now(UTC) + dt.timedelta(hours=1)).isoformat()
    body = {k: v for k, v in SCHEDULED_JOB.items() if k != "expires_at"}
    body["scheduled_at"] = later
    # a plain token may not call out: the outbound capability, in the document's words
    r = await api.call("POST", "/jobs", token="plain", json=body)
    assert r.status == 403 and r.body["capability"] == "outbound", r.body
    assert "outbound" in r.body["error"]
    r = await api.call("POST", "/jobs", json=body)
    assert r.status == 201, r.body
    job_id = r.body["job_id"]
    r = await api.call("POST", "/jobs", json={**RECURRENT_JOB, "expires_at": "2031-01-01T00:00:00Z",
                                              "scheduled_at": later})  # fmt: skip
    assert r.status == 201 and r.body["message"].startswith("Recurrent job created"), r.body
    recurrent = r.body["job_id"]
    r = await api.call("GET", f"/jobs/{recurrent}")
    assert (r.body["status"], r.body["is_scheduled"], r.body["runs"]) == ("pending", True, [])
    for token in ("other", "plain", "view"):  # no token of theirs sees the admin's jobs
        if token == "view":
            r = await api.call("GET", f"/jobs/{job_id}", token=token)
            assert r.status == 200  # view_jobs reads every job ...
        else:
            r = await api.call("GET", f"/jobs/{job_id}", token=token)
            assert (r.status, r.body["error"]) == (404, "Job not found")
            r = await api.call("POST", f"/jobs/cancel/{job_id}", token=token)
            assert r.status == 404
            r = await api.call("GET", "/jobs", token=token)
            assert r.status == 200 and r.body["jobs"] == [] and r.body["total"] == 0
        r = await api.call("GET", f"/jobs/{recurrent}", token=token)
        assert r.status == 404  # ... but a recurrent job (a schedule) needs manage_jobs
        r = await api.call("POST", f"/jobs/cancel/{recurrent}", token=token)
        assert r.status == 404
    r = await api.call("POST", "/jobs", token="view", json=RECURRENT_JOB)
    assert r.status == 403 and "error" in r.body
    r = await api.call("GET", "/jobs", token=None)
    assert r.status == 401 and "error" in r.body
    # cancelling the recurrent job: finished, canceled; a second cancel is a 409
    r = await api.call("POST", f"/jobs/cancel/{recurrent}")
    assert r.body == {"message": f"Job {recurrent} has been canceled"}
    r = await api.call("GET", f"/jobs/{recurrent}")
    assert (r.body["status"], r.body["finish_reason"]) == ("finished", "canceled")
    r = await api.call("POST", f"/jobs/cancel/{recurrent}")
    assert r.status == 409 and "error" in r.body


# -- behaviours ---------------------------------------------------------------------------------


async def test_a_once_job_is_retried_max_retries_times_each_retry_a_run(
    compat_api: Api, receiver: Receiver, worker: Worker
) -> None:
    api = compat_api
    flaky = receiver.tell("/flaky", Answer(500, "down"), Answer(500, "down"), Answer(200, "ok"))
    down = receiver.tell("/down", Answer(500, "down"))
    made = {}
    for name, url in (("flaky", flaky), ("down", down)):
        request = {"url": url, "method": "POST", "payload": {"id": "{{$uuid}}"}}
        body = {"event": name, "type": "once", "request": request}
        r = await api.call("POST", "/jobs", json=body)
        assert r.status == 201, r.body
        made[name] = r.body["job_id"]
    job = await finished(api, made["flaky"])
    check_job(job)
    assert job["finish_reason"] == "succeeded"
    assert [r["status"] for r in job["runs"]] == ["failed", "failed", "completed"]
    assert [r["run_id"] for r in job["runs"]] == [f"{made['flaky']}.{n}" for n in (1, 2, 3)]
    sent = [json.loads(s.body) for s in receiver.at("/flaky")]
    assert [r["payload"] for r in job["runs"]] == sent  # each run rendered its own payload
    assert len({p["id"] for p in sent}) == 3
    assert "HTTP 500" in job["runs"][0]["error"]
    job = await finished(api, made["down"])
    assert job["finish_reason"] == "failed"
    assert [r["status"] for r in job["runs"]] == ["failed"] * 3  # 1 + MAX_RETRIES runs
    assert len(receiver.at("/down")) == 3


async def test_a_recurrent_job_stops_after_3_consecutive_failures(
    compat_api: Api,
    receiver: Receiver,
    worker: Worker,
    services: tuple[CronService, FailureWatch],
) -> None:
    api = compat_api
    url = receiver.tell("/hook", Answer(500, "receiver is down"))
    body = {"event": "heartbeat", "type": "recurrent", "every": 1,
            "request": {"url": url, "method": "POST",
                        "payload": {"id": "{{$uuid}}", "n": "{{$randomInt}}"}}}  # fmt: skip
    r = await api.call("POST", "/jobs", json=body)
    assert r.status == 201, r.body
    job_id = r.body["job_id"]
    cron, watch = services
    cron.start()
    watch.start()
    job = await finished(api, job_id, within=40)
    check_job(job)
    assert (job["status"], job["finish_reason"], job["is_recurrent"]) == (
        "finished",
        "failed",
        True,
    )
    runs = [r for r in job["runs"] if r["status"] != "pending"]
    assert len(runs) >= 3 and [r["status"] for r in runs[-3:]] == ["failed"] * 3, runs
    assert all(r["status"] == "failed" for r in runs)
    sent = [json.loads(s.body) for s in receiver.at("/hook")]
    assert len({s["id"] for s in sent}) == len(sent) >= 3  # a fresh payload every run
    # each run is a job of its own, no retry: one attempt each
    for run in runs:
        r = await api.call("GET", f"/jobs/{run['run_id']}")
        assert r.status == 200 and r.body["is_recurrent"] is True, r.body
        assert len(r.body["runs"]) == 1 and r.body["runs"][0]["status"] == "failed"
    # no more runs once stopped
    fired = len(receiver.at("/hook"))
    r = await api.call("GET", "/jobs?event=heartbeat&limit=100")
    assert r.status == 200 and r.body["total"] == len(r.body["jobs"]) >= 3
    await cron.run_once()
    assert len(receiver.at("/hook")) == fired
