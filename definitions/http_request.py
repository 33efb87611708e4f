"""`http.request@1`: one HTTP request under the outbound policy, recorded as sent and received.

Params:
- `url`: http or https URL (required);
- `method`: any RFC 7230 token (`GET` by default; sent upper-cased; CONNECT is refused);
- `headers`: string values; `Host`, `Content-Length` and hop-by-hop headers are refused at
  submission (as for `call.api`) and again by the outbound client;
- `payload` (a JSON value, sent as JSON) or `body` (a string, sent as is): not both (a 422
  naming `body`); `Content-Type` defaults to `application/json` or `text/plain; charset=utf-8`;
- `timeout`: seconds (default 30, at most 300, capped by OUTBOUND_TIMEOUT_SECONDS);
- `expectedStatus`: an int, a list of ints or a range like `"2xx"` (the default);
- `secretHeaders`: more header names to hide, besides Authorization, Cookie,
  Proxy-Authorization, X-Api-Key and Set-Cookie;
- `useSources` and `sources`: data sources read before each run (`jobserver.sources`).

Templating (`jobserver.rendering`): `url`, `headers`, `payload` and `body` may hold
`{{paths}}` into the sources, `params`, `job` and `schedule`, and `{{$macros}}`; they are
rendered afresh before every attempt. What submission can know is a 422 naming the field (bad
syntax, an unknown macro or name, a missing `params.` path); a missing path in a source's data,
or a `single` source that finds nothing, fails the attempt naming it. A rendered URL or header
must still be a valid one (no CR/LF in a header, an http(s) URL), else the attempt fails for
good.

Outcome: an expected status succeeds with `{"request": ..., "response": ...}`; 408, 429 and
5xx fail the attempt and are retried with back-off, or after the answer's `Retry-After`
(seconds or an HTTP date, at most an hour: `RetryAfter`); any other status fails at once
(`http_status`, a `PermanentError`); a network error is retried. The error names the status.

Every attempt is recorded: the request as sent (method, URL without its query, headers, body
cut at `BODY_CAP`) and the response (status, headers, body cut at `BODY_CAP`, parsed when it is
JSON and whole, its size, `durationMs`), or the error. A successful attempt's record is the
job's result (and so its attempt's); a failed attempt's is an `http_exchange` event, written
before the attempt fails. (An event for the successful attempt too would repeat the result and
cost two more database round trips per webhook.) Secret
header values show as `***` in events, results, errors and logs, and are scrubbed from the
bodies recorded (a server that echoes them); API answers show the job's params through
`redact_params`, so they are hidden there too. Submitting it needs the `outbound` capability.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobserver.outbound.redact import (
    HIDDEN,
    redact_headers,
    redact_url,
    scrub,
    secret_names,
    secret_values,
)
from jobserver.outbound.schema import HEADERS_SCHEMA, TOKEN
from jobserver.outbound.status import expected, retry_after_seconds, retryable
from jobserver.registry import ParamsProblem, PermanentError, RetryAfter, definition
from jobserver.rendering import check_submission
from jobserver.rendering.job_info import render_job_params

TEMPLATED = ("url", "headers", "payload", "body")
BODY_CAP = 64 * 1024  # bytes of a body kept in the record (the outbound cap is far larger)
ERROR_BODY_CHARS = 200  # of the answer quoted in an error
MAX_SEND_BYTES = 1024 * 1024

STATUS = {"type": "integer", "minimum": 100, "maximum": 599}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {
            "type": "string",
            "pattern": "^[hH][tT][tT][pP][sS]?://[^\\s]+$",
            "maxLength": 8192,
        },
        "method": {
            "type": "string",
            "pattern": f"^{TOKEN}{{1,64}}$",
            "not": {"pattern": "^[Cc][Oo][Nn][Nn][Ee][Cc][Tt]$"},
            "default": "GET",
        },
        "headers": HEADERS_SCHEMA,
        "payload": {},
        "body": {"type": "string", "maxLength": MAX_SEND_BYTES},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300, "default": 30},
        "expectedStatus": {
            "anyOf": [
                STATUS,
                {"type": "array", "items": STATUS, "minItems": 1, "maxItems": 100},
                {"type": "string", "pattern": "^[1-5][xX][xX]$"},
            ],
            "default": "2xx",
        },
        "secretHeaders": {
            "type": "array",
            "items": {"type": "string", "pattern": f"^{TOKEN}{{1,256}}$"},
            "maxItems": 100,
        },
        "useSources": {"type": "boolean"},
        "sources": {"type": "object"},
    },
    "additionalProperties": False,
}


class HttpStatus(PermanentError):
    """The answer's status is neither expected nor worth a retry."""

    code = "http_status"


