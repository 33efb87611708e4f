"""API test fixtures: the real app from `create_app` on the per-test database, definitions
registered as `register-definitions` would, and one token per scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from jobserver.api.app import create_app
from jobserver.auth import create_token
from jobserver.config import Settings
from jobserver.db.definitions import definition_upsert
from jobserver.registry import Registry, definition, load_modules
from jobserver.scheduler.cron import CronService
from jobserver.scheduler.failures import FailureWatch
from tests.waiting import wait_for  # noqa: F401 (re-exported for the tests here)

# Test-only definitions: a strict nested schema, and a second echo version (latest wins).
TEST_DEFS = Registry()

STRICT_SCHEMA = {
    "type": "object",
    "required": ["name", "count"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 50},
        "count": {"type": "integer", "minimum": 0, "maximum": 10},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "inner": {
            "type": "object",
            "properties": {"level": {"enum": ["low", "high"]}},
        },
    },
}


@definition("strict", 1, params_schema=STRICT_SCHEMA, default_max_attempts=5, target=TEST_DEFS)
async def strict(params: Any, ctx: Any) -> None:
    """Strict params for validation tests."""


@definition("echo", 2, default_max_attempts=7, target=TEST_DEFS)
async def echo_v2(params: Any, ctx: Any) -> None:
    """A newer echo: submissions without a version get this one."""


@definition(
    "refy",
    1,
    params_schema={
        "$defs": {"n": {"type": "integer"}},
        "type": "object",
        "properties": {"n": {"$ref": "#/$defs/n"}},
    },
    target=TEST_DEFS,
)
async def refy(params: Any, ctx: Any) -> None:
    """A schema with a local $ref (followed for checks and for integer rewriting)."""


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any


@dataclass
class Api:
    client: TestClient
    app: web.Application
    pool: asyncpg.Pool
    tokens: dict[str, str]

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = "manage",
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        params: Any = None,
    ) -> Reply:
        """One request; `token` names a fixture token ("plain", "other", "view", "manage"),
        or is a raw value when not one of those; None sends no Authorization header."""
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        kwargs: dict[str, Any] = {"headers": hdrs, "params": params}
        if json is not None:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        async with self.client.request(method, path, **kwargs) as resp:
            raw = await resp.read()
            try:
                import json as _json

                body = _json.loads(raw) if raw else None
            except ValueError:
                body = raw
            assert resp.status != 500, f"{method} {path} -> 500: {body!r}"
            return Reply(resp.status, body, resp.headers)

    async def submit(self, token: str = "manage", **fields: Any) -> dict[str, Any]:
        body = {"definitionKey": "echo", "definitionVersion": 1, "params": {"message": "hi"}}
        body.update(fields)
        r = await self.call("POST", "/v1/jobs", token=token, json=body)
        assert r.status == 201, r.body
        return r.body

    async def job_count(self) -> int:
        return await self.pool.fetchval("SELECT count(*) FROM jobs")


async def register_definitions(pool: asyncpg.Pool) -> None:
    registry = load_modules()
    async with pool.acquire() as conn:
        for d in [*registry.all(), *TEST_DEFS.all()]:
            await definition_upsert(conn, d.metadata())


async def start_api(settings: Settings, pool: asyncpg.Pool) -> tuple[TestClient, web.Application]:
    app = create_app(settings, pool)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client, app


@pytest.fixture
async def api(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Api]:
    await register_definitions(pool)
    tokens = {
        "plain": await create_token(pool, "plain", [], "alice"),
        "other": await create_token(pool, "other", [], "bob"),
        "view": await create_token(pool, "view", ["view_jobs"], "viewer"),
        "manage": await create_token(pool, "manage", ["manage_jobs"], "admin"),
    }
    # bound to loopback, as the test server is (METRICS_REQUIRE_TOKEN=auto: /metrics is public)
    client, app = await start_api(
        replace(settings, max_body_bytes=64 * 1024, host="127.0.0.1"), pool
    )
    try:
        yield Api(client, app, pool, tokens)
    finally:
        await client.close()


# Settings of a worker run beside the scheduler's services in schedule tests.
FAST_WORKER = {
    "lease_duration_seconds": 5.0,
    "heartbeat_interval_seconds": 0.5,
    "poll_interval_ms": 100,
}


@pytest.fixture
async def services(pool: asyncpg.Pool) -> AsyncIterator[tuple[CronService, FailureWatch]]:
    cron = CronService(pool, interval=0.1)
    watch = FailureWatch(pool, interval=0.1)
    yield cron, watch
    await cron.stop()
    await watch.stop()


# The loopback webhook receiver of the http.request tests (it lives with the worker tests).
from tests.worker.http_receiver import allow_loopback, receiver  # noqa: E402, F401
