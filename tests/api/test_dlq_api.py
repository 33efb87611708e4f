"""DLQ: a job failed for good (by the rescuer) is copied, listed, redriven and discarded."""

from __future__ import annotations

from jobserver.scheduler.rescuer import Rescuer
from tests.api.conftest import Api
from tests.scheduler.helpers import events_of, insert_job


async def _dead(api: Api, key: str = "echo") -> str:
    job_id = await insert_job(
        api.pool,
        status="running",
        definition_key=key,
        attempt=2,
        max_attempts=2,
        lease_offset=-1,
    )
    assert (await Rescuer(api.pool).run_once())["failed"] == 1
    return str(job_id)


async def test_copy_and_redrive_round_trip(api: Api) -> None:
    job_id = await _dead(api)
    other = await _dead(api, "failing")

    r = await api.call("GET", "/v1/dlq")
    assert r.status == 200 and [i["id"] for i in r.body["items"]] == [other, job_id]
    assert r.body["nextCursor"] is None  # newest failure first, one page
    r = await api.call("GET", "/v1/dlq", params={"limit": 1})
    assert [i["id"] for i in r.body["items"]] == [other] and r.body["nextCursor"]
    r = await api.call("GET", "/v1/dlq", params={"limit": 1, "cursor": r.body["nextCursor"]})
    assert [i["id"] for i in r.body["items"]] == [job_id] and r.body["nextCursor"] is None
    r = await api.call("GET", "/v1/dlq", params={"definitionKey": "echo"})
    assert [i["id"] for i in r.body["items"]] == [job_id]
    item = r.body["items"][0]
    assert item["attempts"] == 2 and item["maxAttempts"] == 2
    assert [h["outcome"] for h in item["history"]] == ["failed", "lease_expired"]
    assert "lease expired" in item["lastError"]

    r = await api.call("GET", f"/v1/dlq/{job_id}")
    assert r.status == 200 and r.body["jobId"] == job_id and r.body["redrivenAt"] is None

    r = await api.call("POST", f"/v1/dlq/{job_id}/retry", json={"maxAttempts": 5})
    assert r.status == 201, r.body
    new_id = r.body["jobId"]
    assert r.body["dlq"]["redrivenJobId"] == new_id and r.body["dlq"]["redrivenAt"]
    new = await api.pool.fetchrow("SELECT * FROM jobs WHERE id = $1::uuid", new_id)
    assert new["status"] == "queued" and new["max_attempts"] == 5
    assert str(new["redriven_from"]) == job_id and new["definition_key"] == "echo"
    assert await events_of(api.pool, new["id"]) == ["created", "redriven"]
    assert (await events_of(api.pool, new["redriven_from"]))[-1] == "redriven"

    r = await api.call("POST", f"/v1/dlq/{job_id}/retry")  # no body: defaults
    assert r.status == 409 and r.body["code"] == "invalid_state"
    r = await api.call("GET", "/v1/dlq", params={"redriven": "false"})
    assert [i["id"] for i in r.body["items"]] == [other]

    r = await api.call("POST", f"/v1/dlq/{other}/retry")  # body optional
    assert r.status == 201
    assert (
        await api.pool.fetchval(
            "SELECT max_attempts FROM jobs WHERE id = $1::uuid", r.body["jobId"]
        )
        == 2
    )

    r = await api.call("DELETE", f"/v1/dlq/{job_id}")
    assert r.status == 204
    assert (await api.call("GET", f"/v1/dlq/{job_id}")).status == 404
    assert (await api.call("DELETE", f"/v1/dlq/{job_id}")).status == 404


async def test_validation_and_scope(api: Api) -> None:
    job_id = await _dead(api)
    for params in ({"limit": 0}, {"limit": 1001}, {"cursor": "bogus"}, {"offset": 1}):
        r = await api.call("GET", "/v1/dlq", params=params)
        assert r.status == 422, (params, r.body)
        assert r.body["field"] == next(iter(params))
    r = await api.call("POST", f"/v1/dlq/{job_id}/retry", json={"maxAttempts": 0})
    assert r.status == 422 and r.body["field"] == "maxAttempts"
    # the optional body is checked like every body: JSON only, no unknown fields
    r = await api.call("POST", f"/v1/dlq/{job_id}/retry", json={"maxAttempts": 2, "x": 1})
    assert r.status == 422 and r.body["field"] == "x"
    r = await api.call(
        "POST",
        f"/v1/dlq/{job_id}/retry",
        data="maxAttempts=2",
        headers={"Content-Type": "text/plain"},
    )
    assert r.status == 415
    r = await api.call(
        "POST", f"/v1/dlq/{job_id}/retry", data="{", headers={"Content-Type": "application/json"}
    )
    assert (r.status, r.body["code"]) == (400, "invalid_json")
    assert (await api.call("GET", "/v1/dlq/not-a-uuid")).status == 422
    assert (await api.call("GET", "/v1/dlq", token="view")).status == 403
    assert (await api.call("GET", "/v1/dlq", token=None)).status == 401
    r = await api.call("GET", "/v1/dlq", params={"limit": 1000})
    assert r.status == 200 and r.body == {"items": r.body["items"], "nextCursor": None}
