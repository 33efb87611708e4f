"""Page numbers on the job list and the DLQ: `page` instead of `cursor`, the totals and their
cap, the largest offset, and answers without `page` left exactly as they were."""

from __future__ import annotations

from typing import Any

import pytest

from jobserver.api import paging
from jobserver.db.jobs import NewJob, job_insert_many
from tests.api.conftest import Api
from tests.scheduler.helpers import insert_job

NUMBERED = {"items", "nextCursor", "page", "limit", "total", "totalPages", "totalAtLeast"}
JOB_COUNTS = {"pendingCount", "runningCount", "countsAreEstimates"}  # the job list's own fields


async def _insert(api: Api, n: int, **fields: Any) -> None:
    async with api.pool.acquire() as conn:
        await job_insert_many(conn, [NewJob("echo", 1, 3, {"i": i}, **fields) for i in range(n)])


async def _get(api: Api, path: str, **params: Any) -> dict[str, Any]:
    r = await api.call("GET", path, params={k: str(v) for k, v in params.items()})
    assert r.status == 200, r.body
    return r.body


async def test_jobs_by_page_number(api: Api) -> None:
    await _insert(api, 7)
    by_cursor = await _get(api, "/v1/jobs", limit=100)
    assert set(by_cursor) == {"items", "nextCursor", *JOB_COUNTS}  # no page: no totals
    order = [j["jobId"] for j in by_cursor["items"]]
    seen: list[str] = []
    for page in (1, 2, 3):
        body = await _get(api, "/v1/jobs", page=page, limit=3)
        assert set(body) == NUMBERED | JOB_COUNTS
        assert (body["page"], body["limit"], body["total"], body["totalPages"]) == (
            page,
            3,
            7,
            3,
        )
        assert body["totalAtLeast"] == 7
        seen += [j["jobId"] for j in body["items"]]
        assert (body["nextCursor"] is None) == (page == 3)
    assert seen == order
    past = await _get(api, "/v1/jobs", page=9, limit=3)
    assert (past["items"], past["total"], past["totalPages"]) == ([], 7, 3)
    # the cursor of a numbered page carries on where it stopped
    second = await _get(api, "/v1/jobs", page=2, limit=3)
    rest = await _get(api, "/v1/jobs", cursor=second["nextCursor"], limit=100)
    assert [j["jobId"] for j in rest["items"]] == order[6:]


async def test_page_numbers_follow_filters_and_sort(api: Api) -> None:
    await _insert(api, 4, event="b")
    await _insert(api, 2, event="a", tags=["x"])
    await _insert(api, 3)
    body = await _get(api, "/v1/jobs", page=1, limit=2, sortBy="event", sortOrder="asc")
    assert [j["event"] for j in body["items"]] == ["a", "a"]
    assert (body["total"], body["totalPages"]) == (6, 3)  # only jobs with an event
    body = await _get(api, "/v1/jobs", page=1, limit=1, tag="x")
    assert (body["total"], body["totalPages"]) == (2, 2)
    empty = await _get(api, "/v1/jobs", page=1, limit=5, event="none")
    assert (empty["items"], empty["total"], empty["totalPages"]) == ([], 0, 0)


async def test_totals_stop_at_the_cap(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # the cap is a module constant: lowered here so the test inserts dozens, not 10,001 jobs
    monkeypatch.setattr(paging, "COUNT_CAP", 10)
    monkeypatch.setattr("jobserver.api.jobs.COUNT_LIMIT", 11)
    await _insert(api, 15)
    body = await _get(api, "/v1/jobs", page=1, limit=4)
    assert (body["total"], body["totalPages"], body["totalAtLeast"]) == (None, None, 10)
    assert len(body["items"]) == 4 and body["nextCursor"]
    last = await _get(api, "/v1/jobs", page=4, limit=4)  # a short last page knows its total
    assert (len(last["items"]), last["total"], last["totalPages"]) == (3, 15, 4)


async def test_real_cap_with_an_empty_page_counts_once(api: Api) -> None:
    await _insert(api, 3)
    body = await _get(api, "/v1/jobs", page=100, limit=100)  # offset 9,900: still allowed
    assert (body["items"], body["total"], body["totalAtLeast"]) == ([], 3, 3)


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/dlq", "/v1/schedules"])
async def test_page_and_cursor_together_and_past_the_offset_are_422(api: Api, path: str) -> None:
    r = await api.call("GET", path, params={"page": "1", "cursor": "abc"})
    assert (r.status, r.body["field"]) == (422, "page, cursor"), r.body
    r = await api.call("GET", path, params={"page": "101", "limit": "100"})
    assert (r.status, r.body["field"]) == (422, "page"), r.body
    assert "cursor" in r.body["error"]
    for bad in ("0", "-1", "x", "10001", "1.5"):
        r = await api.call("GET", path, params={"page": bad})
        assert (r.status, r.body["field"]) == (422, "page"), (bad, r.body)


async def test_dlq_by_page_number(api: Api) -> None:
    from jobserver.scheduler.rescuer import Rescuer

    for _ in range(5):
        await insert_job(
            api.pool, status="running", attempt=1, max_attempts=1, lease_offset=-1, worker_id="w"
        )
    assert (await Rescuer(api.pool).run_once())["failed"] == 5
    everything = await _get(api, "/v1/dlq")
    assert set(everything) == {"items", "nextCursor"}
    order = [d["id"] for d in everything["items"]]
    seen = []
    for page in (1, 2, 3):
        body = await _get(api, "/v1/dlq", page=page, limit=2)
        assert set(body) == NUMBERED
        assert (body["total"], body["totalPages"]) == (5, 3)
        seen += [d["id"] for d in body["items"]]
    assert seen == order
    body = await _get(api, "/v1/dlq", page=1, limit=2, redriven="true")
    assert (body["items"], body["total"]) == ([], 0)


async def test_schedules_by_page_number(api: Api) -> None:
    for i in range(5):
        body = {"name": f"s{i}", "everySeconds": 60, "definitionKey": "echo"}
        if i == 4:
            body["enabled"] = False
        r = await api.call("POST", "/v1/schedules", json=body)
        assert r.status == 201, r.body
    seen = []
    for page in (1, 2, 3):
        body = await _get(api, "/v1/schedules", page=page, limit=2)
        assert set(body) == NUMBERED
        assert (body["page"], body["total"], body["totalPages"]) == (page, 5, 3)
        seen += [s["name"] for s in body["items"]]
    assert seen == ["s0", "s1", "s2", "s3", "s4"]
    body = await _get(api, "/v1/schedules", page=1, limit=10, enabled="false")
    assert ([s["name"] for s in body["items"]], body["total"]) == (["s4"], 1)
    assert set(await _get(api, "/v1/schedules")) == {"items", "nextCursor"}
