"""One-off timing over the API: `expiresIn` in its forms, its conflict with `expiresAt`, an
`expiresAt` not after the run time, and DEFAULT_EXPIRES_DURATION for REST and Python
submissions."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from jobserver.config import Settings
from jobserver.core.errors import RuleError
from jobserver.publish import enqueue
from tests.api.conftest import Api, register_definitions, start_api

UTC = dt.UTC


def _ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


@pytest.mark.parametrize(
    ("expires_in", "seconds"),
    [
        (90, 90),
        (2.5, 2.5),
        ("90s", 90),
        ("15m", 900),
        ("24h", 86400),
        ("7d", 604800),
        ("1h30m", 5400),
    ],
)
async def test_expires_in_forms(api: Api, expires_in: Any, seconds: float) -> None:
    job = await api.submit(expiresIn=expires_in)
    row = await api.pool.fetchrow("SELECT run_at, expires_at FROM jobs WHERE id = $1", job["jobId"])
    assert abs((row["expires_at"] - row["run_at"]).total_seconds() - seconds) < 0.1
    assert _ts(job["expiresAt"]) == row["expires_at"]


async def test_expires_in_counts_from_run_at(api: Api) -> None:
    at = (dt.datetime.now(UTC) + dt.timedelta(hours=3)).replace(microsecond=0)
    job = await api.submit(runAt=at.isoformat(), expiresIn="30m")
    assert _ts(job["expiresAt"]) == at + dt.timedelta(minutes=30)
    delayed = await api.submit(delaySeconds=600, expiresIn=60)
    assert _ts(delayed["expiresAt"]) - _ts(delayed["runAt"]) == dt.timedelta(seconds=60)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"expiresIn": "soon"}, "expiresIn"),
        ({"expiresIn": "30m1h"}, "expiresIn"),
        ({"expiresIn": 0}, "expiresIn"),
        ({"expiresIn": -5}, "expiresIn"),
        ({"expiresIn": True}, "expiresIn"),
        ({"expiresIn": None}, "expiresIn"),
        ({"expiresIn": "3651d"}, "expiresIn"),
        ({"expiresIn": 60, "expiresAt": "2999-01-01T00:00:00Z"}, "expiresAt, expiresIn"),
    ],
)
async def test_bad_expiry_is_422_naming_the_field_and_writes_nothing(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    body = {"definitionKey": "echo", **fields}
    r = await api.call("POST", "/v1/jobs", json=body)
    assert (r.status, r.body["field"]) == (422, field), r.body
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": [{"definitionKey": "echo"}, body]})
    assert r.status == 422 and r.body["field"].startswith("jobs[1]."), r.body
    assert await api.job_count() == 0


async def test_both_expiries_name_both_in_the_message(api: Api) -> None:
    r = await api.call(
        "POST",
        "/v1/jobs",
        json={"definitionKey": "echo", "expiresIn": 60, "expiresAt": "2999-01-01T00:00:00Z"},
    )
    assert "expiresAt" in r.body["error"] and "expiresIn" in r.body["error"]


async def test_expires_at_not_after_run_at_names_both_values(api: Api) -> None:
    at = "2031-06-01T10:00:00+00:00"
    for expires in (at, "2031-06-01T09:00:00+00:00"):
        r = await api.call(
            "POST", "/v1/jobs", json={"definitionKey": "echo", "runAt": at, "expiresAt": expires}
        )
        assert (r.status, r.body["field"]) == (422, "expiresAt"), r.body
        assert at in r.body["error"] and expires in r.body["error"], r.body
    past = "2001-01-01T00:00:00+00:00"
    r = await api.call("POST", "/v1/jobs", json={"definitionKey": "echo", "expiresAt": past})
    assert r.status == 422 and past in r.body["error"] and "now" in r.body["error"]
    assert await api.job_count() == 0


async def test_default_expires_duration_applies_to_rest_submissions(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    await register_definitions(pool)
    client, _ = await start_api(
        replace(settings, auth="disabled", default_expires_duration="2h"), pool
    )
    try:

        async def post(path: str, body: Any) -> Any:
            async with client.post(path, json=body) as resp:
                assert resp.status == 201, await resp.text()
                return await resp.json()

        job = await post("/v1/jobs", {"definitionKey": "echo", "delaySeconds": 60})
        assert _ts(job["expiresAt"]) - _ts(job["runAt"]) == dt.timedelta(hours=2)
        own = await post("/v1/jobs", {"definitionKey": "echo", "expiresIn": "5m"})
        gap = (_ts(own["expiresAt"]) - _ts(own["runAt"])).total_seconds()
        assert abs(gap - 300) < 1, gap  # run_at is the database's now(), the expiry ours
        batch = await post("/v1/jobs/batch", {"jobs": [{"definitionKey": "echo"}] * 2})
        rows = await pool.fetch(
            "SELECT run_at, expires_at FROM jobs WHERE id = ANY($1::uuid[])", batch["jobIds"]
        )
        for row in rows:
            gap = (row["expires_at"] - row["run_at"]).total_seconds()
            assert abs(gap - 7200) < 1, gap
    finally:
        await client.close()


async def test_python_enqueue_takes_labels_and_expiry(pool: asyncpg.Pool) -> None:
    await register_definitions(pool)
    async with pool.acquire() as conn:
        async with conn.transaction():
            job = await enqueue(
                conn,
                "echo",
                {"message": "hi"},
                version=1,
                event="signup",
                tags=["eu"],
                expires_in="15m",
            )
        stored = await conn.fetchrow(
            "SELECT event, tags, run_at, expires_at FROM jobs WHERE id = $1", job.id
        )
        assert (stored["event"], stored["tags"]) == ("signup", ["eu"])
        assert abs((stored["expires_at"] - stored["run_at"]).total_seconds() - 900) < 1
        defaulted = await enqueue(conn, "echo", default_expires=dt.timedelta(days=7))
        assert defaulted.expires_at is not None
        assert defaulted.expires_at - dt.datetime.now(UTC) > dt.timedelta(days=6)
        at = dt.datetime.now(UTC) + dt.timedelta(hours=1)
        planned = await enqueue(conn, "echo", run_at=at)
        assert planned.scheduled_for == at
        for kwargs, field in (
            ({"tags": ["a", "a"]}, "tags"),
            ({"event": ""}, "event"),
            ({"expires_in": 5, "expires_at": at + dt.timedelta(hours=1)}, "expiresAt, expiresIn"),
            ({"colour": "red"}, "colour"),
        ):
            with pytest.raises(RuleError) as e:
                await enqueue(conn, "echo", **kwargs)
            assert e.value.field == field
        with pytest.raises(RuleError) as e:
            await enqueue(conn, "strict", {"name": "x"})
        assert e.value.field.startswith("params")
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 3
