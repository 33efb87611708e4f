"""The client's exceptions: one class per kind of API answer, all under `JobserverError`.

Every error the API answers is a JSON body `{"error": message, "code": code, "field"?: ...}`;
`error_for(status, body, headers)` turns it into the matching class so callers catch what they
can handle (`except NotFound`) and still read the API's own `code`, `status`, `message` and, for
a 422, the `field` it names. `NetworkError` is a request that got no answer (after retries);
`WaitTimeout` is `Client.wait` running out of time (it is also a `TimeoutError`).
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Mapping
from typing import Any


class JobserverError(Exception):
    """A failed call: `status` (None without an answer), the API's `code` and `message`, the
    `field` it named (if any) and the whole error `body`."""

    default_code = "error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code or self.default_code
        self.field = field
        self.body: dict[str, Any] = dict(body or {})

    def __str__(self) -> str:
        where = f"HTTP {self.status}, " if self.status is not None else ""
        return f"{self.message} ({where}{self.code})"


class BadRequest(JobserverError):
    """400: the body is not JSON (or not the multipart it should be)."""

    default_code = "bad_request"


class Unauthorized(JobserverError):
    """401: no token, or a token that is unknown or revoked."""

    default_code = "unauthorized"


class Forbidden(JobserverError):
    """403: the token lacks the scope (or owner) the call needs."""

    default_code = "forbidden"


class NotFound(JobserverError):
    """404: no such job, runner, dead-letter entry... (or no such route)."""

    default_code = "not_found"


class Conflict(JobserverError):
    """409: the state forbids it (`invalid_state`), an idempotency key reused with another
    body (`idempotency_conflict`), a concurrent change (`conflict`)."""

    default_code = "conflict"


class ValidationError(JobserverError):
    """422: a field of the body or query is wrong; `field` names it (`params.count`)."""

    default_code = "validation_error"


class RateLimited(JobserverError):
    """429: a quota is reached; `retry_after` is the server's Retry-After in seconds, if any."""

    default_code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(JobserverError):
    """5xx: the server failed (500 is a bug of the server; 503 is transient)."""

    default_code = "server_error"


class Unavailable(ServerError):
    """503: the database is down or busy; raised once the retries are used up."""

    default_code = "unavailable"


class NetworkError(JobserverError):
    """No answer: the connection failed or broke (after the retries the call allows)."""

    default_code = "network_error"


class WaitTimeout(JobserverError, TimeoutError):
    """`wait`/`watch` ran past its timeout; `job` is the last state seen."""

    default_code = "timeout"

    def __init__(self, message: str, job: Any = None) -> None:
        super().__init__(message)
        self.job = job


_BY_STATUS: dict[int, type[JobserverError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationError,
    429: RateLimited,
    503: Unavailable,
}


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """A Retry-After header as seconds from now: delay-seconds or an HTTP date; None when
    absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def error_for(status: int, body: Any, headers: Mapping[str, str] | None = None) -> JobserverError:
    """The exception for an error answer (`body` the decoded JSON, or whatever came)."""
    data: dict[str, Any] = body if isinstance(body, dict) else {}
    message = str(data.get("error") or (body if isinstance(body, str) and body else "")) or (
        f"HTTP {status}"
    )
    code = data.get("code") if isinstance(data.get("code"), str) else None
    field = data.get("field") if isinstance(data.get("field"), str) else None
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else JobserverError)
    kw: dict[str, Any] = {"status": status, "code": code, "field": field, "body": data}
    if cls is RateLimited:
        retry_after = parse_retry_after((headers or {}).get("Retry-After"))
        return RateLimited(message, retry_after=retry_after, **kw)
    return cls(message, **kw)
