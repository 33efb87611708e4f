"""`POST /v1/simulate` and the submission checks of templated params: the same validation as a
submission, rendering with real sources, nothing sent and nothing written."""

from __future__ import annotations

from typing import Any

from jobserver.auth import create_token
from tests.api.conftest import Api
from tests.conftest import PEOPLE_USER

URL = "http://example.invalid/hook"
USER = PEOPLE_USER


def hook(**params: Any) -> dict[str, Any]:
    return {"definitionKey": "http.request", "params": {"url": URL, "method": "POST", **params}}


async def test_simulate_renders_sources_and_macros_and_writes_nothing(
    api: Api, people: None
) -> None:
    before = await api.job_count()
    body = hook(
        headers={"Authorization": "Bearer s3cret", "X-Id": "{{$uuid}}"},
        payload={"user": "{{user}}", "message": "Hello {{user.name}}!", "at": "{{$timestamp}}"},
        useSources=True,
        sources={"user": USER},
    )
    r = await api.call("POST", "/v1/simulate", json=body)
    assert r.status == 200, r.body
    assert r.body["sent"] is False and r.body["definitionKey"] == "http.request"
    payload = r.body["payload"]
    assert payload["user"] == {
        "name": "John",
        "email": "john@example.com",
        "contact": {"phone": "555-0100"},
    }
    assert payload["message"] == "Hello John!" and payload["at"].endswith("Z")
    headers = r.body["params"]["headers"]
    assert headers["Authorization"] == "***" and len(headers["X-Id"]) == 36
    assert await api.job_count() == before


async def test_simulate_answers_the_errors_a_submission_would(api: Api, people: None) -> None:
    cases = [
        (hook(payload={"a": 1}, body="x"), 422, "params.body"),
        (hook(payload={"msg": "Hi {{user.name}}"}), 422, "params.payload.msg"),
        (hook(payload={"x": "{{params.nope}}"}), 422, "params.payload.x"),
        (hook(payload="{{$nope}}"), 422, "params.payload"),
        (hook(useSources=True, sources={"user": {**USER, "limit": 0}}), 422, "params.sources.user"),
        ({"definitionKey": "nope"}, 422, "definitionKey"),
    ]
    for body, status, field in cases:
        for route in ("/v1/simulate", "/v1/jobs"):
            r = await api.call("POST", route, json=body)
            assert r.status == status, (route, body, r.body)
            assert r.body["field"].startswith(field), (route, r.body)
    assert await api.job_count() == 0


async def test_what_only_the_data_can_tell_is_a_422_of_the_dry_run(api: Api, people: None) -> None:
    nobody = {**USER, "match": {"name": "Nobody"}}
    body = hook(payload="{{user}}", useSources=True, sources={"user": nobody})
    r = await api.call("POST", "/v1/simulate", json=body)
    assert r.status == 422 and r.body["code"] == "source_error", r.body
    assert r.body["field"] == "params.sources.user"
    body = hook(payload={"x": "{{user.nothing}}"}, useSources=True, sources={"user": USER})
    r = await api.call("POST", "/v1/simulate", json=body)
    assert r.status == 422 and r.body["code"] == "template_error", r.body
    assert r.body["field"] == "params.payload.x" and "{{user.nothing}}" in r.body["error"]
    # the submission itself is accepted: the data may be there when it runs
    r = await api.call("POST", "/v1/jobs", json=body)
    assert r.status == 201, r.body


async def test_simulate_needs_the_outbound_capability_like_a_submission(api: Api) -> None:
    r = await api.call("POST", "/v1/simulate", token="plain", json=hook(payload=1))
    assert r.status == 403 and r.body["capability"] == "outbound", r.body
    caller = await create_token(api.pool, "caller", ["outbound"], "carol")
    r = await api.call("POST", "/v1/simulate", token=caller, json=hook(payload="{{$today}}"))
    assert r.status == 200 and len(r.body["payload"]) == 10, r.body


async def test_a_definition_without_templates_comes_back_as_given(api: Api) -> None:
    body = {"definitionKey": "echo", "params": {"message": "{{not.a.template}}"}}
    r = await api.call("POST", "/v1/simulate", json=body)
    assert r.status == 200, r.body
    assert r.body["params"] == {"message": "{{not.a.template}}"} and r.body["payload"] is None


async def test_a_schedule_of_webhooks_is_checked_like_a_submission(api: Api) -> None:
    body = {
        "name": "bad-hook",
        "everySeconds": 60,
        "definitionKey": "http.request",
        "params": {"url": URL, "payload": {"msg": "Hi {{user.name}}"}},
    }
    r = await api.call("POST", "/v1/schedules", json=body)
    assert r.status == 422 and r.body["field"] == "params.payload.msg", r.body
    body["params"] = {"url": URL, "payload": {"day": "{{$today}}", "at": "{{schedule.name}}"}}
    r = await api.call("POST", "/v1/schedules", json=body)
    assert r.status == 201, r.body
