"""`GET /v1/definitions`: the job definitions registered in the database (view_jobs)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.jsonio import json_response
from jobserver.api.keys import DEFINITION_CACHE_KEY, POOL_KEY, QUERY_KEY
from jobserver.api.routing import Route


def definition_json(r: asyncpg.Record, latest: bool) -> dict[str, Any]:
    return {
        "key": r["key"],
        "version": r["version"],
        "ref": f"{r['key']}@{r['version']}",
        "latest": latest,
        "defaultMaxAttempts": r["default_max_attempts"],
        "timeoutSeconds": r["timeout_seconds"],
        "concurrencyLimit": r["concurrency_limit"],
        "paramsSchema": r["params_schema"],
        "description": r["description"],
        "backoff": r["backoff"],
        "registeredAt": r["registered_at"],
        "updatedAt": r["updated_at"],
    }


async def list_definitions(request: web.Request) -> web.Response:
    cache = request.app[DEFINITION_CACHE_KEY]
    rows = await cache.rows(request.app[POOL_KEY])
    key = request[QUERY_KEY].get("key")
    out = [
        definition_json(r, cache.latest_version(r["key"]) == r["version"])
        for r in rows
        if key is None or r["key"] == key
    ]
    return json_response({"definitions": out})


DEFINITION_SCHEMA = {
    "type": "object",
    "properties": {
        "key": {"type": "string"},
        "version": {"type": "integer"},
        "ref": {"type": "string"},
        "latest": {"type": "boolean"},
        "defaultMaxAttempts": {"type": "integer"},
        "timeoutSeconds": {"type": ["number", "null"]},
        "concurrencyLimit": {"type": ["integer", "null"]},
        "paramsSchema": {"type": ["object", "null"]},
        "description": {"type": "string"},
        "backoff": {"type": ["object", "null"]},
        "registeredAt": {"type": "string", "format": "date-time"},
        "updatedAt": {"type": "string", "format": "date-time"},
    },
}

ROUTES = [
    Route(
        "GET",
        "/v1/definitions",
        list_definitions,
        "view_jobs",
        "List registered job definitions (all versions; `latest` marks the newest)",
        query_schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {"key": {"type": "string", "maxLength": 200}},
        },
        response_schema={
            "type": "object",
            "properties": {"definitions": {"type": "array", "items": DEFINITION_SCHEMA}},
        },
        tags=("definitions",),
    )
]
