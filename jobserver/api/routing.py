"""The route contract: every API module exposes `ROUTES: list[Route]`; `routes.py` joins them.

A Route is data: method, path, handler, the scope it needs, and the JSON Schemas of its body
and query (used both to validate requests and to build `/openapi.json`), so the router, the
validator, the OpenAPI document and the access tests all read one table.

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
    query_schema: dict[str, Any] | None = None
    response_schema: dict[str, Any] | None = None
    success_status: int = 200
    tags: tuple[str, ...] = field(default_factory=tuple)
