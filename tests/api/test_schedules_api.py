"""Schedules API: CRUD, validation naming the field, trigger, and the cron service firing."""

from __future__ import annotations

from jobserver.scheduler.cron import CronService
from tests.api.conftest import Api


async def test_crud_and_trigger(api: Api) -> None:
    body = {
        "name": "nightly",
        "cron": "0 3 * * *",
        "timezone": "Europe/Paris",
        "definitionKey": "echo",
        "definitionVersion": 1,
        "params": {"message": "night"},
        "queue": "batch",
        "overlapPolicy": "skip",
        "catchupPolicy": "none",
    }
    r = await api.call("POST", "/v1/schedules", json=body)
    assert r.status == 201, r.body
    assert r.body["nextFireAt"] and r.body["source"] == "api" and r.body["enabled"] is True
    assert (await api.call("POST", "/v1/schedules", json=body)).status == 409

    r = await api.call("GET", "/v1/schedules")
    assert r.body == {"items": r.body["items"], "nextCursor": None}
    assert [s["name"] for s in r.body["items"]] == ["nightly"]
    for name in ("a-first", "z-last"):
        assert (await api.call("POST", "/v1/schedules", json={**body, "name": name})).status == 201
    r = await api.call("GET", "/v1/schedules", params={"limit": 2})
    assert [s["name"] for s in r.body["items"]] == ["a-first", "nightly"]
    r = await api.call("GET", "/v1/schedules", params={"limit": 2, "cursor": r.body["nextCursor"]})
    assert [s["name"] for s in r.body["items"]] == ["z-last"] and r.body["nextCursor"] is None
    for name in ("a-first", "z-last"):
        assert (await api.call("DELETE", f"/v1/schedules/{name}")).status == 204
    r = await api.call("GET", "/v1/schedules/nightly")
    assert r.status == 200 and r.body["queue"] == "batch"

    r = await api.call("PATCH", "/v1/schedules/nightly", json={"enabled": False})
    assert r.status == 200 and r.body["enabled"] is False and r.body["nextFireAt"] is None
    r = await api.call("PATCH", "/v1/schedules/nightly", json={"enabled": True, "everySeconds": 60})
    assert r.status == 200, r.body
    assert r.body["cron"] is None and r.body["everySeconds"] == 60 and r.body["nextFireAt"]

    r = await api.call("POST", "/v1/schedules/nightly/trigger")
    assert r.status == 201, r.body
    job = await api.pool.fetchrow("SELECT * FROM jobs WHERE id = $1::uuid", r.body["jobId"])
    assert job["schedule_name"] == "nightly" and job["params"] == {"message": "night"}
    assert job["queue"] == "batch"
    r = await api.call("GET", "/v1/schedules/nightly")
    assert r.body["lastJobId"] == str(job["id"])

    assert (await api.call("DELETE", "/v1/schedules/nightly")).status == 204
    assert (await api.call("GET", "/v1/schedules/nightly")).status == 404
    assert (await api.call("POST", "/v1/schedules/nightly/trigger")).status == 404


async def test_invalid_input_names_the_field(api: Api) -> None:
    base = {"name": "s", "everySeconds": 5, "definitionKey": "echo"}
    cases = [
        ({"cron": "61 * * * *", "everySeconds": None}, "cron"),
        ({"cron": "* * *", "everySeconds": None}, "cron"),
        ({"cron": "* * * * *"}, "cron"),  # both cron and everySeconds
        ({"everySeconds": None}, "cron"),  # neither
        ({"timezone": "Nowhere/Atlantis"}, "timezone"),
        ({"definitionKey": "nope"}, "definitionKey"),
        ({"definitionVersion": 99}, "definitionVersion"),
        ({"everySeconds": 0}, "everySeconds"),
        ({"catchupPolicy": "sometimes"}, "catchupPolicy"),
        ({"startAt": "yesterday"}, "startAt"),
        ({"params": {"message": 5}, "definitionVersion": 1}, "params.message"),
        ({"name": "bad name!"}, "name"),
    ]
    for change, field in cases:
        r = await api.call("POST", "/v1/schedules", json={**base, **change})
        assert r.status == 422, (change, r.body)
        assert r.body["field"] == field, (change, r.body)
    assert await api.pool.fetchval("SELECT count(*) FROM schedules") == 0
    r = await api.call("POST", "/v1/schedules", json=base)
    assert r.status == 201
    r = await api.call("PATCH", "/v1/schedules/s", json={"timezone": "Mars/Base"})
    assert r.status == 422 and r.body["field"] == "timezone"
    assert (await api.call("GET", "/v1/schedules", token="view")).status == 403


async def test_created_schedule_fires(api: Api) -> None:
    r = await api.call(
        "POST",
        "/v1/schedules",
        json={"name": "fast", "everySeconds": 5, "definitionKey": "echo", "maxAttempts": 2},
    )
    assert r.status == 201
    await api.pool.execute("UPDATE schedules SET next_fire_at = now() - interval '1 second'")
    result = await CronService(api.pool).run_once()
    assert result["fired"] >= 1
    job = await api.pool.fetchrow("SELECT * FROM jobs WHERE schedule_name = 'fast' LIMIT 1")
    assert job["max_attempts"] == 2 and job["definition_version"] == 2  # latest echo