class RetryableStatus(RuntimeError):
    """408, 429 or 5xx without a usable Retry-After: retried with the back-off."""


class RequestFailed(RuntimeError):
    """The request did not get an answer (a network error, a timeout): retried."""


def check_params(params: Any) -> list[ParamsProblem]:
    """`payload` and `body` are two ways to give one body: not both. Then what submission can
    know of the templates and sources."""
    if not isinstance(params, dict):
        return []
    if "payload" in params and "body" in params:
        return [(("body",), "give either payload (sent as JSON) or body (sent as is), not both")]
    return check_submission(params, TEMPLATED)


def redact_params(params: Any) -> Any:
    """The params as API answers show them: secret header values as `***`."""
    if not isinstance(params, dict) or not isinstance(params.get("headers"), dict):
        return params
    extra = params.get("secretHeaders")
    listed = extra if isinstance(extra, list) else []
    names = secret_names(e for e in listed if isinstance(e, str))
    headers = {k: HIDDEN if k.lower() in names else v for k, v in params["headers"].items()}
    return {**params, "headers": headers}


async def _rendered(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The params the request is built from: templates and sources rendered for this attempt,
    then checked again where a rendered value could break the request."""
    rendered = await render_job_params(ctx, params, TEMPLATED)
    return _checked(rendered)


def _checked(params: dict[str, Any]) -> dict[str, Any]:
    """What the schema said before rendering, said again of the rendered values it governs."""
    url = params.get("url")
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise PermanentError(
            f"url: rendered to {redact_url(str(url))[:200]!r}, not an http(s) URL", "bad_url"
        )
    if any(c in url for c in " \r\n\t\x00"):
        raise PermanentError("url: the rendered URL holds whitespace or NUL", "bad_url")
    raw = params.get("headers") or {}
    if not isinstance(raw, dict):
        raise PermanentError("headers: rendered to a non-object", "bad_header")
    headers: dict[str, str] = {}
    for name, value in raw.items():
        text = value if isinstance(value, str) else json.dumps(value)  # a typed placeholder
        if value is None or any(c in text for c in "\r\n\x00"):
            raise PermanentError(
                f"headers.{name}: rendered to a value a header cannot hold", "bad_header"
            )
        headers[name] = text
    if "body" in params and params["body"] is not None and not isinstance(params["body"], str):
        params = {**params, "body": json.dumps(params["body"])}
    return {**params, "headers": headers}


@dataclass(frozen=True)
class Outgoing:
    """The request to send, built once from the rendered params."""

    method: str
    url: str
    shown_url: str
    headers: dict[str, str]
    data: bytes | None
    timeout: float
    expect: Any
    secret: frozenset[str]
    hidden: list[str]  # secret values, scrubbed from any text recorded

    @classmethod
    def build(cls, params: Mapping[str, Any]) -> Outgoing:
        headers = dict(params.get("headers") or {})
        data: bytes | None = None
        content_type: str | None = None
        if params.get("body") is not None:
            data, content_type = str(params["body"]).encode(), "text/plain; charset=utf-8"
        elif "payload" in params:
            text = json.dumps(params["payload"], ensure_ascii=False, separators=(",", ":"))
            data, content_type = text.encode(), "application/json"
        if content_type and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = content_type
        secret = secret_names(params.get("secretHeaders") or ())
        url = str(params["url"])
        return cls(
            method=str(params.get("method") or "GET").upper(),
            url=url,
            shown_url=redact_url(url),
            headers=headers,
            data=data,
            timeout=float(params.get("timeout", 30)),
            expect=params.get("expectedStatus"),
            secret=secret,
            hidden=secret_values(headers, secret),
        )

    def record(self, cap: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "url": self.shown_url,
            "headers": redact_headers(self.headers, self.secret),
        }
        if self.data is not None:
            out.update(_body_text(self.data, None, cap, self.hidden))
        return out

    def clean(self, text: str) -> str:
        """`text` fit for an error or a log: no raw URL (its query), no secret value."""
        return scrub(text.replace(self.url, self.shown_url), self.hidden)


def _body_text(raw: bytes, charset: str | None, cap: int, hidden: list[str]) -> dict[str, Any]:
    text = raw[:cap].decode(charset or "utf-8", errors="replace").replace("\x00", "\ufffd")
    return {"body": scrub(text, hidden), "bodyBytes": len(raw), "bodyTruncated": len(raw) > cap}


def _response_record(resp: Any, req: Outgoing, cap: int) -> dict[str, Any]:
    from jobserver.codec import NotStorable, dumps_storable

    out: dict[str, Any] = {
        "status": resp.status,
        "headers": redact_headers(resp.headers, req.secret),
        **_body_text(resp.body, resp.charset, cap, req.hidden),
        "durationMs": round(resp.elapsed_ms, 3),
    }
    if "json" in resp.content_type and out["body"] and not out["bodyTruncated"]:
        with contextlib.suppress(ValueError, NotStorable):
            parsed = json.loads(out["body"])  # scrubbed text: no secret comes back parsed
            dumps_storable(parsed, 4 * cap, "response")
            out["body"] = parsed
    return out


async def _exchange(ctx: Any, request: dict[str, Any], **rest: Any) -> None:
    await ctx.emit_event("http_exchange", {"attempt": ctx.attempt, "request": request, **rest})


def _failure(req: Outgoing, status: int, body: str, headers: Mapping[str, str]) -> Exception:
    message = f"HTTP {status} from {req.method} {req.shown_url}"
    if body:
        message += ": " + req.clean(body[:ERROR_BODY_CHARS])
    if not retryable(status):
        return HttpStatus(message)
    delay = retry_after_seconds(headers.get("retry-after"))
    if delay is not None:
        return RetryAfter(delay, f"{message} (retry after {delay:g} s)")
    return RetryableStatus(message)


@definition(
    "http.request",
    1,
    params_schema=SCHEMA,
    default_max_attempts=5,
    timeout_seconds=330,
    outbound=True,
    check_params=check_params,
    redact_params=redact_params,
    templated=TEMPLATED,
)
async def http_request(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Make an HTTP request under the outbound policy; record it; judge its status."""
    from jobserver.outbound.http import fetch  # aiohttp on first use: it costs a worker's start

    req = Outgoing.build(await _rendered(ctx, params))
    cap = min(BODY_CAP, ctx.host.limits.max_result_bytes // 4)
    sent = req.record(cap)
    try:
        resp = await fetch(
            req.method,
            req.url,
            headers=req.headers,
            data=req.data,
            timeout_seconds=req.timeout,
            secret_headers=req.secret,
        )
    except PermanentError as e:  # refused by the policy, too large, a redirect loop
        await _exchange(ctx, sent, error=req.clean(str(e)))
        ctx.logger.warning("%s %s failed: %s", req.method, req.shown_url, req.clean(str(e)))
        raise
    except Exception as e:
        error = req.clean(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        await _exchange(ctx, sent, error=error)
        ctx.logger.warning("%s %s failed: %s", req.method, req.shown_url, error)
        raise RequestFailed(f"{req.method} {req.shown_url} failed: {error}") from None
    received = _response_record(resp, req, cap)
    ctx.logger.info("%s %s -> %d", req.method, req.shown_url, resp.status)
    if expected(resp.status, req.expect):
        return {"request": sent, "response": received}  # the attempt's record: its result
    await _exchange(ctx, sent, response=received)
    answer_headers = {k.lower(): v for k, v in resp.headers}
    raise _failure(req, resp.status, resp.text(), answer_headers)
