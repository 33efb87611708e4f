"""Rate limits through the API: a definition answers its `rateLimit`; a job's own `rateLimit`
may only lower its definition's (422 naming the field, nothing written); a job answers its
bucket and limit; a saved job carries one to its executions."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from jobserver.db.definitions import definition_upsert
from jobserver.scheduler.cron import CronService
from tests.api.conftest import Api
from tests.worker.rated_defs import RATED


@pytest.fixture
async def rated_api(api: Api) -> Api:
    async with api.pool.acquire() as conn:
        for d in RATED.all():
            await definition_upsert(conn, d.metadata())
    return api


async def _job(pool: asyncpg.Pool, job_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT rate_bucket, rate_limit, rate_period FROM jobs WHERE id = $1::uuid", job_id
    )
    assert row is not None
    return row


async def test_definitions_answer_their_rate_limit(rated_api: Api) -> None:
    r = await rated_api.call("GET", "/v1/definitions/test.rated_keyed")
    assert r.status == 200, r.body
    assert r.body["rateLimit"] == {"limit": 2, "periodSeconds": 30.0, "key": "customer.id"}
    r = await rated_api.call("GET", "/v1/definitions/echo")
    assert r.body["rateLimit"] is None
    listed = await rated_api.call("GET", "/v1/definitions", params={"limit": "1000"})
    by_key = {d["key"]: d for d in listed.body["items"]}
    assert by_key["test.rated"]["rateLimit"] == {"limit": 5, "periodSeconds": 1.0}


async def test_a_job_gets_its_bucket_at_submission(rated_api: Api) -> None:
    job = await rated_api.submit(definitionKey="test.rated_keyed", params={"customer": {"id": 42}})
    assert job["rateLimit"] == {"limit": 2, "periodSeconds": 30.0, "bucket": "test.rated_keyed:42"}
    row = await _job(rated_api.pool, job["id"])
    assert tuple(row) == ("test.rated_keyed:42", 2, 30.0)
    got = await rated_api.call("GET", f"/v1/jobs/{job['id']}")
    assert got.body["rateLimit"] == job["rateLimit"]
    lowered = await rated_api.submit(
        definitionKey="test.rated_keyed",
        params={"customer": {"id": 42}},
        rateLimit={"limit": 1, "periodSeconds": 60},
    )
    assert lowered["rateLimit"] == {
        "limit": 1,
        "periodSeconds": 60.0,
        "bucket": "test.rated_keyed:42",  # the same bucket: lowering never leaves it
    }
    plain = await rated_api.submit()
    assert plain["rateLimit"] is None
    assert tuple(await _job(rated_api.pool, plain["id"])) == (None, None, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"definitionKey": "test.rated", "rateLimit": {"limit": 6, "periodSeconds": 1}},
            "rateLimit.limit",
        ),
        (
            {"definitionKey": "test.rated", "rateLimit": {"limit": 5, "periodSeconds": 0.5}},
            "rateLimit.periodSeconds",
        ),
        (
            {
                "definitionKey": "echo",
                "definitionVersion": 1,
                "rateLimit": {"limit": 1, "periodSeconds": 1},
            },
            "rateLimit",
        ),
        ({"definitionKey": "test.rated_keyed", "params": {}}, "params.customer.id"),
        ({"definitionKey": "test.rated", "rateLimit": {"limit": 0, "periodSeconds": 1}}, None),
        ({"definitionKey": "test.rated", "rateLimit": {"limit": 1}}, None),
    ],
)
async def test_a_job_cannot_raise_its_definitions_limit(
    rated_api: Api, body: dict[str, Any], field: str | None
) -> None:
    r = await rated_api.call("POST", "/v1/jobs", json={"params": {}, **body})
    assert r.status == 422, r.body
    assert r.body["code"] == "validation_error" and r.body["error"]
    if field is not None:
        assert r.body["field"] == field
    else:
        assert "rateLimit" in r.body["field"]
    assert await rated_api.job_count() == 0
    batch = await rated_api.call("POST", "/v1/jobs/batch", json={"jobs": [{"params": {}, **body}]})
    assert batch.status == 422, batch.body
    assert batch.body["field"].startswith("jobs[0].")
    assert await rated_api.job_count() == 0


async def test_a_saved_job_carries_its_rate_limit(rated_api: Api) -> None:
    base = {"name": "limited", "definitionKey": "test.rated", "params": {}}
    bad = await rated_api.call(
        "POST",
        "/v1/saved-jobs",
        token="plain",
        json={**base, "rateLimit": {"limit": 9, "periodSeconds": 1}},
    )
    assert bad.status == 422 and bad.body["field"] == "rateLimit.limit", bad.body
    assert await rated_api.pool.fetchval("SELECT count(*) FROM saved_jobs") == 0
    r = await rated_api.call(
        "POST",
        "/v1/saved-jobs",
        token="plain",
        json={**base, "rateLimit": {"limit": 2, "periodSeconds": 10}},
    )
    assert r.status == 201, r.body
    assert r.body["rateLimit"] == {"limit": 2, "periodSeconds": 10}
    ran = await rated_api.call("POST", f"/v1/saved-jobs/{r.body['id']}/execute", token="plain")
    assert ran.status == 201, ran.body
    assert ran.body["rateLimit"] == {"limit": 2, "periodSeconds": 10.0, "bucket": "test.rated"}
    assert tuple(await _job(rated_api.pool, ran.body["id"])) == ("test.rated", 2, 10.0)
    cleared = await rated_api.call(
        "PATCH", f"/v1/saved-jobs/{r.body['id']}", token="plain", json={"rateLimit": None}
    )
    assert cleared.status == 200 and cleared.body["rateLimit"] is None, cleared.body
    ran = await rated_api.call("POST", f"/v1/saved-jobs/{r.body['id']}/execute", token="plain")
    assert ran.body["rateLimit"] == {"limit": 5, "periodSeconds": 1.0, "bucket": "test.rated"}


async def test_a_saved_jobs_trigger_fires_under_its_own_lowered_limit(rated_api: Api) -> None:
    r = await rated_api.call(
        "POST",
        "/v1/saved-jobs",
        token="plain",
        json={
            "name": "limited-trigger",
            "definitionKey": "test.rated",
            "params": {},
            "rateLimit": {"limit": 2, "periodSeconds": 10},
            "cron": "0 * * * *",
        },
    )
    assert r.status == 201, r.body
    name = f"saved-job:{r.body['id']}"
    # fired by hand (the trigger route) and by the cron service: both under the saved job's
    fired = await rated_api.call("POST", f"/v1/schedules/{name}/trigger")
    assert fired.status in (200, 201), fired.body
    await rated_api.pool.execute(
        "UPDATE schedules SET next_fire_at = now() - interval '1 second' WHERE name = $1", name
    )
    assert (await CronService(rated_api.pool).run_once())["fired"] == 1
    rows = await rated_api.pool.fetch(
        "SELECT rate_bucket, rate_limit, rate_period FROM jobs WHERE schedule_name = $1", name
    )
    assert [tuple(row) for row in rows] == [("test.rated", 2, 10.0)] * 2
    # cleared on the saved job: its fires count under the definition's again
    cleared = await rated_api.call(
        "PATCH", f"/v1/saved-jobs/{r.body['id']}", token="plain", json={"rateLimit": None}
    )
    assert cleared.status == 200, cleared.body
    fired = await rated_api.call("POST", f"/v1/schedules/{name}/trigger")
    assert fired.status in (200, 201), fired.body
    latest = await rated_api.pool.fetchrow(
        "SELECT rate_limit, rate_period FROM jobs WHERE schedule_name = $1"
        " ORDER BY created_at DESC LIMIT 1",
        name,
    )
    assert tuple(latest) == (5, 1.0)


async def test_a_clone_keeps_its_templates_lowered_limit(rated_api: Api) -> None:
    lowered = await rated_api.submit(
        definitionKey="test.rated_keyed",
        params={"customer": {"id": 7}},
        rateLimit={"limit": 1, "periodSeconds": 60},
    )
    clone = await rated_api.call("POST", f"/v1/jobs/{lowered['id']}/clone", json={})
    assert clone.status == 201, clone.body
    assert clone.body["rateLimit"] == {
        "limit": 1,
        "periodSeconds": 60.0,
        "bucket": "test.rated_keyed:7",
    }
    assert tuple(await _job(rated_api.pool, clone.body["id"])) == ("test.rated_keyed:7", 1, 60.0)
    # the clone may set its own (still only lowering the definition's), and a new key value
    # moves it to that bucket
    own = await rated_api.call(
        "POST",
        f"/v1/jobs/{lowered['id']}/clone",
        json={"params": {"customer": {"id": 8}}, "rateLimit": {"limit": 2, "periodSeconds": 30}},
    )
    assert own.status == 201, own.body
    assert tuple(await _job(rated_api.pool, own.body["id"])) == ("test.rated_keyed:8", 2, 30.0)
    before = await rated_api.job_count()
    raised = await rated_api.call(
        "POST",
        f"/v1/jobs/{lowered['id']}/clone",
        json={"rateLimit": {"limit": 3, "periodSeconds": 30}},
    )
    assert raised.status == 422 and raised.body["field"] == "rateLimit.limit", raised.body
    assert await rated_api.job_count() == before
    # a template at its definition's limit clones at it
    plain = await rated_api.submit(definitionKey="test.rated", params={})
    clone = await rated_api.call("POST", f"/v1/jobs/{plain['id']}/clone")
    assert clone.status == 201, clone.body
    assert clone.body["rateLimit"] == {"limit": 5, "periodSeconds": 1.0, "bucket": "test.rated"}
