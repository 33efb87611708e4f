"""`GET /v1/logs`: every filter alone and combined, `level` as "at least", a literal text
search, newest first, stable paging (cursor and page numbers), 422s naming the field, and the
view_jobs scope. `log.message` submissions are checked like every other."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import pytest

from tests.api.conftest import Api

UTC = dt.UTC
T0 = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


async def add(
    pool: asyncpg.Pool,
    message: str,
    *,
    level: str = "info",
    category: str = "general",
    at: dt.datetime = T0,
    job_id: uuid.UUID | None = None,
    metadata: dict[str, Any] | None = None,
) -> int:
    """One audit row as a log.message job writes it, at a chosen time."""
    row_id: int = await pool.fetchval(
        "INSERT INTO audit_log (created_at, level, category, message, metadata, job_id, owner,"
        " definition) VALUES ($1, $2, $3, $4, $5, $6, 'alice', 'log.message@1') RETURNING id",
        at,
        level,
        category,
        message,
        metadata or {},
        job_id,
    )
    return row_id


async def logs(api: Api, token: str = "view", **params: Any) -> dict[str, Any]:
    r = await api.call(
        "GET", "/v1/logs", token=token, params={k: str(v) for k, v in params.items()}
    )
    assert r.status == 200, r.body
    return r.body


def messages(body: dict[str, Any]) -> list[str]:
    return [e["message"] for e in body["items"]]


async def test_an_entry_answers_every_field(api: Api) -> None:
    job_id = uuid.uuid4()
    row_id = await add(
        api.pool, "User login successful", level="warn", category="authentication",
        job_id=job_id, metadata={"userId": 123, "ip": "192.168.1.100"},
    )  # fmt: skip
    body = await logs(api)
    assert body == {
        "items": [
            {
                "id": row_id,
                "createdAt": "2026-12-01T12:00:00+00:00",
                "level": "warn",
                "category": "authentication",
                "message": "User login successful",
                "metadata": {"userId": 123, "ip": "192.168.1.100"},
                "jobId": str(job_id),
                "owner": "alice",
                "definition": "log.message@1",
            }
        ],
        "nextCursor": None,
    }


async def test_level_is_at_least(api: Api) -> None:
    for i, level in enumerate(("debug", "info", "warn", "error")):
        await add(api.pool, level, level=level, at=T0 + dt.timedelta(seconds=i))
    assert messages(await logs(api)) == ["error", "warn", "info", "debug"]
    assert messages(await logs(api, level="debug")) == ["error", "warn", "info", "debug"]
    assert messages(await logs(api, level="info")) == ["error", "warn", "info"]
    assert messages(await logs(api, level="warn")) == ["error", "warn"]
    assert messages(await logs(api, level="warning")) == ["error", "warn"]
    assert messages(await logs(api, level="error")) == ["error"]


async def test_each_filter_alone_and_combined(api: Api) -> None:
    job = uuid.uuid4()
    rows = [
        ("login failed for john", "warn", "auth", 0, None),
        ("login ok for john", "info", "auth", 60, job),
        ("invoice 7 sent", "info", "billing", 120, None),
        ("invoice 8 failed", "error", "billing", 180, None),
        ("LOGIN FAILED for eve", "error", "auth", 240, None),
    ]
    for message, level, category, seconds, job_id in rows:
        await add(
            api.pool, message, level=level, category=category,
            at=T0 + dt.timedelta(seconds=seconds), job_id=job_id,
        )  # fmt: skip
    at = (T0 + dt.timedelta(seconds=60)).isoformat()
    until = (T0 + dt.timedelta(seconds=180)).isoformat()
    assert messages(await logs(api, category="auth")) == [
        "LOGIN FAILED for eve",
        "login ok for john",
        "login failed for john",
    ]
    assert messages(await logs(api, q="login failed")) == [
        "LOGIN FAILED for eve",
        "login failed for john",
    ]
    assert messages(await logs(api, jobId=job)) == ["login ok for john"]
    # since is inclusive, until exclusive
    assert messages(await logs(api, since=at, until=until)) == [
        "invoice 7 sent",
        "login ok for john",
    ]
    assert messages(await logs(api, since=at)) == [
        "LOGIN FAILED for eve",
        "invoice 8 failed",
        "invoice 7 sent",
        "login ok for john",
    ]
    assert messages(await logs(api, until=at)) == ["login failed for john"]
    # combined: every condition holds
    assert messages(await logs(api, category="auth", level="warn")) == [
        "LOGIN FAILED for eve",
        "login failed for john",
    ]
    assert messages(await logs(api, category="auth", level="error", q="FAILED")) == [
        "LOGIN FAILED for eve"
    ]
    assert messages(await logs(api, category="billing", level="warn", since=at)) == [
        "invoice 8 failed"
    ]
    assert messages(await logs(api, category="billing", until=until, q="invoice")) == [
        "invoice 7 sent"
    ]
    assert messages(await logs(api, category="auth", jobId=job, level="warn")) == []
    assert messages(await logs(api, category="nothing")) == []
    # an offset other than Z means the same instant
    paris = (T0 + dt.timedelta(seconds=60)).astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert messages(await logs(api, until=paris.isoformat())) == ["login failed for john"]


async def test_text_search_escapes_wildcards(api: Api) -> None:
    for i, message in enumerate(["100% done", "1000 done", "a_b", "axb", "C:\\path", "C:path"]):
        await add(api.pool, message, at=T0 + dt.timedelta(seconds=i))
    assert messages(await logs(api, q="%")) == ["100% done"]
    assert messages(await logs(api, q="0%")) == ["100% done"]
    assert messages(await logs(api, q="_")) == ["a_b"]
    assert messages(await logs(api, q="a_b")) == ["a_b"]
    assert messages(await logs(api, q="\\")) == ["C:\\path"]
    assert messages(await logs(api, q="DONE")) == ["1000 done", "100% done"]


async def test_newest_first_and_paging_is_stable(api: Api) -> None:
    # ten rows, three of them sharing one instant: the id breaks the tie
    ids = [await add(api.pool, f"m{i}", at=T0 + dt.timedelta(seconds=min(i, 7))) for i in range(10)]
    expected = [f"m{i}" for i in (9, 8, 7, 6, 5, 4, 3, 2, 1, 0)]
    assert ids == sorted(ids)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        body = await logs(api, **params)
        seen += messages(body)
        # rows written meanwhile (newer ones) do not shift the pages
        await add(api.pool, "newer", at=T0 + dt.timedelta(hours=1))
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == expected
    # page numbers: the same order, with totals
    await api.pool.execute("DELETE FROM audit_log WHERE message = 'newer'")
    numbered: list[str] = []
    for page in (1, 2, 3, 4):
        body = await logs(api, page=page, limit=3)
        assert (body["page"], body["limit"], body["total"], body["totalPages"]) == (page, 3, 10, 4)
        numbered += messages(body)
    assert numbered == expected
    filtered = await logs(api, page=1, limit=2, q="m1")
    assert (messages(filtered), filtered["total"]) == (["m1"], 1)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"level": "loud"}, "level"),
        ({"level": "WARN"}, "level"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-12-01T12:00:00"}, "since"),  # no offset: not RFC 3339
        ({"since": "2026-12-01"}, "since"),
        ({"until": "2026-13-01T00:00:00Z"}, "until"),
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "until"),
        ({"since": "2026-12-01T00:00:00Z", "until": "2026-12-01T01:00:00+01:00"}, "until"),
        ({"jobId": "not-a-uuid"}, "jobId"),
        ({"category": "has space"}, "category"),
        ({"category": "x" * 101}, "category"),
        ({"q": ""}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"cursor": "bm9wZQ"}, "cursor"),
        ({"page": 0}, "page"),
        ({"page": 1, "cursor": "abc"}, "page, cursor"),
        ({"owner": "alice"}, "owner"),
    ],
)
async def test_bad_filters_are_422s_naming_the_field(
    api: Api, params: dict[str, Any], field: str
) -> None:
    r = await api.call("GET", "/v1/logs", token="view", params=params)
    assert r.status == 422, r.body
    assert r.body["field"] == field and r.body["code"] == "validation_error", r.body
    assert r.body["error"].startswith(field), r.body


async def test_a_cursor_of_another_list_is_refused(api: Api) -> None:
    for i in range(3):
        await api.submit()
        await add(api.pool, f"m{i}", at=T0 + dt.timedelta(seconds=i))
    jobs = await api.call("GET", "/v1/jobs", params={"limit": "1"})
    r = await api.call("GET", "/v1/logs", token="view", params={"cursor": jobs.body["nextCursor"]})
    assert (r.status, r.body["field"]) == (422, "cursor")


async def test_scopes(api: Api) -> None:
    await add(api.pool, "secretless")
    for token, status in (("plain", 403), ("other", 403), ("view", 200), ("manage", 200)):
        r = await api.call("GET", "/v1/logs", token=token)
        assert r.status == status, (token, r.body)
        if status == 403:
            assert r.body["code"] == "forbidden"
    r = await api.call("GET", "/v1/logs", token=None)
    assert r.status == 401


async def test_log_message_submissions_are_checked(api: Api) -> None:
    ok = await api.call(
        "POST",
        "/v1/jobs",
        token="plain",
        json={
            "definitionKey": "log.message",
            "params": {
                "level": "warning",
                "message": "User {{params.metadata.user}} logged in",
                "metadata": {"user": "john"},
                "category": "authentication",
            },
        },
    )
    assert ok.status == 201, ok.body  # not outbound: any token submits it
    for params, field in [
        ({"message": "hi", "level": "fatal"}, "params.level"),
        ({"message": "hi", "category": "two words"}, "params.category"),
        ({"message": "hi", "metadata": {"blob": "x" * 20000}}, "params.metadata"),
        ({"message": "hi {{params.nope}}"}, "params.message"),
        ({"message": "hi", "metadata": "text"}, "params.metadata"),
        ({"level": "info"}, "params.message"),
    ]:
        r = await api.call(
            "POST", "/v1/jobs", json={"definitionKey": "log.message", "params": params}
        )
        assert r.status == 422, (params, r.body)
        assert r.body["field"] == field, (params, r.body)
    assert await api.job_count() == 1
