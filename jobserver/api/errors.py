"""API errors: one exception type and one middleware that renders every failure as JSON.

Handlers raise `ApiError(status, code, message, field)` (or aiohttp's `web.HTTP...`, or a core
`RuleError`, which is a 422 naming its field); the error middleware turns anything into
`{"error": message, "code": code, "field"?: field}` with the right
status. Codes used across the API:

| status | code |
| --- | --- |
| 400 | invalid_json, invalid_multipart (an upload's body does not parse as multipart) |
| 401 | unauthorized |
| 403 | forbidden |
| 404 | not_found |
| 405 | method_not_allowed |
| 408 | request_timeout (the body did not arrive within BODY_READ_TIMEOUT) |
| 409 | idempotency_conflict, invalid_state, conflict, owned_by_saved_job (a schedule a saved
  job's trigger owns: change it through the saved job) |
| 413 | body_too_large |
| 415 | unsupported_media_type |
| 416 | range_not_satisfiable (a download's Range outside the file; `Content-Range: bytes */size`) |
| 422 | validation_error, unknown_definition, unknown_credential |
| 503 | database_unavailable (`database_unavailable(exc)`: asyncpg's connection errors, and
  OSError/TimeoutError raised inside asyncpg: connecting, pool acquire, statement timeout),
  database_busy (no pooled connection free within DB_ACQUIRE_TIMEOUT_MS: `PoolBusy`; or a
  query PostgreSQL cancelled past its statement timeout, METRICS_STATEMENT_TIMEOUT_MS),
  secret_key_missing (storing a credential without JOBSERVER_SECRET_KEY), storage_unavailable
  (an upload could not be spooled to disk), unavailable (video uploads with encode.video not
  registered) |
| 500 | internal_error (a bug: logged with its traceback; tests assert it never happens) |
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.jsonio import json_response
from jobserver.api.routing import Handler
from jobserver.core.errors import RuleError
from jobserver.db.pool import PoolBusy

log = logging.getLogger("jobserver.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(Exception):
    """A client-visible failure; `extra` adds fields to the JSON body (e.g. `jobStatus`)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.field is not None:
            out["field"] = self.field
        out.update(self.extra)
        return out


def invalid(field: str, message: str, code: str = "validation_error") -> ApiError:
    """A 422 naming the field (`jobs[3].params.message`) in both `field` and the message."""
    return ApiError(422, code, f"{field}: {message}" if field else message, field or None)


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def error_response(err: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(err.body(), status=err.status, headers=headers)


# Failures that mean the database is down, restarting or unreachable (not a bug of ours).
# asyncpg raises these itself; OSError and TimeoutError count only when asyncpg raised them
# (connecting, a pool acquire or a statement timing out), never when a handler did.
_DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
)
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError)


def _raised_in_asyncpg(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module == "asyncpg" or module.startswith("asyncpg."):
            return True
        tb = tb.tb_next
    return False


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached (answered 503, not 500)."""
    if isinstance(exc, _DATABASE_ERRORS):
        return True
    return isinstance(exc, _TRANSPORT_ERRORS) and _raised_in_asyncpg(exc)


def unavailable() -> ApiError:
    return ApiError(503, "database_unavailable", "database unavailable")


BUSY = ApiError(503, "database_busy", "database busy: every connection is in use, retry shortly")
SLOW = ApiError(503, "database_busy", "database busy: the query timed out, retry shortly")


def _from_http(exc: web.HTTPException) -> tuple[ApiError, dict[str, str]]:
    code = _HTTP_CODES.get(exc.status, "error")
    message = exc.reason or code
    if exc.status == 404:
        message = "no such route"
    elif exc.status == 405:
        message = "method not allowed on this route"
    elif exc.status == 413:
        message = "request body too large"
    headers = {}
    if exc.status == 405 and "Allow" in exc.headers:
        headers["Allow"] = exc.headers["Allow"]
    return ApiError(exc.status, code, message), headers


def as_api_error(request: web.Request, exc: Exception) -> tuple[ApiError, dict[str, str]]:
    """What a failure is answered with: the error and its extra headers (500 only for bugs,
    always logged). An HTTPException below 400 (a redirect) is no failure: re-raised."""
    if isinstance(exc, ApiError):
        return exc, {}
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return _from_http(exc)
    if isinstance(exc, RuleError):
        return invalid(exc.field, exc.message, exc.code), {}
    if isinstance(exc, PoolBusy):
        log.warning("database busy: no pooled connection free in time")
        return BUSY, {"Retry-After": "1"}
    if isinstance(exc, asyncpg.QueryCanceledError):  # a statement timeout (metrics queries)
        log.warning("database busy: a query on %s ran past its statement timeout", request.path)
        return SLOW, {"Retry-After": "1"}
    if database_unavailable(exc):
        log.warning("database unavailable: %s", type(exc).__name__)
        return unavailable(), {}
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return ApiError(500, "internal_error", "internal error"), {}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every exception as the JSON error body (`as_api_error`)."""
    try:
        return await handler(request)
    except asyncio.CancelledError:
        raise
    except web.HTTPException as e:
        if e.status < 400:
            return e  # redirects and the like pass through untouched
        err, headers = as_api_error(request, e)
        return error_response(err, headers)
    except Exception as e:
        err, headers = as_api_error(request, e)
        return error_response(err, headers)
