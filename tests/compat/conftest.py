"""Compatibility-route fixtures: the real app with JOBSERVER_COMPAT=all on the per-test
database, definitions registered, one token per scope (tests/api's `Api`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from jobserver.api.app import create_app
from jobserver.auth import create_token
from jobserver.config import Settings
from tests.api.conftest import Api, register_definitions
from tests.waiting import wait_for  # noqa: F401 (re-exported for the tests here)


async def compat_client(settings: Settings, pool: asyncpg.Pool, compat: str = "all") -> Api:
    """An `Api` on an app serving `compat` (a JOBSERVER_COMPAT value); the caller closes it."""
    await register_definitions(pool)
    tokens = {
        "plain": await create_token(pool, "plain", [], "alice"),
        "other": await create_token(pool, "other", [], "bob"),
        "view": await create_token(pool, "view", ["view_jobs"], "viewer"),
        "manage": await create_token(pool, "manage", ["manage_jobs"], "admin"),
    }
    app = create_app(replace(settings, host="127.0.0.1", compat=compat), pool)
    client = TestClient(TestServer(app))
    await client.start_server()
    return Api(client, app, pool, tokens)


@pytest.fixture
async def compat_api(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Api]:
    api = await compat_client(settings, pool)
    try:
        yield api
    finally:
        await api.client.close()
