"""When a call is sent again, and after how long (shared by the sync and async clients).

- A 503 (database down or busy) is retried for every call: the server wrote nothing.
- A connection that could not be opened is retried for every call: nothing was sent.
- A connection that broke after the request went out is retried only for idempotent calls
  (reads, cancel, pause/resume, a submission carrying an idempotencyKey): the server may have
  acted on it.
The delay before retry n (from 1) is `min(cap, base * 2**(n-1))` with ±`jitter` (a fraction),
and at least the server's Retry-After (itself capped at `retry_after_cap`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

from jobserver.client.errors import parse_retry_after

RETRY_STATUSES = frozenset({503})


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` is the total number of tries (1: no retry)."""

    attempts: int = 4
    base: float = 0.25
    cap: float = 5.0
    jitter: float = 0.2
    retry_after_cap: float = 30.0

    def delay(self, retry: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number `retry` (1 for the first)."""
        backoff = min(self.cap, self.base * 2.0 ** (retry - 1))
        backoff *= 1 + random.uniform(-self.jitter, self.jitter)
        asked = parse_retry_after(retry_after)
        if asked is not None:
            backoff = max(backoff, min(asked, self.retry_after_cap))
        return max(0.0, backoff)


def retry_transport_error(exc: httpx.TransportError, idempotent: bool) -> bool:
    """Whether a call that failed with `exc` may be sent again (see the module docstring)."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True
    return idempotent
