"""`call_v1`: a compatibility route's translated request, run by the `/v1` route that does the
work, in-process.

The request is cloned with the `/v1` method, path and query; the router matches it; the `/v1`
route then runs through its own pipeline (`PreparedRoute.call`: its scope checked against the
caller's principal, its query and the translated body checked by its schemas) and handler. A
failure is raised as the `ApiError` the `/v1` route would answer (the compatibility route's
`render_error` words it); a success comes back as `V1Answer`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from yarl import URL

from jobserver.api.errors import ApiError
from jobserver.api.keys import PREPARED_ROUTES_KEY, PRINCIPAL_KEY

QueryValue = str | int | float | bool | list[str]


@dataclass(frozen=True)
class V1Answer:
    status: int
    body: Any  # the decoded JSON answer (None for an empty one)
    headers: Mapping[str, str]


def _query_string(query: Mapping[str, QueryValue | None]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in query.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out.append((name, "true" if value else "false"))
        elif isinstance(value, list):
            out.extend((name, str(v)) for v in value)
        else:
            out.append((name, str(value)))
    return out


async def call_v1(
    request: web.Request,
    method: str,
    path: str,
    *,
    query: Mapping[str, QueryValue | None] | None = None,
    body: Any = None,
) -> V1Answer:
    """Run `method path?query` with `body` as the caller of `request` (see the module doc)."""
    url = URL(path).with_query(_query_string(query or {}))
    inner = _clone(request, method, url)
    match = await request.app.router.resolve(inner)
    if match.http_exception is not None:  # a translation naming no /v1 route: our bug
        raise RuntimeError(f"compatibility call to {method} {path}: no such /v1 route")
    match.add_app(request.app)
    match.freeze()
    inner._match_info = match
    prepared = request.app[PREPARED_ROUTES_KEY][match.handler]
    response = await prepared.call(inner, request[PRINCIPAL_KEY], body)
    return V1Answer(response.status, _decode(response), dict(response.headers))


def _clone(request: web.Request, method: str, url: URL) -> web.Request:
    """`request` with another method and URL. aiohttp refuses to clone a request whose body
    was read, lest both read one stream; the /v1 route is given its body and reads none."""
    read = request._read_bytes
    request._read_bytes = None
    try:
        return request.clone(method=method, rel_url=url)
    finally:
        request._read_bytes = read


def _decode(response: web.StreamResponse) -> Any:
    if not isinstance(response, web.Response) or not response.body:
        return None
    raw = response.body
    if not isinstance(raw, bytes | bytearray):
        raise ApiError(500, "internal_error", "a /v1 answer that is no JSON document")
    return json.loads(raw)
