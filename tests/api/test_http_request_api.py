"""`http.request` at the API: its params rules, the outbound capability, and secret headers
hidden in every answer that shows a job's params (`redact_params`)."""

from __future__ import annotations

from typing import Any

import pytest

from jobserver.auth import create_token
from tests.api.conftest import Api

URL = "http://example.invalid/hook?token=abc"
HEADERS = {"Authorization": "Bearer s3cr3t", "X-Hidden": "hush", "X-Plain": "shown"}


def _job(**params: Any) -> dict[str, Any]:
    return {"definitionKey": "http.request", "params": {"url": URL, **params}}


async def test_payload_and_body_together_are_a_422_naming_the_field(api: Api) -> None:
    before = await api.job_count()
    r = await api.call("POST", "/v1/jobs", json=_job(payload={"a": 1}, body="text"))
    assert r.status == 422, r.body
    assert r.body["field"] == "params.body" and "not both" in r.body["error"]
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": [_job(), _job(payload=1, body="")]})
    assert r.status == 422 and r.body["field"] == "jobs[1].params.body", r.body
    assert await api.job_count() == before


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"url": "ftp://example.org/"}, "params.url"),
        ({"method": "GE T"}, "params.method"),
        ({"method": "CONNECT"}, "params.method"),
        ({"headers": {"Host": "metadata.internal"}}, "params.headers"),
        ({"headers": {"Transfer-Encoding": "chunked"}}, "params.headers"),
        ({"headers": {"X-A": 1}}, "params.headers"),
        ({"body": {"not": "a string"}}, "params.body"),
        ({"timeout": 0}, "params.timeout"),
        ({"timeout": 301}, "params.timeout"),
        ({"expectedStatus": 99}, "params.expectedStatus"),
        ({"expectedStatus": "2xy"}, "params.expectedStatus"),
        ({"expectedStatus": []}, "params.expectedStatus"),
        ({"secretHeaders": ["bad name"]}, "params.secretHeaders"),
        ({"useSources": "yes"}, "params.useSources"),
        ({"extra": 1}, "params"),
    ],
)
async def test_bad_params_are_a_422_naming_the_field(
    api: Api, params: dict[str, Any], field: str
) -> None:
    r = await api.call("POST", "/v1/jobs", json=_job(**params))
    assert r.status == 422, r.body
    assert r.body["field"].startswith(field), r.body


async def test_good_params_are_accepted(api: Api) -> None:
    for params in (
        {"method": "purge", "body": "x", "expectedStatus": [200, 202], "timeout": 1.5},
        {"payload": None, "expectedStatus": "4XX"},
        {"useSources": True, "sources": {"user": {"collection": "users"}}},
    ):
        r = await api.call("POST", "/v1/jobs", json=_job(**params))
        assert r.status == 201, (params, r.body)


@pytest.mark.parametrize("token", ["plain", "view"])
async def test_a_token_without_the_outbound_capability_gets_403(api: Api, token: str) -> None:
    before = await api.job_count()
    r = await api.call("POST", "/v1/jobs", token=token, json=_job())
    assert r.status == 403, r.body
    assert r.body["capability"] == "outbound" and r.body["field"] == "definitionKey"
    assert await api.job_count() == before
    caller = await create_token(api.pool, "caller", ["outbound"], "carol")
    assert (await api.call("POST", "/v1/jobs", token=caller, json=_job())).status == 201


async def test_the_definition_is_published_as_outbound(api: Api) -> None:
    r = await api.call("GET", "/v1/definitions", token="view")
    flags = {d["ref"]: d["outbound"] for d in r.body["items"]}
    assert flags["http.request@1"] is True


def _hidden(params: dict[str, Any]) -> None:
    assert params["headers"] == {"Authorization": "***", "X-Hidden": "***", "X-Plain": "shown"}
    assert params["url"] == URL and params["secretHeaders"] == ["x-hidden"]


async def test_secret_header_values_are_never_shown_in_answers(api: Api) -> None:
    r = await api.call("POST", "/v1/jobs", json=_job(headers=HEADERS, secretHeaders=["x-hidden"]))
    assert r.status == 201, r.body
    _hidden(r.body["params"])
    job_id = r.body["jobId"]
    r = await api.call("GET", f"/v1/jobs/{job_id}")
    assert r.status == 200
    _hidden(r.body["params"])
    r = await api.call("GET", "/v1/jobs?definitionKey=http.request")
    assert r.status == 200, r.body
    [listed] = [j for j in r.body["items"] if j["jobId"] == job_id]
    _hidden(listed["params"])
    # stored as given: the worker sends the real values
    stored = await api.pool.fetchval("SELECT params FROM jobs WHERE id = $1", job_id)
    assert stored["headers"] == HEADERS
    # other definitions' params are shown untouched
    r = await api.call(
        "POST", "/v1/jobs", json={"definitionKey": "echo", "params": {"headers": HEADERS}}
    )
    assert r.status == 201 and r.body["params"] == {"headers": HEADERS}
