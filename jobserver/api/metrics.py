"""Metrics routes (`view_jobs`): job counts, throughput and performance computed from the DB.

- `GET /v1/metrics`: `summary` {total, byStatus}, `performance` {successRate, avgProcessingTime,
  avgQueueTime, retryRate} over jobs finished in the last 24 hours, `throughput` {lastHour,
  lastDay, lastWeek} = jobs finished (succeeded or failed) in each window.
- `GET /v1/metrics/definitions`: the same per definition key+version.
- `GET /v1/metrics/throughput?hours=24` (1..168): hourly buckets of `completed` (succeeded) and
  `failed`, oldest first, the current (partial) hour last.
- `GET /v1/metrics/performance`: the `performance` block alone.

Rates are percentages (0-100, two decimals; null with no finished job), times milliseconds.
Every route takes `ttl` (seconds, 0..86400; default METRICS_CACHE_TTL_MS): an answer computed
less than `ttl` seconds ago is served from an in-process cache (`cachedAt` says when it was
computed); `ttl=0` recomputes. Cost: see `jobserver.db.metrics` (bounded, indexed queries).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.jsonio import json_response
from jobserver.api.keys import POOL_KEY, QUERY_KEY, SETTINGS_KEY
from jobserver.api.routing import Route
from jobserver.db.metrics import metrics_status_counts, metrics_throughput, metrics_windows
from jobserver.statuses import JOB_STATUSES

CACHE_MAX = 256
_cache: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}


async def cached(
    request: web.Request, key: tuple[Any, ...], compute: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """`compute()` unless a result younger than the request's ttl exists for `key`."""
    q = request[QUERY_KEY]
    settings = request.app[SETTINGS_KEY]
    ttl = q["ttl"] if "ttl" in q else settings.metrics_cache_ttl_ms / 1000
    full_key = (settings.database_url, id(request.app[POOL_KEY]), *key)
    now = time.monotonic()
    hit = _cache.get(full_key)
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    value = await compute()
    value["cachedAt"] = dt.datetime.now(dt.UTC)
    if len(_cache) >= CACHE_MAX:
        _cache.clear()
    _cache[full_key] = (now, value)
    return value


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _performance(w: asyncpg.Record | None) -> dict[str, Any]:
    if w is None:
        return {
            "successRate": None,
            "avgProcessingTime": None,
            "avgQueueTime": None,
            "retryRate": None,
            "windowHours": 24,
        }
    finished = w["day_succeeded"] + w["day_failed"]
    return {
        "successRate": _pct(w["day_succeeded"], finished),
        "avgProcessingTime": _ms(w["avg_processing_ms"]),
        "avgQueueTime": _ms(w["avg_queue_ms"]),
        "retryRate": _pct(w["day_retried"], finished),
        "windowHours": 24,
    }


def _throughput(w: asyncpg.Record | None) -> dict[str, int]:
    if w is None:
        return {"lastHour": 0, "lastDay": 0, "lastWeek": 0}
    return {"lastHour": w["last_hour"], "lastDay": w["last_day"], "lastWeek": w["last_week"]}


def _summary(counts: dict[str, int]) -> dict[str, Any]:
    by_status = {s: counts.get(s, 0) for s in JOB_STATUSES}
    return {"total": sum(by_status.values()), "byStatus": by_status}


async def _overview(pool: asyncpg.Pool) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for r in await metrics_status_counts(pool):
        counts[r["status"]] = counts.get(r["status"], 0) + r["n"]
    overall = next((w for w in await metrics_windows(pool) if w["definition_key"] is None), None)
    return {
        "summary": _summary(counts),
        "performance": _performance(overall),
        "throughput": _throughput(overall),
    }


async def get_metrics(request: web.Request) -> web.Response:
    pool = request.app[POOL_KEY]
    return json_response(await cached(request, ("overview",), lambda: _overview(pool)))


async def _definitions(pool: asyncpg.Pool) -> dict[str, Any]:
    counts: dict[tuple[str, int], dict[str, int]] = {}
    for r in await metrics_status_counts(pool):
        ref = (r["definition_key"], r["definition_version"])
        counts.setdefault(ref, {})[r["status"]] = r["n"]
    windows = {
        (w["definition_key"], w["definition_version"]): w
        for w in await metrics_windows(pool)
        if w["definition_key"] is not None
    }
    items = []
    for ref in sorted(set(counts) | set(windows)):
        w = windows.get(ref)
        items.append(
            {
                "definitionKey": ref[0],
                "definitionVersion": ref[1],
                "summary": _summary(counts.get(ref, {})),
                "performance": _performance(w),
                "throughput": _throughput(w),
            }
        )
    return {"definitions": items}


async def get_definitions(request: web.Request) -> web.Response:
    pool = request.app[POOL_KEY]
    return json_response(await cached(request, ("definitions",), lambda: _definitions(pool)))


async def get_throughput(request: web.Request) -> web.Response:
    pool = request.app[POOL_KEY]
    hours = request[QUERY_KEY].get("hours", 24)

    async def compute() -> dict[str, Any]:
        rows = await metrics_throughput(pool, hours)
        buckets = [
            {"hour": r["hour"], "completed": r["completed"], "failed": r["failed"]} for r in rows
        ]
        return {
            "hours": hours,
            "buckets": buckets,
            "totals": {
                "completed": sum(b["completed"] for b in buckets),
                "failed": sum(b["failed"] for b in buckets),
            },
        }

    return json_response(await cached(request, ("throughput", hours), compute))


async def get_performance(request: web.Request) -> web.Response:
    pool = request.app[POOL_KEY]

    async def compute() -> dict[str, Any]:
        rows = await metrics_windows(pool)
        return _performance(next((w for w in rows if w["definition_key"] is None), None))

    return json_response(await cached(request, ("performance",), compute))


TTL = {"type": "number", "minimum": 0, "maximum": 86400, "description": "cache seconds"}
TTL_QUERY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"ttl": TTL},
}
THROUGHPUT_QUERY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "ttl": TTL,
        "hours": {"type": "integer", "minimum": 1, "maximum": 168, "default": 24},
    },
}
PERFORMANCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "successRate": {"type": ["number", "null"]},
        "avgProcessingTime": {"type": ["number", "null"]},
        "avgQueueTime": {"type": ["number", "null"]},
        "retryRate": {"type": ["number", "null"]},
        "windowHours": {"type": "integer"},
    },
}

ROUTES = [
    Route(
        "GET",
        "/v1/metrics",
        get_metrics,
        "view_jobs",
        "Job counts by status, performance (24 h) and throughput",
        query_schema=TTL_QUERY,
        tags=("metrics",),
    ),
    Route(
        "GET",
        "/v1/metrics/definitions",
        get_definitions,
        "view_jobs",
        "The /v1/metrics figures per definition key and version",
        query_schema=TTL_QUERY,
        tags=("metrics",),
    ),
    Route(
        "GET",
        "/v1/metrics/throughput",
        get_throughput,
        "view_jobs",
        "Hourly completed and failed jobs over the last `hours` (1..168)",
        query_schema=THROUGHPUT_QUERY,
        tags=("metrics",),
    ),
    Route(
        "GET",
        "/v1/metrics/performance",
        get_performance,
        "view_jobs",
        "Success rate, average processing/queue time and retry rate (24 h)",
        query_schema=TTL_QUERY,
        response_schema=PERFORMANCE_SCHEMA,
        tags=("metrics",),
    ),
]
