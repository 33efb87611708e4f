"""Saved jobs over the API: CRUD, validation like a submission (422 naming the field, nothing
written), owner isolation and scopes, the outbound capability, execute with param overrides,
disabled saved jobs, and the trigger's schedule that /v1/schedules shows but will not change."""

from __future__ import annotations

from typing import Any

import pytest

from jobserver.auth import create_token
from tests.api.conftest import Api

ECHO = {"name": "Nightly report", "definitionKey": "echo", "params": {"message": "hi"}}


async def counts(api: Api) -> tuple[int, int, int]:
    """(saved jobs, schedules, jobs) stored."""
    row = await api.pool.fetchrow(
        "SELECT (SELECT count(*) FROM saved_jobs), (SELECT count(*) FROM schedules),"
        " (SELECT count(*) FROM jobs)"
    )
    assert row is not None
    return row[0], row[1], row[2]


async def create(api: Api, token: str = "plain", **fields: Any) -> dict[str, Any]:
    r = await api.call("POST", "/v1/saved-jobs", token=token, json={**ECHO, **fields})
    assert r.status == 201, r.body
    return r.body


async def test_crud(api: Api) -> None:
    saved = await create(
        api,
        description="the nightly one",
        tags=["reports", "nightly"],
        maxAttempts=1,
        timeoutSeconds=30,
        retryDelays=[0, 10, 60],
    )
    assert saved["owner"] == "alice" and saved["createdBy"] == saved["updatedBy"] == "plain"
    assert saved["enabled"] is True and saved["definitionVersion"] is None
    assert saved["retryDelays"] == [0, 10, 60] and saved["timeoutSeconds"] == 30
    assert saved["cron"] is None and saved["everySeconds"] is None and saved["schedule"] is None
    sid = saved["id"]
    r = await api.call("GET", f"/v1/saved-jobs/{sid}", token="plain")
    assert r.status == 200 and r.body == saved

    # PATCH changes the fields given, and nothing else
    r = await api.call(
        "PATCH", f"/v1/saved-jobs/{sid}", token="manage", json={"description": "changed"}
    )
    assert r.status == 200, r.body
    assert r.body["description"] == "changed" and r.body["tags"] == ["reports", "nightly"]
    assert r.body["owner"] == "alice" and r.body["updatedBy"] == "manage"
    assert r.body["updatedAt"] > saved["updatedAt"]

    # PUT replaces: what it leaves out takes its default
    r = await api.call(
        "PUT",
        f"/v1/saved-jobs/{sid}",
        token="plain",
        json={"name": "Renamed", "definitionKey": "echo", "definitionVersion": 1},
    )
    assert r.status == 200, r.body
    assert r.body["name"] == "Renamed" and r.body["definitionVersion"] == 1
    assert r.body["tags"] is None and r.body["retryDelays"] is None
    assert r.body["description"] == "" and r.body["params"] == {}

    assert (await api.call("DELETE", f"/v1/saved-jobs/{sid}", token="plain")).status == 204
    assert (await api.call("GET", f"/v1/saved-jobs/{sid}", token="plain")).status == 404
    assert (await api.call("DELETE", f"/v1/saved-jobs/{sid}", token="plain")).status == 404
    assert await counts(api) == (0, 0, 0)


