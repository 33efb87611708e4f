"""The access log middleware (outermost): one JSON line per request with requestId, method,
path, status and ms; `X-Request-Id` echoed when it is well-formed, else generated, and set in
every log line written meanwhile. Never headers or tokens."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
import uuid

from aiohttp import web

from jobserver.api.routing import Handler
from jobserver.logs import request_id_var

access_log = logging.getLogger("jobserver.api.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# Generated request ids: a random per-process prefix and a counter (unique across processes
# and hosts in practice, and far cheaper per request than a fresh uuid4).
_RID_PREFIX = uuid.uuid4().hex[:12]
_rid_counter = itertools.count(1)


def _new_rid_prefix() -> None:
    global _RID_PREFIX
    _RID_PREFIX = uuid.uuid4().hex[:12]


os.register_at_fork(after_in_child=_new_rid_prefix)


def _new_request_id() -> str:
    return f"{_RID_PREFIX}{next(_rid_counter):08x}"


@web.middleware
async def request_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One access line per request; the request id is in every log line meanwhile."""
    given = request.headers.get("X-Request-Id")
    rid = given if given and _REQUEST_ID.fullmatch(given) else _new_request_id()
    token = request_id_var.set(rid)
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid
        return response
    finally:
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "request",
                extra={
                    "requestId": rid,
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "ms": round((time.perf_counter() - start) * 1000, 2),
                },
            )
        request_id_var.reset(token)
