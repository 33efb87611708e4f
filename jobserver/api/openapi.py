"""`GET /openapi.json`: an OpenAPI 3.1 document generated from the route table.

Every `Route` becomes an operation with its path parameters, query parameters (from
`query_schema`; arrays are repeatable or comma-separated), request body (`body_schema`), success
response (`response_schema`) and the error responses that can happen to it: 400/413/415/422 for
routes with a body, 401/403 unless public, 404 for routes with a path id, 409 for submissions,
cancels and changes (a name taken, a state that forbids it), 429 for job submissions (the
owner's quota), 503 when the database is down, and the route's own `errors`. A body or answer
that is not JSON (`body_media_type`, `response_media_type`: an upload, a file) is documented
under its media type; a route with `byte_ranges` also documents 206 and 416.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from jobserver.api.jsonio import json_response
from jobserver.api.keys import ROUTES_KEY
from jobserver.api.routing import JSON, Route

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {
        "error": {"type": "string", "description": "human-readable message"},
        "code": {"type": "string", "description": "stable machine-readable code"},
        "field": {"type": "string", "description": "the offending field, e.g. jobs[3].params.x"},
    },
}

_STRING = {"type": "string"}
_BINARY = {"type": "string", "format": "binary"}
QUERY_INT_LIMIT = 10**18 - 1
# Path variables with a fixed shape: `id` is always a UUID (jobs, DLQ entries).
_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "format": "uuid"},
    "jobId": {"type": "string", "format": "uuid"},
    "runId": {"type": "string", "format": "uuid"},
    "version": {"type": "integer", "minimum": 1},
}

# Routes that add jobs (or saved jobs) for the caller's owner, so its quota applies.
SUBMISSION_PATHS = (
    "/v1/jobs",
    "/v1/jobs/batch",
    "/v1/jobs/{id}/retry",
    "/v1/jobs/{id}/clone",
    "/v1/saved-jobs",
    "/v1/saved-jobs/{id}/execute",
    "/v1/saved-jobs/{id}/executions/{jobId}/retry",
    "/v1/videos/encode",
    "/v1/workflows/{id}/runs",
)
# Methods that change something: 409 when the change conflicts with what is stored.
_CHANGES = ("POST", "PUT", "PATCH", "DELETE")

_ERROR_TEXT = {
    400: "Malformed JSON or nesting too deep, or a malformed multipart body",
    401: "Missing, invalid or revoked token",
    403: "The token lacks the scope or capability this request needs (`field` names it)",
    404: "Not found (or belongs to another owner)",
    408: "The request body did not arrive in time",
    409: "Conflict (idempotency key reused with another body, or invalid state)",
    413: "Request body too large",
    415: "Content-Type is not the route's (application/json; multipart/form-data for uploads)",
    416: "Range not satisfiable (`Content-Range: bytes */size` gives the size)",
    422: "Invalid input; `field` names it",
    429: "The owner's quota (queued jobs, saved jobs) is reached (`quota_exceeded`)",
    503: "Database unavailable (storing a credential: no JOBSERVER_SECRET_KEY; an upload: no"
    " room to keep it)",
}


def _error_statuses(route: Route) -> list[int]:
    out = []
    if route.body_schema is not None:
        out += [400, 408, 413, 415]
    if route.scope != "public":
        out += [401, 403]
    if "{" in route.path:
        out.append(404)
    if route.method in _CHANGES and route.scope != "public":
        out.append(409)
    if route.body_schema is not None or route.query_schema or "{" in route.path:
        out.append(422)
    if route.method == "POST" and _template(route.path) in SUBMISSION_PATHS:
        out.append(429)
    if route.byte_ranges:
        out.append(416)
    out.append(503)
    out += route.errors
    return sorted(set(out))


def _template(path: str) -> str:
    """A route's path as the document writes it: `{id}`, without the router's pattern."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _path_schema(route: Route, name: str) -> dict[str, Any]:
    """The route's own schema of the path variable, else the fixed shape of its name."""
    return route.path_schemas.get(name) or _PATH_SCHEMAS.get(name, _STRING)


def _query_parameters(schema: dict[str, Any] | None) -> list[dict[str, Any]]:
    params = []
    for name, spec in (schema or {}).get("properties", {}).items():
        if spec.get("type") == "integer":
            # the framework reads at most 18 digits (jobserver.api.request.coerce_text)
            spec = {"minimum": -QUERY_INT_LIMIT, "maximum": QUERY_INT_LIMIT, **spec}
        p: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": spec}
        if spec.get("type") == "array":
            p["style"] = "form"
            p["explode"] = True
        if "description" in spec:
            p["description"] = spec["description"]
        params.append(p)
    return params


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": f"{route.method.lower()}_{route.handler.__name__}",
        "tags": list(route.tags),
        "x-scope": route.scope,
    }
    params = [
        {"name": n, "in": "path", "required": True, "schema": _path_schema(route, n)}
        for n in _PARAM.findall(route.path)
    ]
    params += _query_parameters(route.query_schema)
    if params:
        op["parameters"] = params
    if route.body_schema is not None:
        op["requestBody"] = {
            "required": route.body_required,
            "content": {route.body_media_type: {"schema": route.body_schema}},
        }
    success: dict[str, Any] = {"description": "OK"}
    if route.response_schema is not None:
        success["content"] = {route.response_media_type: {"schema": route.response_schema}}
    elif route.response_media_type != JSON:
        success["content"] = {route.response_media_type: {"schema": _BINARY}}
    responses: dict[str, Any] = {str(route.success_status): success}
    if route.idempotent:
        responses["200"] = {**success, "description": "Idempotent repeat: the existing job(s)"}
    if route.byte_ranges:
        responses["206"] = {
            **success,
            "description": "The one byte range a `Range: bytes=a-b` (`a-`, `-n`) header asked"
            " for, with Content-Range (several ranges: the whole file, 200)",
        }
    for status in _error_statuses(route):
        if route.error_schema is None:
            responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
        else:  # a compatibility route answers failures in its own system's words
            responses[str(status)] = {
                "description": _ERROR_TEXT.get(status, "error"),
                "content": {JSON: {"schema": route.error_schema}},
            }
    op["responses"] = responses
    op["security"] = [] if route.scope == "public" else [{"bearer": []}]
    return op


def build_openapi(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = _template(route.path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobserver",
            "version": "1",
            "description": "Job execution server on PostgreSQL. Errors are always "
            '`{"error": ..., "code": ...}` (a compatibility route answers them as its '
            "reference system does); no input produces a 500.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "responses": {
                f"E{s}": {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
                for s, text in _ERROR_TEXT.items()
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def openapi(request: web.Request) -> web.Response:
    return json_response(build_openapi(request.app[ROUTES_KEY]))
