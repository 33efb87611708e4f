"""Liveness and readiness: `/healthz` (the process answers) and `/readyz` (the database does).

Both are public. `/readyz` runs `SELECT 1` with a short timeout and answers 503
`{"code": "database_unavailable"}` when the database cannot be reached.
"""

from __future__ import annotations

from aiohttp import web

from jobserver.api.errors import database_unavailable, unavailable
from jobserver.api.jsonio import json_response
from jobserver.api.keys import POOL_KEY

READY_TIMEOUT = 1.0


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    pool = request.app[POOL_KEY]
    try:
        async with pool.acquire(timeout=READY_TIMEOUT) as conn:
            await conn.fetchval("SELECT 1", timeout=READY_TIMEOUT)
    except Exception as e:
        if database_unavailable(e):
            raise unavailable() from e
        raise
    return json_response({"status": "ready"})
