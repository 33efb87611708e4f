"""Metrics endpoints against a seeded set of jobs with known figures."""

from __future__ import annotations

import pytest

from jobserver.api.keys import METRICS_CACHE_KEY
from jobserver.config import Settings
from tests.api.conftest import Api, start_api
from tests.scheduler.helpers import insert_job

DAY = 86400.0


async def seed(api: Api) -> None:
    """echo: 2 succeeded 10 min ago (40 s and 80 s runs, 60 s and 20 s waits, the second on
    attempt 2), 1 succeeded 2 days ago, 1 succeeded 8 days ago, 1 queued, 1 running,
    1 cancelled; failing: 1 failed 2 h ago on attempt 3 (100 s run, 100 s wait)."""
    p = api.pool
    await insert_job(p, status="succeeded", created_ago=700, started_ago=640, finished_ago=600)
    await insert_job(
        p, status="succeeded", attempt=2, created_ago=700, started_ago=680, finished_ago=600
    )
    await insert_job(
        p,
        status="succeeded",
        created_ago=2 * DAY + 100,
        started_ago=2 * DAY + 50,
        finished_ago=2 * DAY,
    )
    await insert_job(p, status="succeeded", created_ago=8 * DAY + 10, finished_ago=8 * DAY)
    await insert_job(p, status="queued")
    await insert_job(p, status="running")
    await insert_job(p, status="cancelled", finished_ago=60)
    await insert_job(
        p,
        status="failed",
        definition_key="failing",
        attempt=3,
        created_ago=7400,
        started_ago=7300,
        finished_ago=7200,
    )


async def test_overview(api: Api) -> None:
    await seed(api)
    r = await api.call("GET", "/v1/metrics", token="view", params={"ttl": 0})
    assert r.status == 200, r.body
    assert r.body["summary"] == {
        "total": 8,
        "byStatus": {
            "queued": 1,
            "running": 1,
            "cancelling": 0,
            "succeeded": 4,
            "failed": 1,
            "cancelled": 1,
            "expired": 0,
            "waiting": 0,
        },
    }
    assert r.body["throughput"] == {"lastHour": 2, "lastDay": 3, "lastWeek": 4}
    perf = r.body["performance"]
    assert perf["successRate"] == 0.6667 and perf["retryRate"] == 0.6667
    assert perf["successRatePercent"] == 66.67 and perf["retryRatePercent"] == 66.67
    assert perf["avgProcessingTime"] == pytest.approx(220_000 / 3, abs=1)
    assert perf["avgQueueTime"] == pytest.approx(60_000, abs=1)


async def test_performance(api: Api) -> None:
    await seed(api)
    r = await api.call("GET", "/v1/metrics/performance", token="view", params={"ttl": 0})
    assert r.status == 200
    assert r.body["successRate"] == 0.6667 and r.body["windowHours"] == 24
    assert r.body["successRatePercent"] == 66.67


async def test_definitions(api: Api) -> None:
    await seed(api)
    r = await api.call("GET", "/v1/metrics/definitions", token="view", params={"ttl": 0})
    assert r.status == 200
    by_ref = {(d["definitionKey"], d["definitionVersion"]): d for d in r.body["definitions"]}
    echo, failing = by_ref[("echo", 1)], by_ref[("failing", 1)]
    assert echo["summary"]["total"] == 7 and echo["summary"]["byStatus"]["succeeded"] == 4
    assert echo["throughput"] == {"lastHour": 2, "lastDay": 2, "lastWeek": 3}
    assert echo["performance"]["successRate"] == 1.0
    assert echo["performance"]["retryRate"] == 0.5
    assert echo["total"] == 7 and echo["byStatus"] == echo["summary"]["byStatus"]
    assert echo["successRate"] == 1.0
    assert echo["avgProcessingTime"] == echo["performance"]["avgProcessingTime"]
    assert echo["avgQueueTime"] == echo["performance"]["avgQueueTime"]
    assert echo["performance"]["avgProcessingTime"] == pytest.approx(60_000, abs=1)
    assert echo["performance"]["avgQueueTime"] == pytest.approx(40_000, abs=1)
    assert failing["summary"]["byStatus"]["failed"] == 1
    assert failing["performance"]["successRate"] == 0.0 and failing["successRate"] == 0.0


async def test_throughput(api: Api) -> None:
    await seed(api)
    r = await api.call("GET", "/v1/metrics/throughput", token="view", params={"hours": 3})
    assert r.status == 200
    assert len(r.body["buckets"]) == 3 and r.body["totals"] == {"completed": 2, "failed": 1}
    hours = [b["hour"] for b in r.body["buckets"]]
    assert hours == sorted(hours)
    data = r.body["data"]
    assert [(d["completed"], d["failed"]) for d in data] == [
        (b["completed"], b["failed"]) for b in r.body["buckets"]
    ]
    assert all(d["period"].endswith(":00:00.000Z") for d in data)
    r = await api.call("GET", "/v1/metrics/throughput", token="view", params={"hours": 168})
    assert len(r.body["buckets"]) == 168 and r.body["totals"] == {"completed": 3, "failed": 1}


