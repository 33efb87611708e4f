"""The route contract: a `Route` is data, and `routes.py` holds the one table of them.

A Route names its method, path, handler, the scope it needs, and the JSON Schemas of its body,
query and answer (used both to validate requests and to build `/openapi.json`), so the router,
the validator, the OpenAPI document and the access tests all read one table. A body may be
optional (`body_required=False`): a request without one gets `{}`.

Scopes: "public" (no token), "submit" (any valid token: own jobs only), "view_jobs",
"manage_jobs" (everything). A token with `manage_jobs` also has `view_jobs`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Scope = Literal["public", "submit", "view_jobs", "manage_jobs"]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    scope: Scope
    summary: str
    body_schema: dict[str, Any] | None = None
    body_required: bool = True
    query_schema: dict[str, Any] | None = None
    response_schema: dict[str, Any] | None = None
    success_status: int = 200
    idempotent: bool = False  # a repeat answers 200 with the same schema (submissions)
    tags: tuple[str, ...] = field(default_factory=tuple)
