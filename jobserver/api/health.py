"""Liveness and readiness: `/healthz` (the process answers) and `/readyz` (the database does).

Both are public. `/readyz` runs `SELECT 1` with a short timeout and answers 503
`{"code": "database_unavailable"}` when the database cannot be reached.
"""

from __future__ import annotations

from aiohttp import web

from jobserver.api.errors import DB_UNAVAILABLE, ApiError
from jobserver.api.jsonio import json_response
from jobserver.api.keys import POOL_KEY
from jobserver.api.routing import Route

READY_TIMEOUT = 1.0

STATUS_SCHEMA = {
    "type": "object",
    "properties": {"status": {"type": "string"}},
    "required": ["status"],
}


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    pool = request.app[POOL_KEY]
    try:
        async with pool.acquire(timeout=READY_TIMEOUT) as conn:
            await conn.fetchval("SELECT 1", timeout=READY_TIMEOUT)
    except DB_UNAVAILABLE as e:
        raise ApiError(503, "database_unavailable", "database unavailable") from e
    return json_response({"status": "ready"})


ROUTES = [
    Route(
        "GET",
        "/healthz",
        healthz,
        "public",
        "Process liveness",
        response_schema=STATUS_SCHEMA,
        tags=("health",),
    ),
    Route(
        "GET",
        "/readyz",
        readyz,
        "public",
        "Database reachability (503 when down)",
        response_schema=STATUS_SCHEMA,
        tags=("health",),
    ),
]
