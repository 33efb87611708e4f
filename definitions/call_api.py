"""`call.api@1`: one HTTP request under the outbound policy; a non-2xx answer fails the attempt.

Params: `endpoint` (http or https URL), `method` (default GET), `headers` (strings; `Host`,
`Content-Length` and hop-by-hop headers are refused at submission), `body` (a JSON value sent as
JSON, or a string sent as is) and `timeoutSeconds` (default 30, capped by
OUTBOUND_TIMEOUT_SECONDS). The result holds the status, the content type and the body (parsed
JSON when the answer says JSON, else text cut at 64 KiB). Failed attempts retry with back-off
starting at 2 s, except a target the outbound policy refuses (`outbound_denied`), a body over
OUTBOUND_MAX_RESPONSE_BYTES (`response_too_large`) and a redirect loop: those fail for good.

The request goes through `jobserver.outbound.http.fetch` (resolved and checked addresses only,
redirects re-checked, body streamed under a cap); logs and errors show the URL without its
query string. Submitting it needs a token with the `outbound` capability.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from jobserver.outbound.redact import redact_url
from jobserver.outbound.schema import HEADERS_SCHEMA
from jobserver.registry import Backoff, definition

MAX_BODY_CHARS = 65536

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["endpoint"],
    "properties": {
        "endpoint": {"type": "string", "pattern": "^https?://[^\\s]+$", "maxLength": 8192},
        "method": {
            "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
            "default": "GET",
        },
        "headers": HEADERS_SCHEMA,
        "body": {},
        "timeoutSeconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 300, "default": 30},
    },
    "additionalProperties": False,
}


class ApiCallFailed(RuntimeError):
    """The endpoint answered with a status outside 2xx."""


@definition(
    "call.api",
    1,
    params_schema=SCHEMA,
    default_max_attempts=5,
    timeout_seconds=330,
    backoff=Backoff(base_seconds=2.0),
    outbound=True,
)
async def call_api(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Make an HTTP request under the outbound policy; non-2xx responses fail the attempt."""
    from jobserver.outbound.http import fetch  # aiohttp on first use: it costs a worker's start

    method = params.get("method", "GET")
    url = params["endpoint"]
    shown = redact_url(url)
    data: str | None = None
    body_json: Any = None
    if "body" in params and params["body"] is not None:
        if isinstance(params["body"], str):
            data = params["body"]
        else:
            body_json = params["body"]
    try:
        resp = await fetch(
            method,
            url,
            headers=params.get("headers") or {},
            data=data,
            json=body_json,
            timeout_seconds=float(params.get("timeoutSeconds", 30)),
        )
    except Exception as e:
        ctx.logger.warning("%s %s failed: %s", method, shown, e)
        raise
    text = resp.text()
    if not 200 <= resp.status < 300:
        raise ApiCallFailed(f"HTTP {resp.status} from {method} {shown}: {text[:200]}")
    body: Any = text[:MAX_BODY_CHARS]
    if "json" in resp.content_type and text:
        with contextlib.suppress(ValueError):
            body = json.loads(text)
    ctx.logger.info("%s %s -> %d", method, shown, resp.status)
    return {"status": resp.status, "contentType": resp.content_type, "body": body}