async def test_list_filters_and_pages(api: Api) -> None:
    await create(api, name="Alpha backup", tags=["ops"], definitionKey="echo")
    await create(api, name="Beta BACKUP files", tags=["ops", "files"], enabled=False)
    await create(api, name="Gamma report", definitionKey="strict", params={"name": "a", "count": 1})

    async def names(**query: Any) -> list[str]:
        r = await api.call("GET", "/v1/saved-jobs", token="plain", params=query)
        assert r.status == 200, r.body
        return [s["name"] for s in r.body["items"]]

    assert await names() == ["Alpha backup", "Beta BACKUP files", "Gamma report"]
    assert await names(q="backup") == ["Alpha backup", "Beta BACKUP files"]
    assert await names(q="%") == []  # plain text, not a pattern
    assert await names(tag="ops") == ["Alpha backup", "Beta BACKUP files"]
    assert await names(tag="ops,files") == ["Beta BACKUP files"]
    assert await names(enabled="false") == ["Beta BACKUP files"]
    assert await names(definitionKey="strict") == ["Gamma report"]
    r = await api.call("GET", "/v1/saved-jobs", token="plain", params={"limit": 2})
    assert [s["name"] for s in r.body["items"]] == ["Alpha backup", "Beta BACKUP files"]
    r = await api.call(
        "GET", "/v1/saved-jobs", token="plain", params={"limit": 2, "cursor": r.body["nextCursor"]}
    )
    assert [s["name"] for s in r.body["items"]] == ["Gamma report"] and r.body["nextCursor"] is None
    r = await api.call("GET", "/v1/saved-jobs", token="plain", params={"page": 1, "limit": 2})
    assert r.body["total"] == 3 and r.body["totalPages"] == 2
    r = await api.call("GET", "/v1/saved-jobs", token="plain", params={"cursor": "bad!"})
    assert r.status == 422 and r.body["field"] == "cursor"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"definitionKey": "nope"}, "definitionKey"),
        ({"definitionVersion": 99}, "definitionVersion"),
        ({"definitionKey": "strict", "params": {"name": "a", "count": 11}}, "params.count"),
        ({"definitionKey": "strict", "params": {"name": "a"}}, "params"),
        ({"maxAttempts": 50}, "maxAttempts"),
        ({"timeoutSeconds": 100000}, "timeoutSeconds"),
        ({"tags": ["a", "a"]}, "tags"),
        ({"retryDelays": [1, -1]}, "retryDelays[1]"),
        ({"retryDelays": []}, "retryDelays"),
        ({"cron": "not a cron"}, "cron"),
        ({"cron": "* * * * * *"}, "cron"),  # every second: closer than MIN_EVERY
        ({"cron": "0 3 * * *", "everySeconds": 60}, "cron"),
        ({"everySeconds": 2}, "everySeconds"),
        ({"everySeconds": 60, "timezone": "Mars/Olympus"}, "timezone"),
        ({"name": ""}, "name"),
        ({"name": "bad\nname"}, "name"),
        ({"unknown": 1}, ""),
    ],
)
async def test_invalid_input_is_a_422_naming_the_field(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    r = await api.call("POST", "/v1/saved-jobs", token="plain", json={**ECHO, **fields})
    assert r.status == 422, r.body
    assert r.body.get("field", "") == field or field in r.body["error"], r.body
    assert await counts(api) == (0, 0, 0)


async def test_templated_params_are_checked_like_a_submission(api: Api) -> None:
    body = {
        "name": "hook",
        "definitionKey": "http.request",
        "params": {"url": "https://example.com/", "payload": {"x": "{{nobody.name}}"}},
    }
    r = await api.call("POST", "/v1/saved-jobs", json=body)
    assert r.status == 422 and r.body["field"].startswith("params.payload"), r.body
    body["params"]["payload"] = {"x": "{{params.url}} at {{$timestamp}}", "run": "{{schedule}}"}
    r = await api.call("POST", "/v1/saved-jobs", json=body)
    assert r.status == 201, r.body
    # a change is checked the same way
    r = await api.call(
        "PATCH",
        f"/v1/saved-jobs/{r.body['id']}",
        json={"params": {"url": "https://example.com/", "body": "{{$nope}}"}},
    )
    assert r.status == 422 and r.body["field"].startswith("params.body"), r.body


async def test_names_are_unique_per_owner(api: Api) -> None:
    first = await create(api)
    r = await api.call("POST", "/v1/saved-jobs", token="plain", json=ECHO)
    assert r.status == 409 and r.body["field"] == "name"
    await create(api, token="other")  # bob may use the same name
    other = await create(api, name="Other")
    r = await api.call(
        "PATCH", f"/v1/saved-jobs/{other['id']}", token="plain", json={"name": ECHO["name"]}
    )
    assert r.status == 409 and r.body["field"] == "name"
    assert (await api.call("GET", f"/v1/saved-jobs/{first['id']}", token="plain")).status == 200


async def test_owner_isolation_and_scopes(api: Api) -> None:
    mine = await create(api)
    sid = mine["id"]
    for method, suffix, body in (
        ("GET", "", None),
        ("PATCH", "", {"description": "x"}),
        ("PUT", "", ECHO),
        ("DELETE", "", None),
        ("POST", "/execute", None),
        ("GET", "/executions", None),
    ):
        r = await api.call(method, f"/v1/saved-jobs/{sid}{suffix}", token="other", json=body)
        assert r.status == 404, (method, suffix, r.body)
    r = await api.call("GET", "/v1/saved-jobs", token="other")
    assert r.body["items"] == []
    # view_jobs sees every saved job, and changes none but its own
    r = await api.call("GET", "/v1/saved-jobs", token="view")
    assert [s["id"] for s in r.body["items"]] == [sid]
    assert (await api.call("GET", f"/v1/saved-jobs/{sid}/executions", token="view")).status == 200
    for method, suffix in (("PATCH", ""), ("DELETE", ""), ("POST", "/execute")):
        body = {"description": "x"} if method == "PATCH" else None
        r = await api.call(method, f"/v1/saved-jobs/{sid}{suffix}", token="view", json=body)
        assert r.status == 403 and r.body["code"] == "forbidden", (method, r.body)
    # manage_jobs changes and runs every one: the job stays the saved job's owner's
    r = await api.call("POST", f"/v1/saved-jobs/{sid}/execute", token="manage")
    assert r.status == 201 and r.body["owner"] == "alice", r.body
    assert (await api.call("GET", f"/v1/jobs/{r.body['id']}", token="plain")).status == 200
    assert await counts(api) == (1, 0, 1)


async def test_the_outbound_capability_at_create_update_and_execute(api: Api) -> None:
    hook = {
        "name": "hook",
        "definitionKey": "http.request",
        "params": {"url": "https://example.com/hook", "headers": {"Authorization": "Bearer s"}},
    }
    r = await api.call("POST", "/v1/saved-jobs", token="plain", json=hook)
    assert r.status == 403 and r.body["capability"] == "outbound", r.body
    caller = await create_token(api.pool, "alice-out", ["outbound"], "alice")
    r = await api.call("POST", "/v1/saved-jobs", token=caller, json=hook)
    assert r.status == 201, r.body
    assert r.body["params"]["headers"]["Authorization"] == "***"  # shown redacted
    sid = r.body["id"]
    plain = await create(api, name="plain one")
    # alice's plain token sees it, but may neither run it nor turn another one into it
    r = await api.call("POST", f"/v1/saved-jobs/{sid}/execute", token="plain")
    assert r.status == 403 and r.body["capability"] == "outbound", r.body
    r = await api.call(
        "PATCH", f"/v1/saved-jobs/{plain['id']}", token="plain", json={"definitionKey": "call.api"}
    )
    assert r.status == 403 and r.body["capability"] == "outbound", r.body
    r = await api.call("POST", f"/v1/saved-jobs/{sid}/execute", token=caller)
    assert r.status == 201, r.body
    assert await counts(api) == (2, 0, 1)


async def test_execute_merges_overrides_deeply_and_checks_them(api: Api) -> None:
    saved = await create(
        api,
        params={"message": "hi", "meta": {"a": 1, "b": 2}},
        tags=["t1"],
        maxAttempts=2,
        timeoutSeconds=20,
        retryDelays=[1, 2],
    )
    r = await api.call(
        "POST",
        f"/v1/saved-jobs/{saved['id']}/execute",
        token="plain",
        json={"params": {"meta": {"b": 3}}},
    )
    assert r.status == 201, r.body
    job = r.body
    assert job["params"] == {"message": "hi", "meta": {"a": 1, "b": 3}}
    assert job["savedJobId"] == saved["id"] and job["retryOf"] is None
    assert (job["maxAttempts"], job["timeoutSeconds"], job["retryDelays"]) == (2, 20, [1, 2])
    assert job["tags"] == ["t1"] and job["owner"] == "alice" and job["status"] == "queued"
    stored = await api.pool.fetchrow("SELECT * FROM jobs WHERE id = $1::uuid", job["id"])
    assert stored["saved_job_id"] is not None and stored["retry_delays"] == [1.0, 2.0]
    shown = (await api.call("GET", f"/v1/jobs/{job['id']}", token="plain")).body
    assert (shown["savedJobId"], shown["retryDelays"], shown["params"]) == (
        saved["id"],
        [1, 2],
        job["params"],
    )
    # without a body: the saved params as they are
    r = await api.call("POST", f"/v1/saved-jobs/{saved['id']}/execute", token="plain")
    assert r.status == 201 and r.body["params"] == {"message": "hi", "meta": {"a": 1, "b": 2}}

    strict = await create(
        api, name="strict", definitionKey="strict", params={"name": "a", "count": 1}
    )
    before = await counts(api)
    for override, field in (({"count": 99}, "params.count"), ({"extra": 1}, "params.extra")):
        r = await api.call(
            "POST",
            f"/v1/saved-jobs/{strict['id']}/execute",
            token="plain",
            json={"params": override},
        )
        assert r.status == 422 and r.body["field"] == field, r.body
    r = await api.call(
        "POST", f"/v1/saved-jobs/{strict['id']}/execute", token="plain", json={"other": 1}
    )
    assert r.status == 422
    assert await counts(api) == before  # nothing written
    r = await api.call(
        "POST",
        f"/v1/saved-jobs/{strict['id']}/execute",
        token="plain",
        json={"params": {"count": 3, "inner": {"level": "high"}}},
    )
    assert r.status == 201 and r.body["params"] == {
        "name": "a",
        "count": 3,
        "inner": {"level": "high"},
    }


async def test_execute_counts_against_the_owners_queued_quota(api: Api) -> None:
    token = await create_token(api.pool, "quota", [], "quinn", max_queued=1)
    saved = await create(api, token=token)
    r = await api.call("POST", f"/v1/saved-jobs/{saved['id']}/execute", token=token)
    assert r.status == 201
    r = await api.call("POST", f"/v1/saved-jobs/{saved['id']}/execute", token=token)
    assert r.status == 429 and r.body["code"] == "quota_exceeded", r.body


async def test_a_disabled_saved_job_is_not_executed(api: Api) -> None:
    saved = await create(api, enabled=False)
    r = await api.call("POST", f"/v1/saved-jobs/{saved['id']}/execute", token="plain")
    assert r.status == 409 and r.body["code"] == "invalid_state", r.body
    assert await counts(api) == (1, 0, 0)
    r = await api.call(
        "PATCH", f"/v1/saved-jobs/{saved['id']}", token="plain", json={"enabled": True}
    )
    assert r.status == 200
    r = await api.call("POST", f"/v1/saved-jobs/{saved['id']}/execute", token="plain")
    assert r.status == 201


async def test_the_trigger_is_a_schedule_only_the_saved_job_changes(api: Api) -> None:
    saved = await create(api, everySeconds=60, tags=["t"], timeoutSeconds=10, retryDelays=[3])
    sid = saved["id"]
    schedule = saved["schedule"]
    assert schedule["name"] == f"saved-job:{sid}" and schedule["enabled"] is True
    assert schedule["nextFireAt"] is not None and saved["everySeconds"] == 60
    name = schedule["name"]
    r = await api.call("GET", f"/v1/schedules/{name}")
    assert r.status == 200, r.body
    assert r.body["savedJobId"] == sid and r.body["everySeconds"] == 60
    assert (r.body["tags"], r.body["timeoutSeconds"], r.body["retryDelays"]) == (["t"], 10, [3])
    listed = await api.call("GET", "/v1/schedules")
    assert [s["name"] for s in listed.body["items"]] == [name]
    for method, body in (("PATCH", {"enabled": False}), ("DELETE", None)):
        r = await api.call(method, f"/v1/schedules/{name}", json=body)
        assert r.status == 409 and r.body["code"] == "owned_by_saved_job", r.body
        assert r.body["savedJobId"] == sid and "Nightly report" in r.body["error"]
    assert (await api.call("GET", f"/v1/schedules/{name}")).body["enabled"] is True

    # the saved job changes it: switch to cron, change the job fields, remove the trigger
    r = await api.call(
        "PATCH",
        f"/v1/saved-jobs/{sid}",
        token="plain",
        json={"cron": "0 3 * * *", "timezone": "Europe/Paris", "params": {"message": "night"}},
    )
    assert r.status == 200 and r.body["everySeconds"] is None, r.body
    s = (await api.call("GET", f"/v1/schedules/{name}")).body
    assert (s["cron"], s["everySeconds"], s["timezone"]) == ("0 3 * * *", None, "Europe/Paris")
    assert s["params"] == {"message": "night"} and s["nextFireAt"] != schedule["nextFireAt"]
    r = await api.call("PATCH", f"/v1/saved-jobs/{sid}", token="plain", json={"enabled": False})
    assert r.body["schedule"]["enabled"] is False and r.body["schedule"]["nextFireAt"] is None
    r = await api.call("POST", f"/v1/schedules/{name}/trigger")
    assert r.status == 409 and r.body["code"] == "invalid_state", r.body
    r = await api.call("PATCH", f"/v1/saved-jobs/{sid}", token="plain", json={"enabled": True})
    assert r.body["schedule"]["enabled"] is True and r.body["schedule"]["nextFireAt"]
    # a manual trigger of the schedule is one of the saved job's runs, in its owner's name
    r = await api.call("POST", f"/v1/schedules/{name}/trigger")
    assert r.status == 201, r.body
    fired = await api.pool.fetchrow("SELECT * FROM jobs WHERE id = $1::uuid", r.body["jobId"])
    assert str(fired["saved_job_id"]) == sid and fired["owner"] == "alice"
    assert fired["timeout_seconds"] == 10 and fired["retry_delays"] == [3.0]
    assert fired["tags"] == ["t"] and fired["params"] == {"message": "night"}

    r = await api.call("PATCH", f"/v1/saved-jobs/{sid}", token="plain", json={"cron": None})
    assert r.status == 200 and r.body["schedule"] is None, r.body
    assert (await api.call("GET", f"/v1/schedules/{name}")).status == 404
    r = await api.call("PATCH", f"/v1/saved-jobs/{sid}", token="plain", json={"everySeconds": 90})
    assert r.body["schedule"]["name"] == name
    # deleting the saved job deletes its schedule and keeps its jobs (with its id)
    assert (await api.call("DELETE", f"/v1/saved-jobs/{sid}", token="plain")).status == 204
    assert (await api.call("GET", f"/v1/schedules/{name}")).status == 404
    kept = await api.pool.fetchval("SELECT saved_job_id FROM jobs WHERE id = $1", fired["id"])
    assert str(kept) == sid
    r = await api.call("GET", f"/v1/jobs/{fired['id']}", token="plain")
    assert r.status == 200 and r.body["savedJobId"] == sid


async def test_stored_references_are_checked_at_create_and_execute(api: Api) -> None:
    """What the params name in the database (a credential, a mail template) is checked as at
    submission: when the saved job is made, and again each time a job is made from it."""
    ssh = {
        "name": "deploy",
        "definitionKey": "ssh.command",
        "params": {"host": "build.example.com", "command": "true", "credential": "nope"},
    }
    r = await api.call("POST", "/v1/saved-jobs", token="manage", json=ssh)
    assert (r.status, r.body.get("field")) == (422, "params.credential"), r.body
    await api.pool.execute(  # a stand-in row: nothing here decrypts it
        "INSERT INTO credentials (name, kind, username, key_id, secret)"
        " VALUES ('deploy', 'ssh', 'ops', 'k000000000000', '\\x01'::bytea)"
    )
    ssh["params"]["credential"] = "deploy"
    r = await api.call("POST", "/v1/saved-jobs", token="manage", json=ssh)
    assert r.status == 201, r.body
    sid = r.body["id"]
    await api.pool.execute("DELETE FROM credentials")
    r = await api.call("POST", f"/v1/saved-jobs/{sid}/execute", token="manage")
    assert (r.status, r.body.get("field")) == (422, "params.credential"), r.body
    assert await api.pool.fetchval("SELECT count(*) FROM jobs") == 0
    mail = {
        "name": "welcome",
        "definitionKey": "mail.send",
        "params": {"to": "ann@example.com", "template": "welcome"},
    }
    r = await api.call("POST", "/v1/saved-jobs", token="manage", json=mail)
    assert (r.status, r.body.get("field")) == (422, "params.template"), r.body
