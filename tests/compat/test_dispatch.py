"""The compatibility machinery: JOBSERVER_COMPAT parsing, and `call_v1` running the /v1 route
that does the work with its own checks (scope, query, body), failures worded by the
compatibility route's `render_error`."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from jobserver.api.app import create_app
from jobserver.api.errors import ApiError
from jobserver.api.jsonio import json_response
from jobserver.api.keys import BODY_KEY
from jobserver.api.routing import Route
from jobserver.auth import create_token
from jobserver.compat.dispatch import call_v1
from jobserver.compat.spec import CompatSpecError, Mount, parse_compat
from jobserver.config import ConfigError, Settings
from tests.api.conftest import register_definitions

DEFAULTS = {"janaah": "", "gatrix": "/gatrix"}


def test_parse_compat() -> None:
    assert parse_compat("", DEFAULTS) == []
    assert parse_compat(" none ", DEFAULTS) == []
    assert parse_compat("all", DEFAULTS) == [Mount("janaah", ""), Mount("gatrix", "/gatrix")]
    assert parse_compat("gatrix=/admin/x, janaah", DEFAULTS) == [
        Mount("gatrix", "/admin/x"),
        Mount("janaah", ""),
    ]
    for bad, words in [
        ("nosuch", "unknown system"),
        ("janaah,janaah", "given twice"),
        ("gatrix=admin", "prefix"),
        ("gatrix=/admin/", "prefix"),
        ("gatrix=", "prefix"),
        ("gatrix=/a b", "prefix"),
    ]:
        with pytest.raises(CompatSpecError, match=words):
            parse_compat(bad, DEFAULTS)


def test_a_bad_jobserver_compat_stops_the_start() -> None:
    with pytest.raises(ConfigError, match="JOBSERVER_COMPAT"):
        Settings.from_env({"JOBSERVER_COMPAT": "nosuch"})


def _render(err: ApiError) -> dict[str, Any]:
    return {"ok": False, "why": err.message, "kind": err.code.upper()}


async def get_translated(request: web.Request) -> web.Response:
    """Translates GET /t/jobs/{id} to GET /v1/jobs/{id} and answers one field of it."""
    answer = await call_v1(request, "GET", f"/v1/jobs/{request.match_info['id']}")
    return json_response({"ok": True, "state": answer.body["status"]})


async def submit_translated(request: web.Request) -> web.Response:
    body = request[BODY_KEY]
    answer = await call_v1(
        request,
        "POST",
        "/v1/jobs",
        body={"definitionKey": "strict", "params": {"name": body.get("text"), "count": 1}},
    )
    return json_response({"ok": True, "id": answer.body["id"]}, status=answer.status)


async def list_translated(request: web.Request) -> web.Response:
    answer = await call_v1(request, "GET", "/v1/jobs", query=dict(request.query))
    return json_response({"ok": True, "n": len(answer.body["items"])})


async def dlq_translated(request: web.Request) -> web.Response:
    answer = await call_v1(request, "GET", "/v1/dlq")  # a view_jobs route behind a submit one
    return json_response({"ok": True, "n": len(answer.body["items"])})


ANY_OBJECT = {"type": "object"}
TEST_ROUTES = [
    Route("GET", "/t/jobs/{id}", get_translated, "submit", "t", render_error=_render),
    Route("POST", "/t/jobs", submit_translated, "submit", "t", body_schema=ANY_OBJECT,
          render_error=_render),
    Route("GET", "/t/jobs", list_translated, "submit", "t",
          query_schema={"type": "object", "properties": {"status": {"type": "string"}}},
          render_error=_render),
    Route("GET", "/t/dlq", dlq_translated, "submit", "t", render_error=_render),
]  # fmt: skip


@pytest.fixture
async def client(settings: Settings, pool: asyncpg.Pool) -> Any:
    await register_definitions(pool)
    app = create_app(replace(settings, host="127.0.0.1"), pool, extra_routes=TEST_ROUTES)
    client = TestClient(TestServer(app))
    await client.start_server()
    client.tokens = {  # type: ignore[attr-defined]
        "plain": await create_token(pool, "plain", [], "alice"),
        "other": await create_token(pool, "other", [], "bob"),
    }
    try:
        yield client
    finally:
        await client.close()


def _auth(client: Any, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.tokens[who]}"}


async def test_call_v1_runs_the_v1_route_as_the_caller(client: Any, pool: asyncpg.Pool) -> None:
    async with client.post("/t/jobs", json={"text": "hi"}, headers=_auth(client, "plain")) as r:
        assert r.status == 201
        made = await r.json()
    job_id = made["id"]
    assert await pool.fetchval("SELECT owner FROM jobs WHERE id = $1", uuid.UUID(job_id)) == "alice"
    async with client.get(f"/t/jobs/{job_id}", headers=_auth(client, "plain")) as r:
        assert (r.status, await r.json()) == (200, {"ok": True, "state": "queued"})
    # another owner: the /v1 route's own 404, in the compatibility route's words
    async with client.get(f"/t/jobs/{job_id}", headers=_auth(client, "other")) as r:
        assert r.status == 404
        assert (await r.json()) == {"ok": False, "why": "job not found", "kind": "NOT_FOUND"}
    async with client.get(
        "/t/jobs", params={"status": "queued"}, headers=_auth(client, "plain")
    ) as r:
        assert (r.status, await r.json()) == (200, {"ok": True, "n": 1})
    async with client.get(
        "/t/jobs", params={"status": "queued"}, headers=_auth(client, "other")
    ) as r:
        assert (r.status, await r.json()) == (200, {"ok": True, "n": 0})


async def test_the_v1_routes_checks_hold_and_are_worded_by_the_compat_route(
    client: Any, pool: asyncpg.Pool
) -> None:
    before = await pool.fetchval("SELECT count(*) FROM jobs")
    # the /v1 body schema: params.message must be a string
    async with client.post("/t/jobs", json={"text": 5}, headers=_auth(client, "plain")) as r:
        body = await r.json()
        assert r.status == 422 and body["kind"] == "VALIDATION_ERROR", body
        assert "params.name" in body["why"]
    # the /v1 query schema: status must be a known one
    async with client.get(
        "/t/jobs", params={"status": "nope"}, headers=_auth(client, "plain")
    ) as r:
        body = await r.json()
        assert r.status == 422 and "status" in body["why"], body
    # the /v1 route's scope: the DLQ needs view_jobs, whatever the compatibility route asks
    async with client.get("/t/dlq", headers=_auth(client, "plain")) as r:
        assert r.status == 403 and (await r.json())["kind"] == "FORBIDDEN"
    # the compatibility route's own pipeline: no token, a body that is no JSON
    async with client.get("/t/dlq") as r:
        assert r.status == 401 and (await r.json())["kind"] == "UNAUTHORIZED"
    async with client.post(
        "/t/jobs", data=b"{", headers={**_auth(client, "plain"), "Content-Type": "application/json"}
    ) as r:
        assert r.status == 400 and (await r.json())["kind"] == "INVALID_JSON"
    assert await pool.fetchval("SELECT count(*) FROM jobs") == before
