"""The route contract: a `Route` is data, and `routes.py` holds the one table of them.

A Route names its method, path, handler, the scope it needs, and the JSON Schemas of its body,
query and answer (used both to validate requests and to build `/openapi.json`), so the router,
the validator, the OpenAPI document and the access tests all read one table. A body may be
optional (`body_required=False`): a request without one gets `{}`.

Bodies and answers are JSON unless a route says otherwise: a route whose `body_media_type` is
another type (`multipart/form-data` for uploads) reads its body itself, and its `body_schema`
only documents it; `response_media_type` names what a non-JSON answer is (`video/*`). A route
with `byte_ranges` streams a file: it answers HEAD as well as GET, and Range requests with
206 or 416. `errors` lists statuses it may answer beyond those derived from its shape (see
openapi.py), e.g. 409 for a download whose job has not finished. `path_schemas` gives the
JSON Schema of a path variable whose handler checks it against a rule (a queue name): the
document then says what the handler accepts, rather than any string.

A route of a compatibility module (`jobserver.compat`) answers failures in its own system's
words: `render_error` turns every failure of the route (its pipeline's included) into the JSON
body of that answer (its status and headers stay ours), and `error_schema` is what
`/openapi.json` documents for them.

A route with `replica_reads` (a GET whose handler reads through `read_replica.read_pool`) may
be served by the streaming replica DATABASE_READ_URL names, under the read-your-writes rules of
`jobserver.api.read_replica`.

Scopes: "public" (no token), "submit" (any valid token: own jobs only), "view_jobs",
"manage_jobs" (everything). A token with `manage_jobs` also has `view_jobs`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

if TYPE_CHECKING:
    from jobserver.api.errors import ApiError

JSON = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# a failure -> its answer (status and headers are set from the error): how a compatibility
# route says it failed
ErrorRenderer = Callable[["ApiError"], dict[str, Any]]
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
    body_media_type: str = JSON
    response_media_type: str = JSON
    byte_ranges: bool = False
    errors: tuple[int, ...] = ()
    path_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    render_error: ErrorRenderer | None = None
    error_schema: dict[str, Any] | None = None
    replica_reads: bool = False  # may read from DATABASE_READ_URL's replica (read_replica.py)

    @property
    def json_body(self) -> bool:
        """Whether the pipeline reads and checks the body as JSON before the handler runs."""
        return self.body_schema is not None and self.body_media_type == JSON
