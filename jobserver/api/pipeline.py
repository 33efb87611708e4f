"""What runs before every handler: `wrap_route(route)` puts the handler behind, in order,
1. authentication and the route's scope (401/403, see auth.py);
2. the query, coerced and checked against `Route.query_schema` (stored under `QUERY_KEY`);
3. for routes with a JSON `body_schema`: the JSON body, read and checked (stored under
   `BODY_KEY`; see request.py for the statuses). A route whose body is optional
   (`body_required=False`) gets `{}` when the request carries none. A route whose body is not
   JSON (`Route.body_media_type`: an upload) reads it in its handler.
4. for a `replica_reads` route: the choice of the replica or the primary to read from, and for
   a write: its commit's WAL position on the answer (`read_replica.py`, with DATABASE_READ_URL).
Schemas are compiled once, when the app is built (`PreparedRoute`).

`PreparedRoute.call` runs a route for a request already authenticated, with a body given
rather than read: how a compatibility route (`jobserver.compat.dispatch`) hands its
translated request to the `/v1` route that does the work, through the same checks.

A route with `render_error` (a compatibility route) answers every failure, its pipeline's
included, with the body that renderer makes, keeping our status and headers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from jobserver.api.auth import Principal, authenticate, check_scope
from jobserver.api.errors import ApiError, as_api_error, invalid
from jobserver.api.jsonio import json_response
from jobserver.api.keys import (
    BODY_KEY,
    POOL_KEY,
    PRINCIPAL_KEY,
    QUERY_KEY,
    SETTINGS_KEY,
    TOKEN_CACHE_KEY,
)
from jobserver.api.read_replica import mark_write, serve_read
from jobserver.api.request import query_parser, read_json_body
from jobserver.api.routing import Handler, Route
from jobserver.core.errors import format_path
from jobserver.validation import compile_schema


class PreparedRoute:
    """A route with its query parser and body check compiled."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.parse_query = query_parser(route.query_schema)
        self.has_body = route.json_body
        self.check_body = compile_schema(route.body_schema) if self.has_body else None
        self.body_optional = self.has_body and not route.body_required
        self.replica_reads = route.replica_reads

    async def run(self, request: web.Request) -> web.StreamResponse:
        """The route's handler, on the replica when it is a replica read that can be."""
        if self.replica_reads:
            return await serve_read(self.route.handler, request)
        return await self.route.handler(request)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The whole pipeline, for a request the router matched to this route."""
        app = request.app
        request[PRINCIPAL_KEY] = await authenticate(
            request,
            self.route.scope,
            pool=app[POOL_KEY],
            cache=app[TOKEN_CACHE_KEY],
            enabled=app[SETTINGS_KEY].auth_enabled,
        )
        request[QUERY_KEY] = self.parse_query(request)
        if self.has_body:
            if self.body_optional and not request.body_exists:
                request[BODY_KEY] = {}
            else:
                request[BODY_KEY] = await read_json_body(request, self.check_body)
        response = await self.run(request)
        await mark_write(request, response)
        return response

    async def call(
        self, request: web.Request, principal: Principal, body: Any = None
    ) -> web.StreamResponse:
        """This route for `request` (its path and query already this route's) on behalf of
        `principal`: the scope, the query and `body` checked as `handle` checks them."""
        if self.route.scope != "public" and request.app[SETTINGS_KEY].auth_enabled:
            check_scope(principal, self.route.scope)
        request[PRINCIPAL_KEY] = principal
        request[QUERY_KEY] = self.parse_query(request)
        if self.has_body:
            if body is None and not self.body_optional:
                raise ApiError(400, "invalid_json", "request body is empty: expected JSON")
            value = {} if body is None else body
            if self.check_body is not None:
                failure = self.check_body(value)
                if failure is not None:
                    raise invalid(format_path(failure[0]), failure[1])
            request[BODY_KEY] = value
        return await self.run(request)


def wrap_route(route: Route) -> tuple[Handler, PreparedRoute]:
    """The route's handler behind authentication, scope, query and body checks, and the
    compiled pipeline it runs."""
    prepared = PreparedRoute(route)
    render = route.render_error
    if render is None:
        handler = prepared.handle
    else:

        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                return await prepared.handle(request)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if isinstance(e, web.HTTPException) and e.status < 400:
                    raise
                err, headers = as_api_error(request, e)
                return json_response(render(err), status=err.status, headers=headers)

    async def wrapped(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    wrapped.__name__ = getattr(route.handler, "__name__", "handler")
    return wrapped, prepared
