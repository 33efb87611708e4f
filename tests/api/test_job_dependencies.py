"""`dependsOn` over the API: batches with names, single submissions with ids, the 422s
(unknown id, another owner's job, cycle, repeated name) that write nothing, the answers,
cancel of a waiting job, the quota, and retry/clone keeping the parents."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from jobserver.config import Settings
from tests.api.conftest import Api, start_api


def item(name: str, *parents: str, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "definitionKey": "echo",
        "definitionVersion": 1,
        "params": {"message": name},
        "name": name,
    }
    if parents:
        body["dependsOn"] = list(parents)
    body.update(more)
    return body


async def batch(api: Api, *items: dict[str, Any], token: str = "manage") -> list[str]:
    r = await api.call("POST", "/v1/jobs/batch", token=token, json={"jobs": list(items)})
    assert r.status == 201, r.body
    return list(r.body["jobIds"])


async def job(api: Api, job_id: str, token: str = "manage") -> dict[str, Any]:
    r = await api.call("GET", f"/v1/jobs/{job_id}", token=token)
    assert r.status == 200, r.body
    return dict(r.body)


async def test_batch_by_name_and_answers(api: Api) -> None:
    a, b, c = await batch(
        api, item("a"), item("b", "a"), item("c", "a", "b", onParentFailure="continue")
    )
    ja, jb, jc = [await job(api, i) for i in (a, b, c)]
    assert ja["status"] == "queued" and ja["dependsOn"] is None and ja["name"] == "a"
    assert jb["status"] == "waiting" and jb["dependsOn"] == [a]
    assert jb["onParentFailure"] == "cancel"
    assert jc["dependsOn"] == [a, b] and jc["onParentFailure"] == "continue"
    r = await api.call("GET", "/v1/jobs", params={"status": "waiting"})
    assert r.status == 200 and {j["id"] for j in r.body["items"]} == {b, c}


async def test_single_submission_with_an_id(api: Api) -> None:
    parent = await api.submit()
    child = await api.submit(dependsOn=[parent["id"]])
    assert child["status"] == "waiting" and child["dependsOn"] == [parent["id"]]
    await api.pool.execute("UPDATE jobs SET status = 'succeeded' WHERE id = $1", parent["id"])
    assert (await job(api, child["id"]))["status"] == "queued"
    late = await api.submit(dependsOn=[parent["id"]])  # a parent already succeeded
    assert late["status"] == "queued"


async def test_errors_name_the_field_and_write_nothing(api: Api) -> None:
    missing = str(uuid.uuid4())
    r = await api.call("POST", "/v1/jobs", json=item("x", missing))
    assert r.status == 422 and r.body["field"] == "dependsOn[0]", r.body
    r = await api.call(
        "POST", "/v1/jobs/batch", json={"jobs": [item("a"), item("b", "a", missing)]}
    )
    assert r.status == 422 and r.body["field"] == "jobs[1].dependsOn[1]", r.body
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": [item("a", "b"), item("b", "a")]})
    assert r.status == 422 and r.body["field"] == "jobs[0].dependsOn", r.body
    assert "cycle" in r.body["error"]
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": [item("a", "a")]})
    assert r.status == 422 and r.body["field"] == "jobs[0].dependsOn[0]", r.body
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": [item("a"), item("a")]})
    assert r.status == 422 and r.body["field"] == "jobs[1].name", r.body
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": [item("a", "nobody")]})
    assert r.status == 422 and r.body["field"] == "jobs[0].dependsOn[0]", r.body
    r = await api.call("POST", "/v1/jobs", json=item("x", "a", onParentFailure="maybe"))
    assert r.status == 422 and "onParentFailure" in (r.body["field"] or ""), r.body
    r = await api.call("POST", "/v1/jobs", json=item("x", *["a"] * 2))
    assert r.status == 422, r.body
    r = await api.call("POST", "/v1/jobs", json=item("x", *[str(uuid.uuid4())] * 1001))
    assert r.status == 422, r.body
    assert await api.job_count() == 0
    # another owner's job is no job for a plain token (its existence is not revealed)
    bobs = await api.submit(token="other")
    r = await api.call("POST", "/v1/jobs", token="plain", json=item("x", bobs["id"]))
    assert r.status == 422 and r.body["field"] == "dependsOn[0]", r.body
    assert await api.job_count() == 1


async def test_cancel_of_a_waiting_job_is_immediate_and_cascades(api: Api) -> None:
    a, b, c = await batch(api, item("a"), item("b", "a"), item("c", "b"))
    r = await api.call("POST", f"/v1/jobs/{b}/cancel")
    assert r.status == 200 and r.body["status"] == "cancelled", r.body
    assert (await job(api, c))["status"] == "cancelled"
    assert (await job(api, a))["status"] == "queued"
    r = await api.call("GET", f"/v1/jobs/{c}/events")
    cancelled = [e for e in r.body["items"] if e["event"] == "cancelled"]
    assert cancelled and cancelled[0]["details"]["parentId"] == b


async def test_waiting_jobs_count_toward_the_queued_quota(
    api: Api, settings: Settings, pool: Any
) -> None:
    client, _app = await start_api(replace(settings, owner_max_queued=3), pool)
    try:
        token = api.tokens["plain"]
        body = {"jobs": [item("a"), item("b", "a"), item("c", "b")]}
        async with client.post(
            "/v1/jobs/batch", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            assert resp.status == 201, await resp.text()
        async with client.post(
            "/v1/jobs", json=item("d"), headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            assert resp.status == 429, await resp.text()
    finally:
        await client.close()
    assert await api.pool.fetchval("SELECT count(*) FROM jobs WHERE status = 'waiting'") == 2


async def test_retry_and_clone_keep_the_parents(api: Api) -> None:
    a, b = await batch(api, item("a"), item("b", "a"))
    r = await api.call("POST", f"/v1/jobs/{b}/cancel")
    assert r.status == 200
    r = await api.call("POST", f"/v1/jobs/{b}/retry")
    assert r.status == 201, r.body
    assert r.body["dependsOn"] == [a] and r.body["status"] == "waiting"
    retried = r.body["id"]
    assert (await job(api, retried))["status"] == "waiting"
    r = await api.call("POST", f"/v1/jobs/{b}/clone", json={})
    assert r.status == 201, r.body
    assert r.body["dependsOn"] == [a] and r.body["status"] == "waiting"
    await api.pool.execute("UPDATE jobs SET status = 'succeeded' WHERE id = $1", a)
    for j in (retried, r.body["id"]):
        assert (await job(api, j))["status"] == "queued"
