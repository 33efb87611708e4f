"""`GET /v1/runners`, `GET /v1/runners/{id}`: the worker processes of the fleet (manage_jobs).

Each worker records itself in `workers` at start (host, pid, queues, definitions, concurrency)
and on every heartbeat (last seen, running count); the scheduler marks one not seen for three
heartbeats `gone`. `held` is counted from `jobs` at read time, so it includes jobs the worker
claimed into its local buffer.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.errors import invalid, not_found
from jobserver.api.jsonio import json_response
from jobserver.api.keys import POOL_KEY, QUERY_KEY
from jobserver.api.routing import Route
from jobserver.db.workers import WORKER_STATUSES, worker_get, worker_list


def runner_json(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"],
        "host": r["host"],
        "pid": r["pid"],
        "status": r["status"],
        "queues": r["queues"],
        "definitions": r["definitions"],
        "maxConcurrency": r["max_concurrency"],
        "running": r["running"],
        "held": r["held"],
        "startedAt": r["started_at"],
        "lastSeenAt": r["last_seen_at"],
        "stoppedAt": r["stopped_at"],
    }


async def list_runners(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    statuses = q.get("status", [])
    for s in statuses:
        if s not in WORKER_STATUSES:
            raise invalid("status", f"unknown status {s!r}: expected {', '.join(WORKER_STATUSES)}")
    limit, offset = q.get("limit", 100), q.get("offset", 0)
    rows = await worker_list(
        request.app[POOL_KEY], statuses=sorted(set(statuses)), limit=limit, offset=offset
    )
    return json_response(
        {"runners": [runner_json(r) for r in rows], "limit": limit, "offset": offset}
    )


async def get_runner(request: web.Request) -> web.Response:
    runner_id = request.match_info.get("id", "")
    row = await worker_get(request.app[POOL_KEY], runner_id) if len(runner_id) <= 300 else None
    if row is None:
        raise not_found("runner")
    return json_response(runner_json(row))


RUNNER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "host": {"type": "string"},
        "pid": {"type": "integer"},
        "status": {"enum": list(WORKER_STATUSES)},
        "queues": {"type": ["array", "null"], "items": {"type": "string"}},
        "definitions": {"type": "array", "items": {"type": "string"}},
        "maxConcurrency": {"type": "integer"},
        "running": {"type": "integer"},
        "held": {"type": "integer"},
        "startedAt": {"type": "string", "format": "date-time"},
        "lastSeenAt": {"type": "string", "format": "date-time"},
        "stoppedAt": {"type": ["string", "null"], "format": "date-time"},
    },
}

LIST_QUERY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "status": {
            "type": "array",
            "items": {"type": "string", "enum": list(WORKER_STATUSES)},
            "maxItems": 4,
            "description": "repeatable and/or comma-separated",
        },
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
        "offset": {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0},
    },
}

ROUTES = [
    Route(
        "GET",
        "/v1/runners",
        list_runners,
        "manage_jobs",
        "List worker processes, live ones first",
        query_schema=LIST_QUERY,
        response_schema={
            "type": "object",
            "properties": {"runners": {"type": "array", "items": RUNNER_SCHEMA}},
        },
        tags=("runners",),
    ),
    Route(
        "GET",
        "/v1/runners/{id}",
        get_runner,
        "manage_jobs",
        "One worker process",
        query_schema={"type": "object", "additionalProperties": False, "properties": {}},
        response_schema=RUNNER_SCHEMA,
        tags=("runners",),
    ),
]
