"""A saved job's runs end to end: executed by hand and fired by its trigger (everySeconds with
MIN_EVERY lowered for this module, fired by the cron service), run by a real worker, listed as
its executions newest first; a finished execution retried (linked by retryOf); a disabled
saved job's trigger not firing; failed triggered runs disabling the trigger until the saved
job is re-enabled."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from jobserver.config import Settings
from jobserver.registry import load_modules
from jobserver.scheduler.cron import CronService
from jobserver.scheduler.failures import FailureWatch
from jobserver.worker.worker import Worker
from tests.api.conftest import FAST_WORKER, Api
from tests.waiting import wait_for


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, worker_id="saved-job-worker", min_every=1)


@pytest.fixture
async def worker(api: Api, settings: Settings) -> AsyncIterator[Worker]:
    w = Worker(replace(settings, **FAST_WORKER), load_modules(), pool=api.pool)
    await w.start()
    yield w
    await w.stop(grace=0)


async def create(api: Api, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "job",
        "definitionKey": "echo",
        "definitionVersion": 1,  # the version the worker runs (the API tests publish echo@2)
        "params": {"message": "hi"},
        **fields,
    }
    r = await api.call("POST", "/v1/saved-jobs", token="plain", json=body)
    assert r.status == 201, r.body
    return r.body


async def executions(api: Api, sid: str, **query: Any) -> list[dict[str, Any]]:
    r = await api.call("GET", f"/v1/saved-jobs/{sid}/executions", token="plain", params=query)
    assert r.status == 200, r.body
    return list(r.body["items"])


async def execute(api: Api, sid: str) -> dict[str, Any]:
    r = await api.call("POST", f"/v1/saved-jobs/{sid}/execute", token="plain")
    assert r.status == 201, r.body
    return dict(r.body)


async def finished(api: Api, sid: str, n: int) -> list[dict[str, Any]] | None:
    runs = await executions(api, sid)
    done = [e for e in runs if e["finishedAt"] is not None]
    return runs if len(done) >= n else None


async def test_manual_executions_newest_first_with_outcome(api: Api, worker: Worker) -> None:
    saved = await create(api)
    sid = saved["id"]
    assert await executions(api, sid) == []
    first = await execute(api, sid)
    second = await execute(api, sid)
    runs = await wait_for(lambda: finished(api, sid, 2))
    assert [e["jobId"] for e in runs] == [second["id"], first["id"]]
    for e in runs:
        assert e["trigger"] == "manual" and e["status"] == "succeeded" and e["retryOf"] is None
        assert e["result"] == {"message": "hi"} and e["lastError"] is None
        assert e["attempt"] == 1 and e["durationMs"] is not None and e["scheduledFor"] is None
        created, started, ended = (
            dt.datetime.fromisoformat(e[k]) for k in ("createdAt", "startedAt", "finishedAt")
        )
        assert created <= started <= ended
    assert [e["jobId"] for e in await executions(api, sid, limit=1)] == [second["id"]]
    r = await api.call(
        "GET", f"/v1/saved-jobs/{sid}/executions", token="plain", params={"limit": 1}
    )
    r = await api.call(
        "GET",
        f"/v1/saved-jobs/{sid}/executions",
        token="plain",
        params={"limit": 1, "cursor": r.body["nextCursor"]},
    )
    assert [e["jobId"] for e in r.body["items"]] == [first["id"]] and r.body["nextCursor"] is None
    assert await executions(api, sid, status="failed") == []
    assert len(await executions(api, sid, status="succeeded,failed")) == 2


async def test_the_trigger_fires_and_the_run_appears(
    api: Api, worker: Worker, services: tuple[CronService, FailureWatch]
) -> None:
    saved = await create(
        api, everySeconds=1, tags=["tick"], timeoutSeconds=30, retryDelays=[0, 5], maxAttempts=2
    )
    sid = saved["id"]
    cron, _ = services
    cron.start()

    async def fired() -> list[dict[str, Any]] | None:
        runs = await executions(api, sid)
        done = [e for e in runs if e["trigger"] == "schedule" and e["status"] == "succeeded"]
        return done or None

    [run, *_] = await wait_for(fired, within=20)
    assert run["scheduledFor"] is not None and run["result"] == {"message": "hi"}
    job = await api.pool.fetchrow("SELECT * FROM jobs WHERE id = $1::uuid", run["jobId"])
    assert str(job["saved_job_id"]) == sid and job["owner"] == "alice"
    assert job["schedule_name"] == f"saved-job:{sid}" and job["tags"] == ["tick"]
    assert job["timeout_seconds"] == 30 and job["retry_delays"] == [0.0, 5.0]
    assert job["max_attempts"] == 2
    # the owner reads it like its own job, and the schedule's runs list it too
    r = await api.call("GET", f"/v1/jobs/{run['jobId']}", token="plain")
    assert r.status == 200 and r.body["savedJobId"] == sid and r.body["isRecurring"] is True
    r = await api.call("GET", f"/v1/schedules/saved-job:{sid}/runs")
    assert run["jobId"] in [i["jobId"] for i in r.body["items"]]
    r = await api.call("GET", f"/v1/saved-jobs/{sid}", token="plain")
    assert r.body["schedule"]["lastFireAt"] is not None


async def test_a_finished_execution_is_retried_linked_to_it(api: Api, worker: Worker) -> None:
    saved = await create(
        api,
        definitionKey="failing",
        definitionVersion=None,
        params={"reason": "boom"},
        maxAttempts=1,
    )
    sid = saved["id"]
    first = await execute(api, sid)
    [failed] = await wait_for(lambda: finished(api, sid, 1))
    assert failed["status"] == "failed" and "boom" in failed["lastError"]
    assert failed["result"] is None

    r = await api.call(
        "POST", f"/v1/saved-jobs/{sid}/executions/{first['id']}/retry", token="plain"
    )
    assert r.status == 201, r.body
    retry = r.body
    assert retry["retryOf"] == first["id"] and retry["savedJobId"] == sid
    assert retry["id"] != first["id"] and retry["params"] == {"reason": "boom"}
    assert retry["maxAttempts"] == 1 and retry["owner"] == "alice"
    runs = await wait_for(lambda: finished(api, sid, 2))
    assert [(e["jobId"], e["trigger"]) for e in runs] == [
        (retry["id"], "retry"),
        (first["id"], "manual"),
    ]
    assert runs[0]["retryOf"] == first["id"]

    # a job of no execution of this saved job: 404; of another owner's saved job: 404
    other = await create(api, name="other")
    r = await api.call(
        "POST", f"/v1/saved-jobs/{other['id']}/executions/{first['id']}/retry", token="plain"
    )
    assert r.status == 404
    r = await api.call(
        "POST", f"/v1/saved-jobs/{sid}/executions/{first['id']}/retry", token="other"
    )
    assert r.status == 404
    r = await api.call("POST", f"/v1/saved-jobs/{sid}/executions/not-a-uuid/retry", token="plain")
    assert r.status == 422 and r.body["field"] == "jobId"
    # disabled: no retry either
    await api.call("PATCH", f"/v1/saved-jobs/{sid}", token="plain", json={"enabled": False})
    r = await api.call(
        "POST", f"/v1/saved-jobs/{sid}/executions/{first['id']}/retry", token="plain"
    )
    assert r.status == 409 and r.body["code"] == "invalid_state"


async def test_an_unfinished_execution_is_not_retried(api: Api) -> None:
    saved = await create(api)
    queued = await execute(api, saved["id"])  # no worker: it stays queued
    r = await api.call(
        "POST", f"/v1/saved-jobs/{saved['id']}/executions/{queued['id']}/retry", token="plain"
    )
    assert r.status == 409 and r.body["jobStatus"] == "queued", r.body
    assert await api.pool.fetchval("SELECT count(*) FROM jobs") == 1


async def test_an_execution_retry_rechecks_its_stored_params(api: Api) -> None:
    """The execution's params are checked against the definition again, as a job's retry
    checks them: params that no longer pass are a 422 naming the field, and nothing is
    inserted."""
    saved = await create(
        api, definitionKey="strict", definitionVersion=None, params={"name": "a", "count": 1}
    )
    run = await execute(api, saved["id"])  # no worker: ended by hand below
    await api.pool.execute(
        "UPDATE jobs SET status = 'cancelled', finished_at = now(),"
        """ params = '{"name": "a", "count": 99}' WHERE id = $1::uuid""",
        run["id"],
    )
    r = await api.call(
        "POST", f"/v1/saved-jobs/{saved['id']}/executions/{run['id']}/retry", token="plain"
    )
    assert (r.status, r.body["field"]) == (422, "params.count"), r.body
    assert await api.pool.fetchval("SELECT count(*) FROM jobs") == 1


async def test_a_disabled_saved_jobs_trigger_does_not_fire(api: Api) -> None:
    off = await create(api, name="off", everySeconds=1, enabled=False)
    on = await create(api, name="on", everySeconds=1)
    assert off["schedule"]["enabled"] is False and off["schedule"]["nextFireAt"] is None
    # both made due now: only the enabled one fires
    await api.pool.execute("UPDATE schedules SET next_fire_at = now() - interval '1 second'")
    cron = CronService(api.pool)
    assert (await cron.run_once())["fired"] == 1
    assert await executions(api, off["id"]) == []
    assert [e["trigger"] for e in await executions(api, on["id"])] == ["schedule"]


async def test_failed_triggered_runs_disable_the_trigger_until_re_enabled(
    api: Api, worker: Worker, services: tuple[CronService, FailureWatch]
) -> None:
    saved = await create(
        api, definitionKey="failing", params={}, everySeconds=1, retryDelays=[3600]
    )
    sid = saved["id"]
    cron, watch = services
    cron.start()
    watch.start()

    async def trigger_off() -> dict[str, Any] | None:
        r = await api.call("GET", f"/v1/saved-jobs/{sid}", token="plain")
        return r.body if not r.body["schedule"]["enabled"] else None

    off = await wait_for(trigger_off, within=30)
    assert off["enabled"] is True  # the saved job itself stays enabled: execute still works
    assert "3 consecutive failed runs" in off["schedule"]["disabledReason"]
    assert len(await executions(api, sid, status="failed")) >= 3
    await execute(api, sid)
    r = await api.call("PATCH", f"/v1/saved-jobs/{sid}", token="plain", json={"enabled": True})
    assert r.body["schedule"]["enabled"] is True and r.body["schedule"]["disabledReason"] is None
    assert r.body["schedule"]["consecutiveFailures"] == 0
