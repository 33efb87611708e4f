"""`call.api@1`: one real HTTP request with aiohttp; a non-2xx answer fails the attempt.

Params: `endpoint` (http or https URL), `method` (default GET), `headers` (strings), `body`
(a JSON value sent as JSON, or a string sent as is) and `timeoutSeconds` (default 30). The
result holds the status, the content type and the body (parsed JSON when the answer says JSON,
else text cut at 64 KiB). Failed attempts retry with back-off starting at 2 s.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

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
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string", "maxLength": 8192},
            "maxProperties": 100,
        },
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
)
async def call_api(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Make an HTTP request; non-2xx responses fail the attempt."""
    method = params.get("method", "GET")
    url = params["endpoint"]
    headers = dict(params.get("headers") or {})
    kwargs: dict[str, Any] = {}
    if "body" in params and params["body"] is not None:
        if isinstance(params["body"], str):
            kwargs["data"] = params["body"]
        else:
            kwargs["json"] = params["body"]
    import aiohttp  # on first use: importing it costs every worker half a second at start

    timeout = aiohttp.ClientTimeout(total=float(params.get("timeoutSeconds", 30)))
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(method, url, headers=headers, **kwargs) as resp,
    ):
        text = await resp.text(errors="replace")
        ctype = resp.headers.get("Content-Type", "")
        if not 200 <= resp.status < 300:
            raise ApiCallFailed(f"HTTP {resp.status} from {method} {url}: {text[:200]}")
        body: Any = text[:MAX_BODY_CHARS]
        if "json" in ctype and text:
            with contextlib.suppress(ValueError):
                body = json.loads(text)
    ctx.logger.info("%s %s -> %d", method, url, resp.status)
    return {"status": resp.status, "contentType": ctype, "body": body}
