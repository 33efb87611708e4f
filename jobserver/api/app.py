"""The API application factory: it wires, and holds no request logic of its own.

`create_app(settings, pool=None, extra_routes=())` builds the aiohttp app from the route table
(`jobserver.api.routes.ROUTES`, the compatibility routes JOBSERVER_COMPAT serves, plus
`extra_routes`), each route behind the request pipeline
(`pipeline.wrap_route`: authentication, scope, query and body checks). It puts every shared
object on the app under its typed key (`keys.py`): settings, pool, routes, the token,
definition and metrics caches, the queue snapshots, the Prometheus job registry, the
group committer, the control channel and the job feed's hub (closed at shutdown: a stream
ends then, so no open GET /v1/stream holds the shutdown up). The dashboard's static files are
served at `/ui` (`jobserver.ui`), outside the route table: they are no API.

Middlewares, outermost first: the access log (`middleware.py`), Prometheus HTTP counters
(`prometheus.py`), then the error middleware that renders every failure as `{"error", "code"}`
(`errors.py`).

When `pool` is None the app opens its own (`pool.create_api_pool`, a cleanup context) with no
eager connection, so it starts even while the database is down and `/readyz` answers 503 until
it is back. With DATABASE_READ_URL it also opens the replica's pool the same way
(`read_replica.ReadReplica` under `READ_REPLICA_KEY`, its sessions named
`jobserver-api-read`); the API starts and answers while the replica is down.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

import asyncpg
from aiohttp import web

from jobserver.api.auth import TokenCache
from jobserver.api.control_channel import ControlChannel
from jobserver.api.definitions_cache import DefinitionCache
from jobserver.api.errors import error_middleware
from jobserver.api.feed_hub import FeedHub
from jobserver.api.group_commit import GroupCommitter
from jobserver.api.keys import (
    CONTROL_KEY,
    DEFINITION_CACHE_KEY,
    FEED_HUB_KEY,
    GROUP_COMMIT_KEY,
    METRICS_CACHE_KEY,
    POOL_KEY,
    PREPARED_ROUTES_KEY,
    PROMETHEUS_KEY,
    QUEUE_SNAPSHOTS_KEY,
    READ_REPLICA_KEY,
    ROUTES_KEY,
    SETTINGS_KEY,
    TOKEN_CACHE_KEY,
)
from jobserver.api.metrics_cache import MetricsCache
from jobserver.api.middleware import request_log_middleware
from jobserver.api.pipeline import wrap_route
from jobserver.api.pool import create_api_pool
from jobserver.api.prometheus import jobs_exposition
from jobserver.api.prometheus import middleware as prometheus_middleware
from jobserver.api.queue_snapshot import QueueSnapshots
from jobserver.api.read_replica import ReadReplica
from jobserver.api.routes import all_routes
from jobserver.api.routing import Route
from jobserver.config import Settings
from jobserver.sources.shared import close_all as close_source_driver
from jobserver.ui import add_routes as add_ui_routes

log = logging.getLogger("jobserver.api")

READ_POOL_NAME = "jobserver-api-read"  # application_name of the replica's sessions


def create_app(
    settings: Settings,
    pool: asyncpg.Pool | None = None,
    *,
    extra_routes: Sequence[Route] = (),
) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[request_log_middleware, prometheus_middleware, error_middleware],
    )
    app[SETTINGS_KEY] = settings
    app[TOKEN_CACHE_KEY] = TokenCache()
    app[DEFINITION_CACHE_KEY] = DefinitionCache()
    app[METRICS_CACHE_KEY] = MetricsCache()
    app[PROMETHEUS_KEY] = jobs_exposition(settings.metrics_max_queues)
    app[QUEUE_SNAPSHOTS_KEY] = QueueSnapshots(settings.queue_health_window_minutes)
    app[GROUP_COMMIT_KEY] = GroupCommitter()
    app[CONTROL_KEY] = ControlChannel(settings.database_url)
    app[FEED_HUB_KEY] = FeedHub(settings.database_url)
    routes = [*all_routes(settings.compat), *extra_routes]
    app[ROUTES_KEY] = routes
    app[PREPARED_ROUTES_KEY] = prepared_routes = {}
    for route in routes:
        handler, prepared_routes[handler] = wrap_route(route)
        app.router.add_route(route.method, route.path, handler)
        if route.byte_ranges and route.method == "GET":
            app.router.add_route("HEAD", route.path, handler)  # a file's headers alone
    add_ui_routes(app)  # the dashboard's static files (jobserver.ui)

    if pool is not None:
        app[POOL_KEY] = pool
    else:
        app.cleanup_ctx.append(_pool_ctx)
    if settings.database_read_url:
        app.cleanup_ctx.append(_read_replica_ctx)
    app.cleanup_ctx.append(_group_commit_ctx)
    app.on_cleanup.append(_close_control)
    app.on_shutdown.append(_close_feed)
    app.on_startup.append(_announce)
    return app


async def _pool_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    app[POOL_KEY] = await create_api_pool(settings.require_database_url(), settings)
    try:
        async with app[POOL_KEY].acquire() as conn:
            await conn.fetchval("SELECT 1")
    except Exception as e:  # start anyway: /readyz reports it
        log.warning("database not reachable at start: %s", type(e).__name__)
    yield
    await app[POOL_KEY].close()


async def _read_replica_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    assert settings.database_read_url
    pool = await create_api_pool(settings.database_read_url, settings, name=READ_POOL_NAME)
    app[READ_REPLICA_KEY] = ReadReplica(pool, settings)
    yield
    await app[READ_REPLICA_KEY].close()


async def _group_commit_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[GROUP_COMMIT_KEY].close()  # before the pool closes (cleanups run reversed)
    await close_source_driver()  # the dry runs' source pool


async def _close_control(app: web.Application) -> None:
    await app[CONTROL_KEY].close()


async def _close_feed(app: web.Application) -> None:
    await app[FEED_HUB_KEY].close()


async def _announce(app: web.Application) -> None:
    if not app[SETTINGS_KEY].auth_enabled:
        log.warning("authentication is DISABLED (JOBSERVER_AUTH=disabled): local use only")