async def test_cache_ttl(api: Api) -> None:
    first = await api.call("GET", "/v1/metrics", token="view", params={"ttl": 60})
    await insert_job(api.pool, status="queued")
    cached = await api.call("GET", "/v1/metrics", token="view", params={"ttl": 60})
    assert cached.body == first.body  # served from the cache
    fresh = await api.call("GET", "/v1/metrics", token="view", params={"ttl": 0})
    assert fresh.body["summary"]["total"] == first.body["summary"]["total"] + 1


async def test_out_of_range_is_422(api: Api) -> None:
    for path, params, field in [
        ("/v1/metrics/throughput", {"hours": 0}, "hours"),
        ("/v1/metrics/throughput", {"hours": 169}, "hours"),
        ("/v1/metrics/throughput", {"hours": "x"}, "hours"),
        ("/v1/metrics", {"ttl": -1}, "ttl"),
        ("/v1/metrics/definitions", {"ttl": 1e9}, "ttl"),
        ("/v1/metrics/performance", {"nope": 1}, "nope"),
    ]:
        r = await api.call("GET", path, token="view", params=params)
        assert r.status == 422 and r.body["field"] == field, (path, params, r.body)
    assert (await api.call("GET", "/v1/metrics", token="plain")).status == 403


async def test_cache_belongs_to_the_app(api: Api, settings: Settings) -> None:
    """Two apps on one pool keep their own caches (the cache is on the app, not in the module)."""
    first = await api.call("GET", "/v1/metrics", token="view", params={"ttl": 60})
    assert METRICS_CACHE_KEY in api.app
    await insert_job(api.pool, status="queued")
    client, _ = await start_api(settings, api.pool)
    try:
        headers = {"Authorization": f"Bearer {api.tokens['view']}"}
        async with client.get("/v1/metrics", params={"ttl": "60"}, headers=headers) as resp:
            other = await resp.json()
    finally:
        await client.close()
    assert other["summary"]["total"] == first.body["summary"]["total"] + 1
    cached = await api.call("GET", "/v1/metrics", token="view", params={"ttl": 60})
    assert cached.body == first.body


async def test_a_slow_metrics_query_is_a_quick_503_and_frees_its_connection(
    api: Api, settings: Settings
) -> None:
    """With METRICS_STATEMENT_TIMEOUT_MS=50 and `jobs` locked by another session, every
    metrics route (and 30 concurrent ones, more than the pool's 10 connections) answers 503
    database_busy within a bounded time; once the lock goes, submissions and metrics answer."""
    import asyncio
    import time
    from dataclasses import replace

    from aiohttp import ClientTimeout

    client, _ = await start_api(
        replace(settings, metrics_statement_timeout_ms=50, host="127.0.0.1"), api.pool
    )
    auth = {"Authorization": f"Bearer {api.tokens['view']}"}
    paths = ["/v1/metrics", "/v1/metrics/definitions", "/v1/metrics/performance", "/metrics"]
    paths += ["/v1/metrics/throughput"]
    try:
        async with api.pool.acquire() as locker, locker.transaction():
            await locker.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()

            async def get(path: str) -> tuple[int, object]:
                async with client.get(path, headers=auth, timeout=ClientTimeout(total=10)) as r:
                    body = await (r.json() if r.content_type == "application/json" else r.text())
                    return r.status, body

            answers = await asyncio.gather(*(get(p) for p in paths * 6))
            took = time.monotonic() - started
        for status, body in answers:
            assert status == 503, body
            assert isinstance(body, dict) and body["code"] == "database_busy", body
        assert took < 5, took  # each waited 50 ms in PostgreSQL, not for the lock
        status, body = await get("/v1/metrics")
        assert status == 200, body
        r = await api.call("POST", "/v1/jobs", json={"definitionKey": "echo", "params": {}})
        assert r.status == 201
    finally:
        await client.close()


async def test_throughput_per_minute(api: Api) -> None:
    await seed(api)
    q = {"minutes": 15, "ttl": 0}
    r = await api.call("GET", "/v1/metrics/throughput/minutes", token="view", params=q)
    assert r.status == 200, r.body
    assert r.body["minutes"] == 15 and len(r.body["buckets"]) == 15
    assert r.body["totals"] == {"completed": 2, "failed": 0}  # the two of 10 minutes ago
    minutes = [b["minute"] for b in r.body["buckets"]]
    assert minutes == sorted(minutes)
    assert sum(b["completed"] for b in r.body["buckets"]) == 2
    q = {"minutes": 180, "ttl": 0}
    r = await api.call("GET", "/v1/metrics/throughput/minutes", token="view", params=q)
    assert len(r.body["buckets"]) == 180 and r.body["totals"] == {"completed": 2, "failed": 1}
    for bad in ({"minutes": 0}, {"minutes": 1441}, {"minutes": "x"}):
        r = await api.call("GET", "/v1/metrics/throughput/minutes", token="view", params=bad)
        assert r.status == 422 and r.body["field"] == "minutes", r.body
    r = await api.call("GET", "/v1/metrics/throughput/minutes", token="plain")
    assert r.status == 403
