"""Scenario SSRF: `call.api` submitted over a live API and run by a worker process, aimed at
internal targets the way issue 11 found them reachable.

The worker runs with `OUTBOUND_ALLOW_HOSTS=localhost`: the test's "outside" service is reached
as `localhost` (a host on the allowlist, resolving to loopback), while every other loopback
form stays refused. Each case, end to end:

- denied: the API's own `/metrics` at `http://127.0.0.1:<port>/metrics?api_key=SECRET` (the
  attack as written), an internal service by IPv4, `[::1]`, IPv4-mapped `[::ffff:127.0.0.1]`
  and the numeric form `2130706433`: each fails on its first attempt of five with
  `outbound_denied`, the internal service never sees a request, and `SECRET` appears in no log;
- allowed: `http://localhost:<port>/ok` succeeds (the allowlisted name, pinned to the address
  that was checked: the rebinding guard, whose one-lookup property tests/unit proves with our
  resolver seam);
- redirect: a 302 from the allowed host to the internal service is refused before it is
  followed; a 302 within the allowed host is followed;
- body cap: a 2 MiB answer fails with `response_too_large`;
- capability: a plain token's submission is a 403 naming `outbound`; a `Host` header is a 422.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from tests.faults.conftest import Row
from tests.faults.helpers import Procs, active_workers, all_terminal, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.scenario("SSRF")]


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@pytest.fixture
async def services() -> AsyncIterator[dict[str, Any]]:
    """An internal service (must never be reached) and an outside one (reached as localhost)."""
    internal_seen: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        internal_seen.append(request.path_qs)
        return web.Response(text="internal secret")

    inner = web.Application()
    inner.router.add_route("*", "/{tail:.*}", internal)
    inner_runner, inner_port = await _serve(inner)

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"host": request.headers.get("Host")})

    async def to_internal(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{inner_port}/admin")

    async def to_ok(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (2 * 1024 * 1024), content_type="text/plain")

    outer = web.Application()
    outer.router.add_get("/ok", ok)
    outer.router.add_get("/to-internal", to_internal)
    outer.router.add_get("/to-ok", to_ok)
    outer.router.add_get("/big", big)
    outer_runner, outer_port = await _serve(outer)
    yield {"inner": inner_port, "outer": outer_port, "internal_seen": internal_seen}
    await outer_runner.cleanup()
    await inner_runner.cleanup()


async def _post(
    s: aiohttp.ClientSession, base: str, token: str, params: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    body = {"definitionKey": "call.api", "params": params}
    async with s.post(
        f"{base}/v1/jobs", json=body, headers={"Authorization": f"Bearer {token}"}
    ) as r:
        return r.status, await r.json()


async def test_ssrf_targets_are_refused_and_allowed_ones_reached(
    db: asyncpg.Pool,
    procs: Procs,
    tokens: dict[str, str],
    services: dict[str, Any],
    report: Row,
) -> None:
    api, base = await procs.api()
    api_port = int(base.rsplit(":", 1)[1])
    worker = procs.worker("ssrf-w", env={"OUTBOUND_ALLOW_HOSTS": "localhost"})
    await wait_for(lambda: active_workers(db, ["ssrf-w"]), within=20)
    inner, outer = services["inner"], services["outer"]
    denied = {
        "api metrics": f"http://127.0.0.1:{api_port}/metrics?api_key=SECRET",
        "internal v4": f"http://127.0.0.1:{inner}/admin?api_key=SECRET",
        "internal v6": f"http://[::1]:{inner}/admin",
        "v4-mapped": f"http://[::ffff:127.0.0.1]:{inner}/admin",
        "numeric": f"http://2130706433:{inner}/admin",
        "redirect": f"http://localhost:{outer}/to-internal",
    }
    allowed = {
        "allowed host": f"http://localhost:{outer}/ok",
        "allowed redirect": f"http://localhost:{outer}/to-ok",
    }
    ids: dict[str, str] = {}
    async with aiohttp.ClientSession() as s:
        for name, url in {**denied, **allowed, "big": f"http://localhost:{outer}/big"}.items():
            status, body = await _post(s, base, tokens["manage"], {"endpoint": url})
            assert status == 201, (name, body)
            ids[name] = body["id"]
        status, body = await _post(s, base, tokens["alice"], {"endpoint": allowed["allowed host"]})
        assert status == 403 and body["capability"] == "outbound", body
        status, body = await _post(
            s,
            base,
            tokens["manage"],
            {"endpoint": allowed["allowed host"], "headers": {"Host": "x"}},
        )
        assert status == 422, body
    job_ids = [uuid.UUID(i) for i in ids.values()]
    await wait_for(lambda: all_terminal(db, job_ids), within=30)
    rows = {
        name: await db.fetchrow("SELECT * FROM jobs WHERE id = $1::uuid", i)
        for name, i in ids.items()
    }
    for name in denied:
        row = rows[name]
        assert row["status"] == "failed", (name, row["status"], row["last_error"])
        assert "outbound_denied" in row["last_error"], (name, row["last_error"])
        assert row["attempt"] == 1 and row["max_attempts"] == 5, name
        assert "SECRET" not in row["last_error"]
    for name in allowed:
        assert rows[name]["status"] == "succeeded", (name, rows[name]["last_error"])
        assert rows[name]["result"]["body"] == {"host": f"localhost:{outer}"}
    assert rows["big"]["status"] == "failed" and "response_too_large" in rows["big"]["last_error"]
    assert services["internal_seen"] == []
    assert "SECRET" not in worker.output() and "SECRET" not in api.output()
    report.accepted = len(ids)
    report.terminal = sum(r["status"] in ("succeeded", "failed") for r in rows.values())
    report.duplicates = 0
    report.note = (
        f"denied {len(denied)} (metrics, v4, v6, v4-mapped, numeric, redirect) at attempt 1 of 5,"
        f" allowed {len(allowed)} (allowlisted host pinned, redirect re-checked), body cap,"
        " 403 without outbound; internal service saw 0 requests"
    )
