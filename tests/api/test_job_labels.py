"""Jobs' labels and what their answers say: `event` and `tags` stored and shown, the list's
`event` / `tag` / `scheduleName` filters and `sortBy=event`, `finishReason`, `isScheduled`
and `isRecurring`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from jobserver.api.schemas import JOB_DETAIL
from jobserver.db.jobs import NewJob, job_insert_many
from tests.api.conftest import Api
from tests.scheduler.helpers import insert_job

UTC = dt.UTC


async def _list(api: Api, **params: Any) -> dict[str, Any]:
    r = await api.call("GET", "/v1/jobs", params=params)
    assert r.status == 200, r.body
    return r.body


async def test_event_and_tags_are_stored_and_shown(api: Api) -> None:
    job = await api.submit(event="user.signup", tags=["eu", "vip"])
    assert (job["event"], job["tags"]) == ("user.signup", ["eu", "vip"])
    row = await api.pool.fetchrow("SELECT event, tags FROM jobs WHERE id = $1", job["jobId"])
    assert (row["event"], row["tags"]) == ("user.signup", ["eu", "vip"])
    got = (await api.call("GET", f"/v1/jobs/{job['jobId']}")).body
    assert (got["event"], got["tags"]) == ("user.signup", ["eu", "vip"])
    assert set(got) == set(JOB_DETAIL["properties"])
    plain = await api.submit()
    assert (plain["event"], plain["tags"]) == (None, None)
    row = await api.pool.fetchrow("SELECT event, tags FROM jobs WHERE id = $1", plain["jobId"])
    assert (row["event"], row["tags"]) == (None, None)


async def test_batch_stores_labels_of_some_jobs_and_null_for_the_others(api: Api) -> None:
    jobs = [
        {"definitionKey": "echo", "event": "a", "tags": ["x", "y"]},
        {"definitionKey": "echo"},
        {"definitionKey": "echo", "tags": ["y"]},
        {"definitionKey": "echo", "event": "b", "tags": []},
    ]
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": jobs})
    assert r.status == 201, r.body
    rows = await api.pool.fetch(
        "SELECT id, event, tags FROM jobs WHERE id = ANY($1::uuid[])", r.body["jobIds"]
    )
    by_id = {str(x["id"]): (x["event"], x["tags"]) for x in rows}
    assert [by_id[i] for i in r.body["jobIds"]] == [
        ("a", ["x", "y"]),
        (None, None),
        (None, ["y"]),
        ("b", None),  # no tags: stored as none
    ]
    same = [{"definitionKey": "echo", "tags": ["t1", "t2"]}] * 3  # one scalar for all
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": same})
    assert r.status == 201
    tags = await api.pool.fetch(
        "SELECT tags FROM jobs WHERE id = ANY($1::uuid[])", r.body["jobIds"]
    )
    assert [t["tags"] for t in tags] == [["t1", "t2"]] * 3


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"event": ""}, "event"),
        ({"event": "x" * 201}, "event"),
        ({"event": "bad\nname"}, "event"),
        ({"event": 5}, "event"),
        ({"tags": "eu"}, "tags"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"tags": ["a", "a"]}, "tags"),
        ({"tags": [""]}, "tags[0]"),
        ({"tags": ["ok", "x" * 101]}, "tags[1]"),
        ({"tags": ["a,b"]}, "tags[0]"),
        ({"tags": ["tab\there"]}, "tags[0]"),
        ({"tags": [3]}, "tags[0]"),
    ],
)
async def test_bad_labels_are_422_naming_the_field_and_write_nothing(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    body = {"definitionKey": "echo", **fields}
    r = await api.call("POST", "/v1/jobs", json=body)
    assert (r.status, r.body["field"]) == (422, field), r.body
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": [{"definitionKey": "echo"}, body]})
    assert (r.status, r.body["field"]) == (422, f"jobs[1].{field}"), r.body
    assert await api.job_count() == 0


async def test_labels_are_part_of_the_idempotency_fingerprint(api: Api) -> None:
    first = await api.submit(idempotencyKey="k1", event="e", tags=["a"])
    again = await api.call(
        "POST",
        "/v1/jobs",
        json={
            "definitionKey": "echo",
            "definitionVersion": 1,
            "params": {"message": "hi"},
            "idempotencyKey": "k1",
            "event": "e",
            "tags": ["a"],
        },
    )
    assert (again.status, again.body["jobId"], again.body["tags"]) == (200, first["jobId"], ["a"])
    other = await api.call(
        "POST",
        "/v1/jobs",
        json={
            "definitionKey": "echo",
            "definitionVersion": 1,
            "params": {"message": "hi"},
            "idempotencyKey": "k1",
            "event": "e",
            "tags": ["b"],
        },
    )
    assert other.status == 409


async def test_filters_by_event_every_tag_and_schedule(api: Api) -> None:
    a = await api.submit(event="signup", tags=["eu", "vip"])
    b = await api.submit(event="signup", tags=["eu"])
    c = await api.submit(event="refund", tags=["vip", "eu", "late"])
    await api.submit()
    fired = await insert_job(api.pool, schedule_name="nightly")
    await insert_job(api.pool, schedule_name="hourly")

    def ids(body: dict[str, Any]) -> set[str]:
        return {j["jobId"] for j in body["items"]}

    assert ids(await _list(api, event="signup")) == {a["jobId"], b["jobId"]}
    assert ids(await _list(api, tag="eu")) == {a["jobId"], b["jobId"], c["jobId"]}
    assert ids(await _list(api, tag="eu,vip")) == {a["jobId"], c["jobId"]}
    both = await api.call("GET", "/v1/jobs", params=[("tag", "vip"), ("tag", "late")])
    assert ids(both.body) == {c["jobId"]}
    assert ids(await _list(api, event="signup", tag="vip")) == {a["jobId"]}
    assert ids(await _list(api, event="nothing")) == set()
    assert ids(await _list(api, scheduleName="nightly")) == {str(fired)}
    counted = await api.call("GET", "/v1/jobs/count", params={"tag": "vip"})
    assert counted.body == {"total": 2, "isEstimate": False}
    other = await api.call("GET", "/v1/jobs", token="plain", params={"event": "signup"})
    assert other.body["items"] == []  # a plain token still sees only its own


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"event": ""}, "event"),
        ({"event": "x" * 201}, "event"),
        ({"tag": "x" * 101}, "tag[0]"),
        ({"tag": ",".join(f"t{i}" for i in range(21))}, "tag"),
        ({"scheduleName": ""}, "scheduleName"),
        ({"sortBy": "tags"}, "sortBy"),
    ],
)
async def test_bad_filters_are_422_naming_the_field(
    api: Api, params: dict[str, str], field: str
) -> None:
    r = await api.call("GET", "/v1/jobs", params=params)
    assert (r.status, r.body["field"]) == (422, field), r.body


async def test_sort_by_event_pages_by_cursor_and_lists_only_jobs_with_one(api: Api) -> None:
    events = ["delta", "alpha", "charlie", "alpha", "bravo", "echo", "alpha"]
    made = [await api.submit(event=e) for e in events]
    await api.submit()  # no event: not in event order
    expected = sorted(((j["event"], j["jobId"]) for j in made), key=lambda p: (p[0], p[1]))
    for order, want in (("asc", expected), ("desc", expected[::-1])):
        seen: list[tuple[str, str]] = []
        cursor = None
        for _ in range(10):
            params = {"sortBy": "event", "sortOrder": order, "limit": "3"}
            if cursor:
                params["cursor"] = cursor
            body = await _list(api, **params)
            seen += [(j["event"], j["jobId"]) for j in body["items"]]
            cursor = body["nextCursor"]
            if cursor is None:
                break
        assert seen == want, order
    wrong = await _list(api, sortBy="event", limit="3")
    r = await api.call("GET", "/v1/jobs", params={"cursor": wrong["nextCursor"]})
    assert (r.status, r.body["field"]) == (422, "cursor")


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled", "expired"])
async def test_finish_reason_is_the_terminal_status(api: Api, status: str) -> None:
    job_id = await insert_job(api.pool, status=status)
    body = (await api.call("GET", f"/v1/jobs/{job_id}")).body
    assert body["finishReason"] == status


@pytest.mark.parametrize("status", ["queued", "running", "cancelling"])
async def test_no_finish_reason_before_the_end(api: Api, status: str) -> None:
    job_id = await insert_job(api.pool, status=status)
    body = (await api.call("GET", f"/v1/jobs/{job_id}")).body
    assert body["finishReason"] is None


async def test_cancelled_through_the_api_says_cancelled(api: Api) -> None:
    job = await api.submit()
    assert job["finishReason"] is None
    r = await api.call("POST", f"/v1/jobs/{job['jobId']}/cancel")
    assert r.body["finishReason"] == "cancelled"


async def test_is_scheduled_and_is_recurring(api: Api) -> None:
    now = await api.submit()
    assert (now["isScheduled"], now["isRecurring"], now["scheduledFor"]) == (False, False, None)
    soon = await api.submit(delaySeconds=0.5)  # within a second: runs "now"
    assert soon["isScheduled"] is False
    later = await api.submit(delaySeconds=60)
    assert (later["isScheduled"], later["isRecurring"]) == (True, False)
    assert later["scheduledFor"] == later["runAt"]
    at = (dt.datetime.now(UTC) + dt.timedelta(hours=2)).replace(microsecond=0)
    planned = await api.submit(runAt=at.isoformat())
    got = (await api.call("GET", f"/v1/jobs/{planned['jobId']}")).body
    assert (got["isScheduled"], dt.datetime.fromisoformat(got["scheduledFor"])) == (True, at)
    # a retry moves run_at: the job still says it was scheduled for the time asked
    await api.pool.execute(
        "UPDATE jobs SET run_at = now() + interval '1 day', attempt = 1 WHERE id = ANY($1::uuid[])",
        [later["jobId"], now["jobId"]],
    )
    got = (await api.call("GET", f"/v1/jobs/{later['jobId']}")).body
    assert got["isScheduled"] is True and got["scheduledFor"] != got["runAt"]
    retried_now = (await api.call("GET", f"/v1/jobs/{now['jobId']}")).body
    assert retried_now["isScheduled"] is False
    fired = await insert_job(api.pool, schedule_name="every-minute")
    got = (await api.call("GET", f"/v1/jobs/{fired}")).body
    assert (got["isScheduled"], got["isRecurring"], got["scheduleName"]) == (
        True,
        True,
        "every-minute",
    )


async def test_a_schedule_fire_shows_its_schedule_and_fire_time(api: Api) -> None:
    fire = dt.datetime(2030, 1, 1, 3, tzinfo=UTC)
    async with api.pool.acquire() as conn:
        [job_id] = await job_insert_many(
            conn, [NewJob("echo", 1, 3, schedule_name="nightly", scheduled_for=fire)]
        )
    got = (await api.call("GET", f"/v1/jobs/{job_id}")).body
    assert got["scheduleName"] == "nightly"
    assert dt.datetime.fromisoformat(got["scheduledFor"]) == fire
    assert (got["isScheduled"], got["isRecurring"]) == (True, True)
    listed = await _list(api, scheduleName="nightly")
    assert [j["jobId"] for j in listed["items"]] == [str(job_id)]
