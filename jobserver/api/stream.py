"""`GET /v1/stream`: job changes as server-sent events, as they commit.

Any valid token: a plain token sees its own jobs, one with view_jobs every job. Filters:
`queue`, `jobId`, `status` (repeatable and/or comma-separated). The answer is
`text/event-stream`:

- `hello` first, once the feed is on (`{"epoch", "retryMs", "maxSeconds"}`): every change
  committed from then on is sent, so a client reads what it shows after its hello;
- `job` for each change (`{"id", "status", "queue", "definitionKey", "definitionVersion",
  "progress", "attempt", "updatedAt"}`: the job as it is when the API read it, so a burst of
  changes may arrive as one); its `id:` is the cursor a reconnect sends back as Last-Event-ID;
- `resync` when changes may have been lost (a reconnect with an unknown cursor, the feed's
  database session reconnected, a client too slow to keep up): re-read what you show.

A comment line every PING_SECONDS keeps proxies from closing an idle stream (and tells a
gone client from a live one). The stream ends after STREAM_MAX_SECONDS; EventSource and the
Python client reconnect with their cursor. While the feed cannot start (the database is
away) the route answers 503 with Retry-After. All streams of a process share one database
session (api/feed_hub.py); at most STREAM_MAX_SUBSCRIBERS are open at once (503 beyond).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from aiohttp import web

from jobserver.api.errors import ApiError, error_response
from jobserver.api.feed_hub import Message, Subscription
from jobserver.api.keys import FEED_HUB_KEY, POOL_KEY, PRINCIPAL_KEY, QUERY_KEY, SETTINGS_KEY
from jobserver.api.request import uuid_query
from jobserver.codec import dumps_answer_text

PING_SECONDS = 15.0
RETRY_MS = 2000  # the reconnection delay asked of EventSource
FEED_WAIT = 5.0  # how long a new stream waits for the feed to start before a 503


def event_text(message: Message) -> bytes:
    """One message in the event-stream format (data is one line of JSON)."""
    head = f"id: {message.id}\n" if message.id else ""
    return f"{head}event: {message.event}\ndata: {dumps_answer_text(message.data)}\n\n".encode()


def _busy(code: str, message: str, retry_after: int) -> web.Response:
    return error_response(ApiError(503, code, message), {"Retry-After": str(retry_after)})


async def stream(request: web.Request) -> web.StreamResponse:
    hub = request.app[FEED_HUB_KEY]
    settings = request.app[SETTINGS_KEY]
    principal = request[PRINCIPAL_KEY]
    q: dict[str, Any] = request[QUERY_KEY]
    if hub.closed:
        return _busy("shutting_down", "the API is shutting down", 1)
    if hub.subscribers >= settings.stream_max_subscribers:
        return _busy("too_many_streams", "this API process holds its most streams", 5)
    job_id = uuid_query(q, "jobId")
    sub = hub.subscribe(
        request.app[POOL_KEY],
        owner=principal.owner_filter(),
        queue=q.get("queue"),
        job_id=str(job_id) if job_id else None,
        statuses=q.get("status"),
        last_event_id=request.headers.get("Last-Event-ID"),
    )
    try:
        if not await hub.ready(FEED_WAIT):
            return _busy("feed_unavailable", "the job feed is not connected", 2)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache, no-store",
                "X-Accel-Buffering": "no",  # nginx: pass each event on at once
            }
        )
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the client went away
            await _send(response, sub, hub.epoch, settings.stream_max_seconds)
        return response
    finally:
        hub.unsubscribe(sub)


async def _send(
    response: web.StreamResponse, sub: Subscription, epoch: str, max_seconds: int
) -> None:
    hello = {"epoch": epoch, "retryMs": RETRY_MS, "maxSeconds": max_seconds}
    await response.write(f"retry: {RETRY_MS}\n".encode() + event_text(Message("hello", hello)))
    end = time.monotonic() + max_seconds
    while (left := end - time.monotonic()) > 0:
        message = await sub.next(min(PING_SECONDS, left))
        if message is None:
            await response.write(b": ping\n\n")
        elif message.event == "end":
            return
        else:
            await response.write(event_text(message))
