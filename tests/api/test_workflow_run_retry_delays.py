"""`retryDelays` on a workflow run: every job of its steps gets the list (the eager ones at
start, the lazy ones through the plan the expander reads); a bad list is a 422 naming it with
nothing written; the list is part of an idempotent run's fingerprint."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api
from tests.api.test_workflows_api import DIAMOND, create, stored


async def test_the_runs_step_jobs_carry_its_delays(api: Api) -> None:
    w = await create(api)
    body: dict[str, Any] = {"inputData": {"word": "hi"}, "retryDelays": [0, 10, 60]}
    r = await api.call("POST", f"/v1/workflows/{w['id']}/runs", json=body)
    assert r.status == 201, r.body
    rows = await api.pool.fetch("SELECT name, retry_delays FROM jobs ORDER BY name")
    delays = {x["name"]: x["retry_delays"] for x in rows}
    assert delays["a"] == delays["b"] == delays["c"] == [0.0, 10.0, 60.0]
    assert delays["d:expand"] is None and delays["run"] is None  # the run's own machinery
    plan = await api.pool.fetchval(
        "SELECT plan FROM workflow_runs WHERE id = $1::uuid", r.body["runId"]
    )
    assert {e["name"]: e["retryDelays"] for e in plan}["d"] == [0, 10, 60]  # for the expander
    job = await api.call("GET", f"/v1/jobs/{r.body['jobId']}")
    assert job.status == 200
    # without the field the steps keep their definitions' back-off
    r = await api.call("POST", f"/v1/workflows/{w['id']}/runs", json={"inputData": {"word": "x"}})
    assert r.status == 201
    rows = await api.pool.fetch(
        "SELECT j.retry_delays FROM jobs j JOIN workflow_run_jobs r ON r.job_id = j.id"
        " WHERE r.run_id = $1::uuid",
        r.body["runId"],
    )
    assert rows and all(x["retry_delays"] is None for x in rows)


@pytest.mark.parametrize(
    ("delays", "field"), [([], "retryDelays"), ([1, -1], "retryDelays[1]"), ("5", "retryDelays")]
)
async def test_bad_delays_are_a_422_naming_them(api: Api, delays: Any, field: str) -> None:
    w = await create(api, {**DIAMOND, "name": "d2"})
    before = await stored(api)
    r = await api.call(
        "POST",
        f"/v1/workflows/{w['id']}/runs",
        json={"inputData": {"word": "x"}, "retryDelays": delays},
    )
    assert r.status == 422 and r.body["field"] == field, r.body
    assert await stored(api) == before


async def test_the_delays_are_part_of_the_fingerprint(api: Api) -> None:
    w = await create(api)
    body: dict[str, Any] = {"inputData": {"word": "x"}, "idempotencyKey": "k", "retryDelays": [1]}
    first = await api.call("POST", f"/v1/workflows/{w['id']}/runs", json=body)
    assert first.status == 201
    again = await api.call("POST", f"/v1/workflows/{w['id']}/runs", json=body)
    assert again.status == 200 and again.body["runId"] == first.body["runId"]
    other = await api.call(
        "POST", f"/v1/workflows/{w['id']}/runs", json={**body, "retryDelays": [2]}
    )
    assert other.status == 409 and other.body["field"] == "idempotencyKey"
