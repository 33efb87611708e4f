"""Retry and clone over the API, with a real worker running the jobs: a failed job retried is
the same job again linked both ways (retriedFrom/retriedAs), once, its dead-letter row settled;
the retry of the retry goes on; a clone takes the job as a template with its overrides,
deep-merged params, checked as a submission; the links stay after the new jobs ran. Then the
rules that need no worker: states, owners, capability, quota, delays."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from jobserver.auth import create_token
from jobserver.config import Settings
from jobserver.registry import load_modules
from jobserver.worker.worker import Worker
from tests.api.conftest import FAST_WORKER, Api
from tests.waiting import wait_for


@pytest.fixture
async def worker(api: Api, settings: Settings) -> AsyncIterator[Worker]:
    w = Worker(
        replace(settings, **FAST_WORKER, worker_id="links-worker"), load_modules(), pool=api.pool
    )
    await w.start()
    yield w
    await w.stop(grace=0)


async def get(api: Api, job_id: str, token: str = "plain") -> dict[str, Any]:
    r = await api.call("GET", f"/v1/jobs/{job_id}", token=token)
    assert r.status == 200, r.body
    return dict(r.body)


async def settled(api: Api, job_id: str, status: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        job = await get(api, job_id)
        return job if job["status"] == status else None

    found: dict[str, Any] = await wait_for(done, within=30)
    return found


async def events(api: Api, job_id: str) -> list[dict[str, Any]]:
    r = await api.call("GET", f"/v1/jobs/{job_id}/events", token="plain")
    assert r.status == 200, r.body
    return list(r.body["items"])


async def test_retry_and_clone_keep_links(api: Api, worker: Worker) -> None:
    failing = {
        "definitionKey": "failing",
        "params": {"reason": "boom"},
        "maxAttempts": 1,
        "priority": 3,
        "timeoutSeconds": 30,
        "event": "nightly.report",
        "tags": ["eu"],
    }
    r = await api.call("POST", "/v1/jobs", token="plain", json=failing)
    assert r.status == 201, r.body
    first_id = r.body["jobId"]
    first = await settled(api, first_id, "failed")
    assert first["isTerminal"] and first["isRetriable"] and first["retriedAs"] is None
    assert first["queuePosition"] is None and first["queuePositionCapped"] is False

    r = await api.call("POST", f"/v1/jobs/{first_id}/retry", token="plain")
    assert r.status == 201, r.body
    retry = r.body
    assert retry["retriedFrom"] == first_id and retry["id"] != first_id
    same = ("definitionKey", "definitionVersion", "params", "queue", "priority", "maxAttempts")
    assert {k: retry[k] for k in same} == {k: first[k] for k in same}
    assert (retry["owner"], retry["event"], retry["tags"], retry["timeoutSeconds"]) == (
        "alice",
        "nightly.report",
        ["eu"],
        30,
    )
    assert (retry["status"], retry["attempt"], retry["retriedAs"], retry["clonedFrom"]) == (
        "queued",
        0,
        None,
        None,
    )
    assert (await get(api, first_id))["retriedAs"] == retry["id"]

    # once: the same retry again names the first one; the DLQ row is settled by it
    r = await api.call("POST", f"/v1/jobs/{first_id}/retry", token="plain")
    assert (r.status, r.body["code"], r.body["retriedAs"]) == (409, "invalid_state", retry["id"])
    r = await api.call("GET", f"/v1/dlq/{first_id}")
    assert r.status == 200 and r.body["redrivenJobId"] == retry["id"], r.body
    r = await api.call("POST", f"/v1/dlq/{first_id}/retry")
    assert r.status == 409, r.body  # already redriven: by the retry
    [old_event] = [e for e in await events(api, first_id) if e["event"] == "retried"]
    assert old_event["details"] == {"retriedAs": retry["id"]}
    [new_event] = [e for e in await events(api, retry["id"]) if e["event"] == "retried"]
    assert new_event["details"] == {"retriedFrom": first_id}

    # the retry ran (and failed, as failing@1 does): retrying it goes on down the chain
    await settled(api, retry["id"], "failed")
    r = await api.call("POST", f"/v1/jobs/{retry['id']}/retry", token="plain")
    assert r.status == 201 and r.body["retriedFrom"] == retry["id"], r.body
    third = r.body
    assert (await get(api, retry["id"]))["retriedAs"] == third["id"]

    # a clone of the first job: its template, with overrides; no retry link
    body = {"params": {"extra": {"x": 1}}, "priority": 1, "queue": "reports"}
    r = await api.call("POST", f"/v1/jobs/{first_id}/clone", token="plain", json=body)
    assert r.status == 201, r.body
    clone = r.body
    assert clone["clonedFrom"] == first_id and clone["retriedFrom"] is None
    assert clone["params"] == {"reason": "boom", "extra": {"x": 1}}
    assert (clone["priority"], clone["queue"], clone["maxAttempts"], clone["tags"]) == (
        1,
        "reports",
        1,
        ["eu"],
    )
    # after every new job ran, the links are as they were written
    for job_id in (third["id"], clone["id"]):
        await settled(api, job_id, "failed")
    assert (await get(api, first_id))["retriedAs"] == retry["id"]
    after = await get(api, clone["id"])
    assert (after["clonedFrom"], after["attempt"]) == (first_id, 1)
    assert (await get(api, third["id"]))["retriedFrom"] == retry["id"]


async def test_a_clone_merges_params_deeply_and_runs(api: Api, worker: Worker) -> None:
    job = await api.submit(
        "plain",
        params={"message": "hi", "to": {"name": "Ann", "lang": "en"}, "list": [1, 2]},
        delaySeconds=3600,
    )
    body = {"params": {"message": "bonjour", "to": {"lang": "fr"}, "list": [3]}}
    r = await api.call("POST", f"/v1/jobs/{job['id']}/clone", token="plain", json=body)
    assert r.status == 201, r.body
    assert r.body["params"] == {
        "message": "bonjour",
        "to": {"name": "Ann", "lang": "fr"},  # objects merge key by key
        "list": [3],  # anything else replaces
    }
    assert dt.datetime.fromisoformat(r.body["runAt"]) <= dt.datetime.now(dt.UTC)  # now
    done = await settled(api, r.body["id"], "succeeded")
    assert done["result"] == {"message": "bonjour"} and done["clonedFrom"] == job["id"]
    assert (await get(api, job["id"]))["status"] == "queued"  # the template is untouched


# -- rules (no worker: the jobs stay where the test puts them) ---------------------------------


async def _cancelled(api: Api, token: str = "plain", **fields: Any) -> dict[str, Any]:
    job = await api.submit(token, **fields)
    r = await api.call("POST", f"/v1/jobs/{job['id']}/cancel", token=token)
    assert r.status == 200, r.body
    return dict(r.body)


async def test_only_finished_unsucceeded_jobs_are_retried(api: Api) -> None:
    queued = await api.submit("plain")
    r = await api.call("POST", f"/v1/jobs/{queued['id']}/retry", token="plain")
    assert (r.status, r.body["code"], r.body["jobStatus"]) == (409, "invalid_state", "queued")
    for status in ("running", "cancelling", "succeeded"):
        await api.pool.execute(
            "UPDATE jobs SET status = $2, worker_id = 'w', attempt = 1 WHERE id = $1::uuid",
            queued["id"],
            status,
        )
        r = await api.call("POST", f"/v1/jobs/{queued['id']}/retry", token="plain")
        assert (r.status, r.body["jobStatus"]) == (409, status), r.body
    for status in ("failed", "expired"):
        await api.pool.execute(
            "UPDATE jobs SET status = $2, finished_at = now(), retried_as = NULL"
            " WHERE id = $1::uuid",
            queued["id"],
            status,
        )
        r = await api.call("POST", f"/v1/jobs/{queued['id']}/retry", token="plain")
        assert r.status == 201 and r.body["retriedFrom"] == queued["id"], (status, r.body)
    assert await api.job_count() == 3
    r = await api.call("POST", f"/v1/jobs/{uuid.uuid4()}/retry", token="plain")
    assert r.status == 404


async def test_retry_is_owner_scoped(api: Api) -> None:
    job = await _cancelled(api)
    r = await api.call("POST", f"/v1/jobs/{job['id']}/retry", token="other")
    assert r.status == 404, r.body  # another owner's job is not revealed
    r = await api.call("POST", f"/v1/jobs/{job['id']}/retry", token="view")
    assert (r.status, r.body["code"]) == (403, "forbidden"), r.body  # seen, not acted on
    assert await api.job_count() == 1
    r = await api.call("POST", f"/v1/jobs/{job['id']}/retry", token="manage")
    assert r.status == 201 and r.body["owner"] == "alice", r.body  # the same job again: alice's


async def test_retry_after_a_delay_and_with_the_default_expiry(api: Api) -> None:
    job = await _cancelled(api)
    before = dt.datetime.now(dt.UTC)
    r = await api.call(
        "POST", f"/v1/jobs/{job['id']}/retry", token="plain", json={"delaySeconds": 600}
    )
    assert r.status == 201, r.body
    run_at = dt.datetime.fromisoformat(r.body["runAt"])
    assert before + dt.timedelta(seconds=600) <= run_at <= before + dt.timedelta(seconds=660)
    assert r.body["isScheduled"] and r.body["scheduledFor"] == r.body["runAt"]
    for bad in ({"delaySeconds": -1}, {"delaySeconds": "soon"}, {"priority": 5}):
        r = await api.call("POST", f"/v1/jobs/{job['id']}/retry", token="plain", json=bad)
        assert r.status == 422, (bad, r.body)
    assert await api.job_count() == 2


async def test_a_retry_deleted_since_does_not_block_another(api: Api) -> None:
    job = await _cancelled(api)
    r = await api.call("POST", f"/v1/jobs/{job['id']}/retry", token="plain")
    assert r.status == 201
    first_retry = r.body["id"]
    assert (await api.call("POST", f"/v1/jobs/{first_retry}/cancel", token="plain")).status == 200
    assert (await api.call("DELETE", f"/v1/jobs/{first_retry}", token="plain")).status == 204
    r = await api.call("POST", f"/v1/jobs/{job['id']}/retry", token="plain")
    assert r.status == 201 and r.body["id"] != first_retry, r.body
    assert (await get(api, job["id"]))["retriedAs"] == r.body["id"]


async def test_retry_rechecks_params_and_the_capability(api: Api) -> None:
    # a job whose stored params no longer pass its definition's schema
    job = await _cancelled(api, definitionKey="strict", params={"name": "a", "count": 1})
    await api.pool.execute(
        'UPDATE jobs SET params = \'{"name": "a", "count": 99}\' WHERE id = $1::uuid',
        job["id"],
    )
    r = await api.call("POST", f"/v1/jobs/{job['id']}/retry", token="plain")
    assert (r.status, r.body["field"]) == (422, "params.count"), r.body
    # a job of a definition that calls out: the capability is needed to run it again
    outbound = await _cancelled(
        api, "manage", definitionKey="call.api", params={"endpoint": "http://x.invalid/"}
    )
    await api.pool.execute("UPDATE jobs SET owner = 'alice' WHERE id = $1::uuid", outbound["id"])
    for route in ("retry", "clone"):
        r = await api.call("POST", f"/v1/jobs/{outbound['id']}/{route}", token="plain")
        assert (r.status, r.body.get("capability")) == (403, "outbound"), (route, r.body)
    assert await api.job_count() == 2


async def test_retry_and_clone_keep_within_the_owner_quota(api: Api) -> None:
    token = await create_token(api.pool, "quota", [], "carol", max_queued=1)
    job = await _cancelled(api, token)
    await api.submit(token)  # carol's one queued job
    for route in ("retry", "clone"):
        r = await api.call("POST", f"/v1/jobs/{job['id']}/{route}", token=token)
        assert (r.status, r.body["code"]) == (429, "quota_exceeded"), (route, r.body)
    assert await api.job_count() == 2
    r = await api.call("GET", f"/v1/jobs/{job['id']}", token=token)
    assert r.body["retriedAs"] is None  # nothing linked: the retry was refused whole


async def test_a_clone_is_checked_as_a_submission(api: Api) -> None:
    job = await api.submit("plain", definitionKey="strict", params={"name": "a", "count": 1})
    base = f"/v1/jobs/{job['id']}/clone"
    for body, field in (
        ({"params": {"count": 11}}, "params.count"),  # the definition's schema
        ({"params": {"nope": 1}}, "params"),
        ({"queue": ""}, "queue"),
        ({"priority": 5000}, "priority"),
        ({"delaySeconds": -1}, "delaySeconds"),
        ({"expiresIn": "soon"}, "expiresIn"),
        ({"definitionKey": "echo"}, "definitionKey"),  # not an override a clone takes
    ):
        r = await api.call("POST", base, token="plain", json=body)
        assert r.status == 422, (body, r.body)
        assert field in (r.body.get("field") or r.body["error"]), (body, r.body)
    r = await api.call("POST", base, token="plain", json={"priority": 900})
    assert (r.status, r.body["field"]) == (403, "priority"), r.body  # above MAX_PRIORITY_PLAIN
    assert await api.job_count() == 1
    r = await api.call("POST", base, token="other")
    assert r.status == 404  # another owner's job is not revealed
    r = await api.call(
        "POST", base, token="plain", json={"params": {"count": 2}, "expiresIn": "1h"}
    )
    assert r.status == 201, r.body
    assert r.body["params"] == {"name": "a", "count": 2} and r.body["definitionKey"] == "strict"
    assert r.body["expiresAt"] is not None and r.body["owner"] == "alice"


async def test_a_clone_belongs_to_whoever_clones(api: Api) -> None:
    job = await api.submit("plain")
    r = await api.call("POST", f"/v1/jobs/{job['id']}/clone", token="view")
    assert r.status == 201 and r.body["owner"] == "viewer", r.body
    assert r.body["clonedFrom"] == job["id"]
    # any status: a queued, a running and a finished job are all templates
    await api.pool.execute("UPDATE jobs SET status = 'succeeded' WHERE id = $1::uuid", job["id"])
    r = await api.call("POST", f"/v1/jobs/{job['id']}/clone", token="plain")
    assert r.status == 201 and r.body["owner"] == "alice", r.body
