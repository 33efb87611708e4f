"""Only database failures are 503 `database_unavailable`; any other error is a 500, logged
with its traceback. Built with the real app factory plus test routes."""

from __future__ import annotations

import logging
from dataclasses import replace

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from jobserver.api.app import create_app
from jobserver.api.keys import POOL_KEY
from jobserver.api.routing import Route
from jobserver.config import Settings
from jobserver.db.pool import create_pool


async def raise_oserror(request: web.Request) -> web.Response:
    raise FileNotFoundError(2, "No such file or directory", "/nonexistent/jobserver-test-file")


async def raise_timeout(request: web.Request) -> web.Response:
    raise TimeoutError("a handler's own deadline")


async def raise_connection_error(request: web.Request) -> web.Response:
    raise ConnectionResetError("a peer that is not the database")


async def query_database(request: web.Request) -> web.Response:
    await request.app[POOL_KEY].fetchval("SELECT 1")
    return web.Response(text="ok")


TEST_ROUTES = [
    Route("GET", "/test/oserror", raise_oserror, "public", "raises OSError"),
    Route("GET", "/test/timeout", raise_timeout, "public", "raises TimeoutError"),
    Route("GET", "/test/connreset", raise_connection_error, "public", "raises ConnectionError"),
    Route("GET", "/test/db", query_database, "public", "runs SELECT 1"),
]


async def _client(settings: Settings, pool: asyncpg.Pool) -> TestClient:
    client = TestClient(TestServer(create_app(settings, pool, extra_routes=TEST_ROUTES)))
    await client.start_server()
    return client


async def test_plain_os_and_timeout_errors_are_500_not_database_unavailable(
    settings: Settings, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    client = await _client(settings, pool)
    try:
        for path in ("/test/oserror", "/test/timeout", "/test/connreset"):
            caplog.clear()
            with caplog.at_level(logging.ERROR, logger="jobserver.api"):
                async with client.get(path) as resp:
                    body = await resp.json()
            assert (resp.status, body["code"]) == (500, "internal_error"), (path, body)
            [record] = [r for r in caplog.records if r.name == "jobserver.api"]
            assert record.exc_info is not None and path in record.getMessage()
        async with client.get("/test/db") as resp:
            assert resp.status == 200  # the database itself is fine
    finally:
        await client.close()


async def test_database_errors_are_503(settings: Settings) -> None:
    dead = await create_pool(
        "postgresql://nobody@127.0.0.1:9/nothing",
        replace(settings, db_pool_connection_timeout_ms=300),
        min_size=0,
    )
    client = await _client(settings, dead)
    try:
        async with client.get("/test/db") as resp:  # ConnectionRefusedError inside asyncpg
            body = await resp.json()
        assert (resp.status, body["code"]) == (503, "database_unavailable")
        async with client.get("/test/oserror") as resp:  # still a bug, database or not
            assert resp.status == 500
    finally:
        await client.close()
        await dead.close()
