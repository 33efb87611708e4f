"""What the sync and async clients share besides the calls: where to connect, how an answer
is read, and the pacing of `watch` and `stream`.

Options (arguments win over the environment):
- url: `JOBSERVER_URL`, default http://127.0.0.1:3000
- token: `JOBSERVER_TOKEN` (sent as `Authorization: Bearer ...`; none: no header)
- timeout: seconds per request (default 30); a stream reads with STREAM_READ_TIMEOUT instead,
  longer than the server's 15 s pings, and reconnects when nothing came in that long.
- poll: (first, max) seconds between reads of a job when `watch` cannot use the stream.

Read-your-writes: a client remembers the latest `X-Jobserver-Lsn` its writes were answered
with (`WritePosition`) and sends it back on its reads as `X-Jobserver-Min-Lsn`, so an API
that reads from a replica answers them only once that replica has its writes (or from the
primary). Nothing to configure; a server without a replica ignores the header.
"""

from __future__ import annotations

import os
import random
import re
import time
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from jobserver.client.calls import Call
from jobserver.client.errors import WaitTimeout, error_for
from jobserver.client.models import Job

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:3000"
USER_AGENT = "jobserver-client/0.1"
STREAM_PATH = "/v1/stream"
STREAM_READ_TIMEOUT = 45.0
STREAM_BACKOFF = (0.5, 15.0)  # first and longest wait between reconnects, seconds
DEFAULT_POLL = (0.1, 2.0)
LSN_HEADER = "X-Jobserver-Lsn"
MIN_LSN_HEADER = "X-Jobserver-Min-Lsn"
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


class WritePosition:
    """The latest WAL position this client's writes were answered with (see the module doc)."""

    def __init__(self) -> None:
        self.text: str | None = None
        self._value = -1

    def saw(self, headers: httpx.Headers) -> None:
        text = (headers.get(LSN_HEADER) or "").strip()
        match = _LSN.fullmatch(text)
        if match is None:
            return
        value = (int(match[1], 16) << 32) | int(match[2], 16)
        if value > self._value:
            self._value, self.text = value, text

    def headers(self, method: str) -> dict[str, str] | None:
        """What a request of `method` sends: the position, on reads once there is one."""
        if method != "GET" or self.text is None:
            return None
        return {MIN_LSN_HEADER: self.text}


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None

    @classmethod
    def resolve(cls, url: str | None, token: str | None) -> Target:
        url = url or os.environ.get("JOBSERVER_URL") or DEFAULT_URL
        token = token if token is not None else os.environ.get("JOBSERVER_TOKEN") or None
        return cls(url.rstrip("/"), token)

    def headers(self) -> dict[str, str]:
        out = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        return out


def request_kwargs(call: Call[Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {"params": call.params}
    if call.body is not None:
        kw["json"] = call.body
    return kw


def decoded(response: httpx.Response) -> Any:
    """The answer's JSON, or its text when it is not JSON (None when empty)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def read_answer(call: Call[T], response: httpx.Response) -> T:
    """The typed answer, or the typed error for a 4xx/5xx."""
    body = decoded(response)
    if response.status_code >= 400:
        raise error_for(response.status_code, body, response.headers)
    return call.read(body)


def deadline_of(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline: float | None, job: Job | None = None) -> float | None:
    """Seconds left before `deadline` (None: no deadline); WaitTimeout once it passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise WaitTimeout("the job did not finish in time", job)
    return left


def stream_timeout(deadline: float | None) -> httpx.Timeout:
    left = remaining(deadline)
    read = STREAM_READ_TIMEOUT if left is None else min(STREAM_READ_TIMEOUT, left)
    return httpx.Timeout(10.0, read=read)


def stream_delay(failures: int, retry_ms: int | None) -> float:
    """Wait before reconnect number `failures` (from 1): doubling from the first wait (or the
    server's `retry:`) up to the longest, with jitter so clients do not return all at once."""
    first = STREAM_BACKOFF[0] if retry_ms is None else retry_ms / 1000
    delay = min(STREAM_BACKOFF[1], first * 2.0 ** (failures - 1))
    return delay * random.uniform(0.8, 1.0)


def changed(new: Job, old: Job) -> bool:
    """Whether `watch` has something new to show."""
    return (new.status, new.attempt, new.progress, new.worker_id) != (
        old.status,
        old.attempt,
        old.progress,
        old.worker_id,
    )


def route_missing(status: int) -> bool:
    """/v1/stream answered as a server without the route does."""
    return status in (404, 405)
