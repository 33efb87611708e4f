"""Scenario 8: access control over every route of the router, against a live API process.

The routes are enumerated from the route table itself (`jobserver.api.routes.all_routes`), so a
new route is covered the day it is added. For each one: no token and a bad token -> 401 unless
the route is public; each token scope (and an outbound-capability token, of submit rank) -> 403
below the route's scope, otherwise a status the route documents in /openapi.json (never
401/403, never 5xx). One owner can never read, list, cancel, retry, clone or delete another
owner's job; only outbound and manage_jobs tokens submit `call.api`. The plaintext tokens
appear nowhere in the database nor in the process' logs (run at DEBUG).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest

from jobserver.api.routes import all_routes
from tests.faults.conftest import Row
from tests.faults.helpers import HttpStats, Procs, job_body

pytestmark = [pytest.mark.faults, pytest.mark.scenario("8. access")]

PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
RANK = {"public": 0, "submit": 1, "view_jobs": 2, "manage_jobs": 3}
TOKEN_RANK = {"alice": 1, "outbound": 1, "view": 2, "manage": 3}


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    token: str | None,
    stats: HttpStats,
    body: Any = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kw: dict[str, Any] = {"headers": headers}
    if body is not None:
        kw["json"] = body
    async with session.request(method, url, **kw) as r:
        try:
            parsed = await r.json(content_type=None)
        except ValueError:
            parsed = None
        stats.record(r.status, parsed if r.status >= 500 else None, 0.0)
        return r.status, parsed


async def test_every_route_scope_and_owner_isolation(
    db: asyncpg.Pool, procs: Procs, tokens: dict[str, str], report: Row
) -> None:
    api, base = await procs.api(env={"LOG_LEVEL": "DEBUG"})
    stats = HttpStats()
    async with aiohttp.ClientSession() as s:
        # -- owner isolation ------------------------------------------------------------
        status, a_job = await call(
            s, "POST", f"{base}/v1/jobs", tokens["alice"], stats, job_body(1)
        )
        assert status == 201, a_job
        status, b_job = await call(s, "POST", f"{base}/v1/jobs", tokens["bob"], stats, job_body(2))
        assert status == 201, b_job
        a_id = a_job["id"]
        for suffix in ("", "/events", "/attempts"):
            status, _ = await call(s, "GET", f"{base}/v1/jobs/{a_id}{suffix}", tokens["bob"], stats)
            assert status == 404, (suffix, status)
        status, listed = await call(s, "GET", f"{base}/v1/jobs?limit=100", tokens["bob"], stats)
        assert status == 200
        assert [j["id"] for j in listed["items"]] == [b_job["id"]]
        for filt in ("status=queued", "definitionKey=faults.work", "sortBy=priority"):
            status, listed = await call(s, "GET", f"{base}/v1/jobs?{filt}", tokens["bob"], stats)
            assert status == 200 and a_id not in {j["id"] for j in listed["items"]}, filt
        status, _ = await call(s, "POST", f"{base}/v1/jobs/{a_id}/cancel", tokens["bob"], stats)
        assert status == 404
        status, _ = await call(s, "POST", f"{base}/v1/jobs/{a_id}/cancel", tokens["view"], stats)
        assert status in (403, 404)
        for method, suffix in (("POST", "/retry"), ("POST", "/clone"), ("DELETE", "")):
            url = f"{base}/v1/jobs/{a_id}{suffix}"
            status, _ = await call(s, method, url, tokens["bob"], stats)
            assert status == 404, (method, suffix, status)
        made = "SELECT count(*) FROM jobs WHERE retried_from IS NOT NULL OR cloned_from IS NOT NULL"
        assert await db.fetchval(made) == 0
        assert await db.fetchval("SELECT status FROM jobs WHERE id = $1", uuid.UUID(a_id)) == (
            "queued"
        )
        status, seen = await call(s, "GET", f"{base}/v1/jobs/{a_id}", tokens["view"], stats)
        assert status == 200 and seen["owner"] == "alice"

        # -- the outbound capability: only outbound (or manage_jobs) tokens submit call.api --
        call_api = {"definitionKey": "call.api", "params": {"endpoint": "http://x.invalid/"}}
        for name, expected in (("alice", 403), ("view", 403), ("outbound", 201), ("manage", 201)):
            status, reply = await call(s, "POST", f"{base}/v1/jobs", tokens[name], stats, call_api)
            assert status == expected, (name, status, reply)
            if expected == 403:
                assert reply["code"] == "forbidden" and reply["capability"] == "outbound"

        # -- every route x every credential ---------------------------------------------
        status, doc = await call(s, "GET", f"{base}/openapi.json", None, stats)
        assert status == 200
        routes = all_routes()
        assert len(routes) >= 20
        checked = 0
        for route in routes:
            op_path = PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)
            template = op_path.replace("{id}", str(uuid.uuid4())).replace("{name}", "nope")
            template = template.replace("{jobId}", str(uuid.uuid4()))
            assert "{" not in template, f"unhandled path variable in {route.path}"
            op = doc["paths"][op_path][route.method.lower()]
            assert op["x-scope"] == route.scope, route.path
            documented = {int(k) for k in op["responses"]}
            body = {} if route.body_schema is not None else None
            url = f"{base}{template}"
            for token in (None, "not-a-real-token"):
                status, reply = await call(s, route.method, url, token, stats, body)
                if route.scope == "public":
                    assert status not in (401, 403), (route.method, route.path, status)
                else:
                    assert status == 401, (route.method, route.path, token, status)
                    assert reply["code"] == "unauthorized"
                checked += 1
            for name, rank in TOKEN_RANK.items():
                status, reply = await call(s, route.method, url, tokens[name], stats, body)
                where = (route.method, route.path, name, status, reply)
                if rank < RANK[route.scope]:
                    assert status == 403, where
                    assert reply["code"] == "forbidden"
                else:
                    assert status not in (401, 403), where
                    assert status < 500, where
                assert status in documented, where
                checked += 1

    # -- tokens are never stored or logged in plain text -----------------------------------
    tables = [
        r["tablename"]
        for r in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ]
    for table in tables:
        dump = "\n".join(r[0] for r in await db.fetch(f'SELECT t::text FROM "{table}" t'))
        for name, plaintext in tokens.items():
            assert plaintext not in dump, f"token {name} stored in plain text in {table}"
    api.signal(15)
    api.wait(15)
    out = api.output()
    assert '"status": 401' in out or '"status":401' in out  # the access log was on
    for name, plaintext in tokens.items():
        assert plaintext not in out, f"token {name} appears in the API log"
    report.http_5xx = stats.count_5xx
    credentials = 2 + len(TOKEN_RANK)
    report.note = f"{len(routes)} routes x {credentials} credentials = {checked} checked requests"
    assert stats.count_5xx == 0, stats.server_errors
