"""`retryDelays` on submissions, batches and schedules: bounded, stored in jobs.retry_delays,
shown in the job's answer and stamped by the jobs a schedule fires; a definition's explicit
delays are published with its metadata."""

from __future__ import annotations

import pytest

from jobserver.core.retry_delays import MAX_RETRY_DELAY_SECONDS, MAX_RETRY_DELAYS
from jobserver.db.definitions import definition_upsert
from jobserver.registry import Backoff, Registry, definition
from jobserver.scheduler.cron import CronService
from tests.api.conftest import Api


async def test_a_submission_keeps_its_delays_and_shows_them(api: Api) -> None:
    job = await api.submit(retryDelays=[0, 10, 60.5])
    assert job["retryDelays"] == [0, 10, 60.5]
    assert await api.pool.fetchval(
        "SELECT retry_delays FROM jobs WHERE id = $1::uuid", job["id"]
    ) == [0.0, 10.0, 60.5]
    r = await api.call("GET", f"/v1/jobs/{job['id']}")
    assert r.body["retryDelays"] == [0, 10, 60.5]
    plain = await api.submit()
    assert plain["retryDelays"] is None and plain["savedJobId"] is None
    assert plain["retryOf"] is None


@pytest.mark.parametrize(
    ("delays", "field"),
    [
        ([], "retryDelays"),
        ([1, -0.5], "retryDelays[1]"),
        ([MAX_RETRY_DELAY_SECONDS + 1], "retryDelays[0]"),
        ([1] * (MAX_RETRY_DELAYS + 1), "retryDelays"),
        (["5"], "retryDelays[0]"),
        (5, "retryDelays"),
    ],
)
async def test_bad_delays_are_a_422_naming_them(api: Api, delays: object, field: str) -> None:
    body = {"definitionKey": "echo", "retryDelays": delays}
    r = await api.call("POST", "/v1/jobs", json=body)
    assert r.status == 422 and r.body["field"] == field, r.body
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": [{"definitionKey": "echo"}, body]})
    assert r.status == 422 and r.body["field"] == f"jobs[1].{field}", r.body
    assert await api.job_count() == 0


async def test_a_batch_stores_each_jobs_own_delays(api: Api) -> None:
    items = [
        {"definitionKey": "echo", "retryDelays": [1, 2]},
        {"definitionKey": "echo"},
        {"definitionKey": "echo", "retryDelays": [3]},
        {"definitionKey": "echo", "retryDelays": [1, 2]},
    ]
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": items})
    assert r.status == 201, r.body
    stored = {
        str(row["id"]): row["retry_delays"]
        for row in await api.pool.fetch("SELECT id, retry_delays FROM jobs")
    }
    assert [stored[i] for i in r.body["jobIds"]] == [[1.0, 2.0], None, [3.0], [1.0, 2.0]]
    # one list for every job of a batch travels once
    r = await api.call(
        "POST", "/v1/jobs/batch", json={"jobs": [{"definitionKey": "echo", "retryDelays": [7]}] * 2}
    )
    assert r.status == 201
    rows = await api.pool.fetch(
        "SELECT retry_delays FROM jobs WHERE id = ANY($1::uuid[])", r.body["jobIds"]
    )
    assert [row["retry_delays"] for row in rows] == [[7.0], [7.0]]


async def test_a_schedule_stamps_its_delays_and_timeout_on_the_jobs_it_fires(api: Api) -> None:
    body = {
        "name": "tick",
        "everySeconds": 60,
        "definitionKey": "echo",
        "definitionVersion": 1,
        "retryDelays": [5, 50],
        "timeoutSeconds": 12,
        "maxAttempts": 2,
    }
    r = await api.call("POST", "/v1/schedules", json=body)
    assert r.status == 201, r.body
    assert r.body["retryDelays"] == [5, 50] and r.body["timeoutSeconds"] == 12
    assert r.body["savedJobId"] is None
    await api.pool.execute("UPDATE schedules SET next_fire_at = now() - interval '1 second'")
    assert (await CronService(api.pool).run_once())["fired"] == 1
    job = await api.pool.fetchrow("SELECT * FROM jobs WHERE schedule_name = 'tick'")
    assert job["retry_delays"] == [5.0, 50.0] and job["timeout_seconds"] == 12
    assert job["owner"] == "system:scheduler" and job["saved_job_id"] is None
    r = await api.call("PATCH", "/v1/schedules/tick", json={"retryDelays": None})
    assert r.status == 200 and r.body["retryDelays"] is None, r.body
    r = await api.call("PATCH", "/v1/schedules/tick", json={"timeoutSeconds": 10**6})
    assert r.status == 422 and r.body["field"] == "timeoutSeconds", r.body
    r = await api.call("PATCH", "/v1/schedules/tick", json={"retryDelays": [-1]})
    assert r.status == 422 and r.body["field"] == "retryDelays[0]", r.body


async def _nothing(params: object, ctx: object) -> None:
    """Nothing."""


async def test_a_definitions_delays_are_published(api: Api) -> None:
    reg = Registry()
    definition("listed.delays", backoff=Backoff(delays=(2, 4, 8)), target=reg)(_nothing)
    d = reg.get("listed.delays", 1)
    assert d is not None
    async with api.pool.acquire() as conn:
        await definition_upsert(conn, d.metadata())
    r = await api.call("GET", "/v1/definitions", params={"key": "listed.delays"})
    assert r.status == 200, r.body
    [shown] = r.body["items"]
    assert shown["backoff"] == {"delays": [2, 4, 8]}
