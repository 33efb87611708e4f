"""Metrics handlers (`view_jobs`): job counts, throughput and performance computed from the DB.

- `GET /v1/metrics`: `summary` {total, byStatus}, `performance` {successRate, avgProcessingTime,
  avgQueueTime, retryRate} over jobs finished in the last 24 hours, `throughput` {lastHour,
  lastDay, lastWeek} = jobs finished (succeeded or failed) in each window.
- `GET /v1/metrics/definitions`: the same per definition key+version.
- `GET /v1/metrics/throughput?hours=24` (1..168): hourly buckets of `completed` (succeeded) and
  `failed`, oldest first, the current (partial) hour last.
- `GET /v1/metrics/throughput/minutes?minutes=60` (1..1440): the same per minute (the
  dashboard's last-hour chart).
- `GET /v1/metrics/performance`: the `performance` block alone.

Rates are fractions as the core reference documents them (`successRate` 0.875: 0-1, four
decimals; null with no finished job); `successRatePercent` and `retryRatePercent` keep the
percentages (0-100, two decimals) these fields answered before. Times are milliseconds.
`/v1/metrics/definitions` answers each definition's `total`, `byStatus`, `successRate`,
`avgProcessingTime` and `avgQueueTime` flat (the reference's shape) next to the nested blocks;
`/v1/metrics/throughput` answers the reference's `data` [{period, completed, failed}] next to
`buckets`.
Every route takes `ttl` (seconds, 0..86400; default METRICS_CACHE_TTL_MS): an answer computed
less than `ttl` seconds ago is served from the app's cache (`METRICS_CACHE_KEY`; `cachedAt`
says when it was computed); `ttl=0` recomputes. Cost: see `jobserver.db.metrics` (bounded,
indexed queries).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.jsonio import json_response
from jobserver.api.keys import METRICS_CACHE_KEY, QUERY_KEY, SETTINGS_KEY
from jobserver.api.read_replica import read_pool
from jobserver.db.metrics import (
    metrics_conn,
    metrics_status_counts,
    metrics_throughput,
    metrics_throughput_minutes,
    metrics_windows,
)
from jobserver.statuses import JOB_STATUSES


async def cached(
    request: web.Request, key: tuple[Any, ...], compute: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """`compute()` unless the app's metrics cache holds an answer younger than the ttl."""
    q = request[QUERY_KEY]
    ttl = q["ttl"] if "ttl" in q else request.app[SETTINGS_KEY].metrics_cache_ttl_ms / 1000
    return await request.app[METRICS_CACHE_KEY].get(key, ttl, compute)


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def _fraction(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _period(hour: datetime) -> str:
    """The reference's period stamp: `2024-01-01T10:00:00.000Z`."""
    return hour.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _performance(w: asyncpg.Record | None) -> dict[str, Any]:
    if w is None:
        return {
            "successRate": None,
            "avgProcessingTime": None,
            "avgQueueTime": None,
            "retryRate": None,
            "successRatePercent": None,
            "retryRatePercent": None,
            "windowHours": 24,
        }
    finished = w["day_succeeded"] + w["day_failed"]
    return {
        "successRate": _fraction(w["day_succeeded"], finished),
        "avgProcessingTime": _ms(w["avg_processing_ms"]),
        "avgQueueTime": _ms(w["avg_queue_ms"]),
        "retryRate": _fraction(w["day_retried"], finished),
        "successRatePercent": _pct(w["day_succeeded"], finished),
        "retryRatePercent": _pct(w["day_retried"], finished),
        "windowHours": 24,
    }


def _throughput(w: asyncpg.Record | None) -> dict[str, int]:
    if w is None:
        return {"lastHour": 0, "lastDay": 0, "lastWeek": 0}
    return {"lastHour": w["last_hour"], "lastDay": w["last_day"], "lastWeek": w["last_week"]}


def _summary(counts: dict[str, int]) -> dict[str, Any]:
    by_status = {s: counts.get(s, 0) for s in JOB_STATUSES}
    return {"total": sum(by_status.values()), "byStatus": by_status}


def _timeout_ms(request: web.Request) -> int:
    return request.app[SETTINGS_KEY].metrics_statement_timeout_ms


async def _overview(pool: asyncpg.Pool, timeout_ms: int) -> dict[str, Any]:
    counts: dict[str, int] = {}
    async with metrics_conn(pool, timeout_ms) as conn:
        status_counts = await metrics_status_counts(conn)
        windows = await metrics_windows(conn)
    for r in status_counts:
        counts[r["status"]] = counts.get(r["status"], 0) + r["n"]
    overall = next((w for w in windows if w["definition_key"] is None), None)
    return {
        "summary": _summary(counts),
        "performance": _performance(overall),
        "throughput": _throughput(overall),
    }


async def get_metrics(request: web.Request) -> web.Response:
    pool = read_pool(request)
    ms = _timeout_ms(request)
    return json_response(await cached(request, ("overview",), lambda: _overview(pool, ms)))


async def _definitions(pool: asyncpg.Pool, timeout_ms: int) -> dict[str, Any]:
    counts: dict[tuple[str, int], dict[str, int]] = {}
    async with metrics_conn(pool, timeout_ms) as conn:
        status_counts = await metrics_status_counts(conn)
        window_rows = await metrics_windows(conn)
    for r in status_counts:
        ref = (r["definition_key"], r["definition_version"])
        counts.setdefault(ref, {})[r["status"]] = r["n"]
    windows = {
        (w["definition_key"], w["definition_version"]): w
        for w in window_rows
        if w["definition_key"] is not None
    }
    items = []
    for ref in sorted(set(counts) | set(windows)):
        w = windows.get(ref)
        summary, performance = _summary(counts.get(ref, {})), _performance(w)
        items.append(
            {
                "definitionKey": ref[0],
                "definitionVersion": ref[1],
                "total": summary["total"],
                "byStatus": summary["byStatus"],
                "successRate": performance["successRate"],
                "avgProcessingTime": performance["avgProcessingTime"],
                "avgQueueTime": performance["avgQueueTime"],
                "summary": summary,
                "performance": performance,
                "throughput": _throughput(w),
            }
        )
    return {"definitions": items}


async def get_definitions(request: web.Request) -> web.Response:
    pool = read_pool(request)
    ms = _timeout_ms(request)
    return json_response(await cached(request, ("definitions",), lambda: _definitions(pool, ms)))


async def get_throughput(request: web.Request) -> web.Response:
    pool = read_pool(request)
    hours = request[QUERY_KEY].get("hours", 24)

    async def compute() -> dict[str, Any]:
        async with metrics_conn(pool, _timeout_ms(request)) as conn:
            rows = await metrics_throughput(conn, hours)
        buckets = [
            {"hour": r["hour"], "completed": r["completed"], "failed": r["failed"]} for r in rows
        ]
        return {
            "data": [
                {"period": _period(r["hour"]), "completed": r["completed"], "failed": r["failed"]}
                for r in rows
            ],
            "hours": hours,
            "buckets": buckets,
            "totals": {
                "completed": sum(b["completed"] for b in buckets),
                "failed": sum(b["failed"] for b in buckets),
            },
        }

    return json_response(await cached(request, ("throughput", hours), compute))


async def get_throughput_minutes(request: web.Request) -> web.Response:
    """Per-minute buckets for the dashboard's last-hour chart (the hourly route's finest grain
    is an hour)."""
    pool = read_pool(request)
    minutes = request[QUERY_KEY].get("minutes", 60)

    async def compute() -> dict[str, Any]:
        async with metrics_conn(pool, _timeout_ms(request)) as conn:
            rows = await metrics_throughput_minutes(conn, minutes)
        buckets = [
            {"minute": r["minute"], "completed": r["completed"], "failed": r["failed"]}
            for r in rows
        ]
        return {
            "minutes": minutes,
            "buckets": buckets,
            "totals": {
                "completed": sum(b["completed"] for b in buckets),
                "failed": sum(b["failed"] for b in buckets),
            },
        }

    return json_response(await cached(request, ("throughput-minutes", minutes), compute))


async def get_performance(request: web.Request) -> web.Response:
    pool = read_pool(request)

    async def compute() -> dict[str, Any]:
        async with metrics_conn(pool, _timeout_ms(request)) as conn:
            rows = await metrics_windows(conn)
        return _performance(next((w for w in rows if w["definition_key"] is None), None))

    return json_response(await cached(request, ("performance",), compute))
