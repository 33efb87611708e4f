"""The API application factory and the machinery every route shares.

`create_app(settings, pool=None)` builds the aiohttp app from the route table
(`jobserver.api.routes.ROUTE_MODULES`). Each `Route` is wrapped so that, in this order:
1. the caller is authenticated and the route's scope enforced (401/403);
2. the query is coerced from strings by the property types of `Route.query_schema`
   (integer, number, boolean, string; "array" = repeatable and/or comma-separated) and
   checked (unknown parameters -> 422), then stored under `QUERY_KEY`;
3. for routes with a `body_schema`: the content type must be JSON (415), the body at most
   MAX_BODY_BYTES (413, refused from Content-Length before reading, or while reading), valid
   and storable JSON (400/422, see jsonio) and valid against the schema (422 naming the field);
   the parsed value goes under `BODY_KEY`.

Middlewares: request logging (outermost: one JSON line per request with requestId, method,
path, status and ms; X-Request-Id echoed or generated; never headers or tokens), then the
error middleware that renders every failure as `{"error", "code"}`.

When `pool` is None the app opens its own pool (cleanup_ctx) with no eager connection, so it
starts even while the database is down and `/readyz` answers 503 until it is back.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.auth import TokenCache, authenticate
from jobserver.api.definitions_cache import DefinitionCache
from jobserver.api.errors import ApiError, error_middleware, invalid
from jobserver.api.group_commit import GroupCommitter
from jobserver.api.jsonio import JsonInputError, format_path, parse_json
from jobserver.api.keys import (
    BODY_KEY,
    DEFINITION_CACHE_KEY,
    GROUP_COMMIT_KEY,
    POOL_KEY,
    PRINCIPAL_KEY,
    QUERY_KEY,
    ROUTES_KEY,
    SETTINGS_KEY,
    TOKEN_CACHE_KEY,
)
from jobserver.api.prometheus import middleware as prometheus_middleware
from jobserver.api.routes import all_routes
from jobserver.api.routing import Handler, Route
from jobserver.config import Settings
from jobserver.db.pool import init_connection
from jobserver.db.urls import asyncpg_url
from jobserver.logs import request_id_var
from jobserver.validation import Check, compile_schema

log = logging.getLogger("jobserver.api")
access_log = logging.getLogger("jobserver.api.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_QUERY_VALUE = 2048
# Slow clients: a body must arrive within this many seconds (then 408); a connection that sends
# no complete request head is closed after the keep-alive timeout (jobserver.cli.api).
BODY_READ_TIMEOUT = 15.0

# Generated request ids: a random per-process prefix and a counter (unique across processes
# and hosts in practice, and far cheaper per request than a fresh uuid4).
_RID_PREFIX = uuid.uuid4().hex[:12]
_rid_counter = itertools.count(1)


def _new_rid_prefix() -> None:
    global _RID_PREFIX
    _RID_PREFIX = uuid.uuid4().hex[:12]


os.register_at_fork(after_in_child=_new_rid_prefix)


def _new_request_id() -> str:
    return f"{_RID_PREFIX}{next(_rid_counter):08x}"


@web.middleware
async def request_log_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """One access line per request; the request id is in every log line meanwhile."""
    given = request.headers.get("X-Request-Id")
    rid = given if given and _REQUEST_ID.match(given) else _new_request_id()
    token = request_id_var.set(rid)
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid
        return response
    finally:
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "request",
                extra={
                    "requestId": rid,
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "ms": round((time.perf_counter() - start) * 1000, 2),
                },
            )
        request_id_var.reset(token)


def _coerce(name: str, raw: str, kind: str | None) -> Any:
    if len(raw) > MAX_QUERY_VALUE:
        raise invalid(name, f"longer than {MAX_QUERY_VALUE} characters")
    if "\x00" in raw:
        raise invalid(name, "NUL characters are not allowed")
    if kind == "integer":
        if not re.fullmatch(r"[+-]?\d{1,18}", raw.strip()):
            raise invalid(name, "must be an integer")
        return int(raw)
    if kind == "number":
        try:
            value = float(raw)
        except ValueError:
            raise invalid(name, "must be a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise invalid(name, "must be a finite number")
        return value
    if kind == "boolean":
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise invalid(name, "must be true or false")
    return raw


def _query_parser(schema: dict[str, Any] | None) -> Any:
    props: dict[str, Any] = (schema or {}).get("properties", {})
    check = compile_schema(schema) if schema else None

    def parse(request: web.Request) -> dict[str, Any]:
        out: dict[str, Any] = {}
        query = request.query
        for name in query:
            if name in out:
                continue
            spec = props.get(name)
            if spec is None:
                raise invalid(name, "unknown query parameter")
            values = query.getall(name)
            if spec.get("type") == "array":
                item_kind = (spec.get("items") or {}).get("type")
                items: list[Any] = []
                for v in values:
                    items.extend(
                        _coerce(name, part.strip(), item_kind)
                        for part in v.split(",")
                        if part.strip()
                    )
                if not items:
                    raise invalid(name, "must not be empty")
                out[name] = items
            else:
                if len(values) > 1:
                    raise invalid(name, "given more than once")
                out[name] = _coerce(name, values[0], spec.get("type"))
        if check is not None:
            failure = check(out)
            if failure is not None:
                raise invalid(format_path(failure[0]), failure[1])
        return out

    return parse


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def read_json_body(request: web.Request, check: Check | None) -> Any:
    """The request body parsed and checked (see module doc for the statuses)."""
    raw_type = request.headers.get("Content-Type")
    if raw_type != "application/json" and not _is_json(request.content_type):
        raise ApiError(415, "unsupported_media_type", "expected Content-Type: application/json")
    limit = request.app[SETTINGS_KEY].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "body_too_large", f"request body larger than {limit} bytes")
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT):  # a stalled sender never holds a handler
            raw = await request.read()  # stops with 413 once past client_max_size
    except TimeoutError:
        raise ApiError(408, "request_timeout", "request body not received in time") from None
    if not raw.strip():
        raise ApiError(400, "invalid_json", "request body is empty: expected JSON")
    try:
        value = parse_json(raw)
    except JsonInputError as e:
        if e.status == 400:
            raise ApiError(400, "invalid_json", e.message) from None
        raise invalid(e.path, e.message) from None
    if check is not None:
        failure = check(value)
        if failure is not None:
            raise invalid(format_path(failure[0]), failure[1])
    return value


def wrap_route(route: Route) -> Handler:
    """The route's handler behind authentication, scope, query and body checks."""
    parse_query = _query_parser(route.query_schema)
    check_body = compile_schema(route.body_schema) if route.body_schema is not None else None
    has_body = route.body_schema is not None
    handler = route.handler
    scope = route.scope

    async def wrapped(request: web.Request) -> web.StreamResponse:
        app = request.app
        request[PRINCIPAL_KEY] = await authenticate(
            request,
            scope,
            pool=app[POOL_KEY],
            cache=app[TOKEN_CACHE_KEY],
            enabled=app[SETTINGS_KEY].auth_enabled,
        )
        request[QUERY_KEY] = parse_query(request)
        if has_body:
            request[BODY_KEY] = await read_json_body(request, check_body)
        return await handler(request)

    wrapped.__name__ = getattr(handler, "__name__", "handler")
    return wrapped


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Handlers leave no session state (LISTEN, advisory locks, SET) on pooled connections,
    so the per-release RESET round trip asyncpg does by default is skipped."""


async def create_api_pool(url: str, settings: Settings) -> asyncpg.Pool:
    """The API's pool: no eager connection (start even while the database is down) and no
    reset query on release (one round trip per request instead of two)."""
    pool = await asyncpg.create_pool(
        asyncpg_url(url),
        min_size=0,
        max_size=settings.db_pool_max,
        max_inactive_connection_lifetime=settings.db_pool_idle_timeout_ms / 1000,
        timeout=settings.db_pool_connection_timeout_ms / 1000,
        init=init_connection,
        reset=_no_reset,
    )
    assert pool is not None
    return pool


def create_app(
    settings: Settings,
    pool: asyncpg.Pool | None = None,
    *,
    route_modules: list[str] | None = None,
) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[request_log_middleware, prometheus_middleware, error_middleware],
    )
    app[SETTINGS_KEY] = settings
    app[TOKEN_CACHE_KEY] = TokenCache()
    app[DEFINITION_CACHE_KEY] = DefinitionCache()
    app[GROUP_COMMIT_KEY] = GroupCommitter()
    routes = all_routes(route_modules)
    app[ROUTES_KEY] = routes
    for route in routes:
        app.router.add_route(route.method, route.path, wrap_route(route))

    if pool is not None:
        app[POOL_KEY] = pool
    else:

        async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
            url = settings.require_database_url()
            app[POOL_KEY] = await create_api_pool(url, settings)
            try:
                async with app[POOL_KEY].acquire() as conn:
                    await conn.fetchval("SELECT 1")
            except Exception as e:  # start anyway: /readyz reports it
                log.warning("database not reachable at start: %s", type(e).__name__)
            yield
            await app[POOL_KEY].close()

        app.cleanup_ctx.append(pool_ctx)

    async def group_commit_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[GROUP_COMMIT_KEY].close()  # before the pool closes (cleanups run reversed)

    app.cleanup_ctx.append(group_commit_ctx)

    async def announce(app: web.Application) -> None:
        if not settings.auth_enabled:
            log.warning("authentication is DISABLED (JOBSERVER_AUTH=disabled): local use only")

    app.on_startup.append(announce)
    return app
