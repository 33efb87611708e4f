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
    assert [w["id"] for w in r.body["items"]] == ["w-live", "w-old"]
    assert r.body["nextCursor"] is None
    live, old = r.body["items"]
    assert (live["host"], live["pid"], live["queues"], live["maxConcurrency"]) == (
        "host-b",
        22,
        ["default"],
        10,
    )
    assert (live["status"], live["held"], live["stoppedAt"]) == ("active", 1, None)
    assert (old["status"], old["held"]) == ("stopped", 0) and old["stoppedAt"] is not None

    r = await api.call("GET", "/v1/runners", params={"status": "stopped,gone"})
    assert [w["id"] for w in r.body["items"]] == ["w-old"]
    # one page at a time, in the same order: live first, then the most recently seen
    for n in range(3):
        await worker_register(api.pool, f"w-gone-{n}", "h", n, None, [], 1)
        await worker_set_status(api.pool, f"w-gone-{n}", "stopped")
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        r = await api.call("GET", "/v1/runners", params=params)
        seen += [w["id"] for w in r.body["items"]]
        cursor = r.body["nextCursor"]
        if cursor is None:
            break
    assert seen[0] == "w-live" and sorted(seen[1:]) == ["w-gone-0", "w-gone-1", "w-gone-2", "w-old"]
    assert seen[1:4] == ["w-gone-2", "w-gone-1", "w-gone-0"]  # most recently seen first
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
    # listing is view_jobs (commands to runners are manage_jobs: tests/api/test_control.py)
    assert (await api.call("GET", "/v1/runners", token="plain")).status == 403
    assert (await api.call("GET", "/v1/runners/w1", token="plain")).status == 403
    assert (await api.call("GET", "/v1/runners", token="view")).status == 200
    assert (await api.call("GET", "/v1/runners/w1", token="view")).status == 200
    assert (await api.call("GET", "/v1/runners", token=None)).status == 401
