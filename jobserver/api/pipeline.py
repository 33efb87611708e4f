"""What runs before every handler: `wrap_route(route)` puts the handler behind, in order,
1. authentication and the route's scope (401/403, see auth.py);
2. the query, coerced and checked against `Route.query_schema` (stored under `QUERY_KEY`);
3. for routes with a JSON `body_schema`: the JSON body, read and checked (stored under
   `BODY_KEY`; see request.py for the statuses). A route whose body is optional
   (`body_required=False`) gets `{}` when the request carries none. A route whose body is not
   JSON (`Route.body_media_type`: an upload) reads it in its handler.
Schemas are compiled once, when the app is built.
"""

from __future__ import annotations

from aiohttp import web

from jobserver.api.auth import authenticate
from jobserver.api.keys import (
    BODY_KEY,
    POOL_KEY,
    PRINCIPAL_KEY,
    QUERY_KEY,
    SETTINGS_KEY,
    TOKEN_CACHE_KEY,
)
from jobserver.api.request import query_parser, read_json_body
from jobserver.api.routing import Handler, Route
from jobserver.validation import compile_schema


def wrap_route(route: Route) -> Handler:
    """The route's handler behind authentication, scope, query and body checks."""
    parse_query = query_parser(route.query_schema)
    has_body = route.json_body
    check_body = compile_schema(route.body_schema) if has_body else None
    body_optional = has_body and not route.body_required
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
            if body_optional and not request.body_exists:
                request[BODY_KEY] = {}
            else:
                request[BODY_KEY] = await read_json_body(request, check_body)
        return await handler(request)

    wrapped.__name__ = getattr(handler, "__name__", "handler")
    return wrapped
