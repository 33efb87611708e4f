"""What an HTTP status means for a job: expected, worth a retry, or a failure for good.

- `expected(status, spec)`: `spec` is an int (`201`), a list of ints (`[200, 204]`) or a range
  string (`"2xx"`, any case); None means 2xx;
- `retryable(status)`: 408 (request timeout), 429 (too many requests) and every 5xx;
- `retry_after_seconds(value, now)`: a `Retry-After` header (delay seconds or an HTTP date) as
  seconds from `now`, at most `MAX_RETRY_AFTER_SECONDS` (an hour), None when absent or
  unreadable (then the ordinary back-off applies).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from typing import Any

from jobserver.registry import MAX_RETRY_AFTER_SECONDS

RETRYABLE = frozenset({408, 429})
_DELAY = re.compile(r"[0-9]{1,12}")
_RANGE = re.compile(r"[1-5][xX]{2}")


def expected(status: int, spec: Any = None) -> bool:
    """Whether `status` is what the job expects (see the module docstring)."""
    if spec is None:
        return 200 <= status < 300
    if isinstance(spec, bool):  # JSON true is not a status (the schema refuses it anyway)
        return False
    if isinstance(spec, int):
        return status == spec
    if isinstance(spec, str):
        return bool(_RANGE.fullmatch(spec)) and status // 100 == int(spec[0])
    if isinstance(spec, list):
        return any(expected(status, s) for s in spec if isinstance(s, int))
    return False


def retryable(status: int) -> bool:
    return status in RETRYABLE or 500 <= status < 600


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """`Retry-After` as seconds to wait (see the module docstring)."""
    if value is None:
        return None
    text = value.strip()
    if _DELAY.fullmatch(text):
        return min(float(int(text)), MAX_RETRY_AFTER_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    wait = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    return min(max(0.0, wait), MAX_RETRY_AFTER_SECONDS)
