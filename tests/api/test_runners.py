"""`GET /v1/runners` and `/v1/runners/{id}`: the fleet as the workers table records it."""

from __future__ import annotations

from jobserver.db.workers import worker_register, worker_set_status
from tests.api.conftest import Api


async def test_runners_list_live_first_with_held_jobs(api: Api) -> None:
    await worker_register(api.pool, "w-old", "host-a", 11, None, ["echo@1"], 4)
    await worker_set_status(api.pool, "w-old", "stopped")
    await worker_register(api.pool, "w-live", "host-b", 22, ["default"], ["echo@1"], 10)
    job = await api.submit()
    await api.pool.execute(
        "UPDATE jobs SET status = 'running', worker_id = 'w-live', attempt = 1 WHERE id = $1",
        job["jobId"],
    )

    r = await api.call("GET", "/v1/runners")
    assert r.status == 200, r.body
    assert [w["id"] for w in r.body["runners"]] == ["w-live", "w-old"]
    live, old = r.body["runners"]
    assert (live["host"], live["pid"], live["queues"], live["maxConcurrency"]) == (
        "host-b",
        22,
        ["default"],
        10,
    )
    assert (live["status"], live["held"], live["stoppedAt"]) == ("active", 1, None)
    assert (old["status"], old["held"]) == ("stopped", 0) and old["stoppedAt"] is not None

    r = await api.call("GET", "/v1/runners", params={"status": "stopped,gone"})
    assert [w["id"] for w in r.body["runners"]] == ["w-old"]
    r = await api.call("GET", "/v1/runners/w-live")
    assert r.status == 200 and r.body["held"] == 1


async def test_runners_errors_and_scope(api: Api) -> None:
    await worker_register(api.pool, "w1", "h", 1, None, [], 1)
    r = await api.call("GET", "/v1/runners", params={"status": "sleeping"})
    assert (r.status, r.body["field"]) == (422, "status[0]")
    r = await api.call("GET", "/v1/runners", params={"limit": "0"})
    assert (r.status, r.body["field"]) == (422, "limit")
    r = await api.call("GET", "/v1/runners/nope")
    assert (r.status, r.body["code"]) == (404, "not_found")
    for token in ("plain", "view"):
        assert (await api.call("GET", "/v1/runners", token=token)).status == 403
        assert (await api.call("GET", "/v1/runners/w1", token=token)).status == 403
    assert (await api.call("GET", "/v1/runners", token=None)).status == 401
