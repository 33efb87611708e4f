"""When a job may run and until when: date-times, durations and the run/expiry rules.

- `parse_datetime(text, field)`: ISO 8601; a value without a zone is UTC; out of range or
  unparseable -> `RuleError(field)`.
- `parse_duration(value, field)`: seconds (a number > 0) or a duration string of units in
  order, each at most once (`90s`, `15m`, `24h`, `7d`, `1h30m`, `1d12h`; digits alone are
  seconds) -> a timedelta.
  Used by `expiresIn` and the `DEFAULT_EXPIRES_DURATION` setting.
- `run_window(item, where, now, default_expires)`: a submission's (`run_at`, `expires_at`).
  `runAt` and `delaySeconds` exclude each other (`delaySeconds` counts from `now`), and so do
  `expiresAt` and `expiresIn` (`expiresIn` counts from the run time). The expiry must come
  after the run time (`runAt`, or `now` when the job may run at once); the error names both
  values. `default_expires` applies when neither expiry is given. None = not given.
- `check_window(start, expires, field)`: an expiry must come after a start (schedules).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from jobserver.core.errors import RuleError, at

UTC = dt.UTC
MAX_DURATION_SECONDS = 10 * 365 * 86400  # ten years: past it a date-time is the clearer way
# digits alone, or units in order, each at most once (no look-around: schema tools read it)
DURATION_PATTERN = (
    r"^(?:\d+|\d+d(?:\d+h)?(?:\d+m)?(?:\d+s)?|\d+h(?:\d+m)?(?:\d+s)?|\d+m(?:\d+s)?|\d+s)$"
)
_DURATION = re.compile(DURATION_PATTERN, re.ASCII)
_PART = re.compile(r"(\d+)([dhms])", re.ASCII)
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_datetime(value: str, field: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise RuleError(field, "must be an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed.astimezone(UTC)
    except OverflowError:
        raise RuleError(field, "date-time out of range") from None
    return parsed


def parse_duration(value: Any, field: str) -> dt.timedelta:
    """A positive duration of at most ten years: seconds, or text such as `1h30m`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RuleError(field, "must be a number of seconds or a duration such as 90s, 1h30m")
    if isinstance(value, str):
        match = _DURATION.match(value.strip()) if len(value) <= 40 else None
        if match is None:
            raise RuleError(
                field,
                f"{value!r} is not a duration: expected seconds or units d, h, m, s in that"
                " order, such as 90s, 15m, 24h, 7d, 1h30m",
            )
        text = match.group(0)
        seconds: float = (
            int(text)
            if text.isdigit()
            else sum(int(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text))
        )
    else:
        seconds = float(value)
    delta = dt.timedelta(seconds=seconds) if 0 < seconds <= MAX_DURATION_SECONDS else None
    if not delta:  # out of bounds, or below a microsecond
        raise RuleError(field, f"must be more than 0 and at most {MAX_DURATION_SECONDS} seconds")
    return delta


def run_window(
    item: Mapping[str, Any],
    where: str,
    now: dt.datetime,
    default_expires: dt.timedelta | None = None,
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(run_at, expires_at) of a submission; errors name `where.runAt` and so on."""
    run_at = None
    if "runAt" in item:
        if "delaySeconds" in item:
            raise RuleError(at(where, "delaySeconds"), "give runAt or delaySeconds, not both")
        run_at = parse_datetime(item["runAt"], at(where, "runAt"))
    elif "delaySeconds" in item:
        run_at = now + dt.timedelta(seconds=item["delaySeconds"])
    start = run_at or now
    expires_at = None
    if "expiresAt" in item:
        if "expiresIn" in item:
            raise RuleError(
                f"{at(where, 'expiresAt')}, {at(where, 'expiresIn')}",
                "give expiresAt or expiresIn, not both",
            )
        field = at(where, "expiresAt")
        expires_at = parse_datetime(item["expiresAt"], field)
        if expires_at <= start:
            named = "runAt" if run_at is not None else "now"
            raise RuleError(
                field,
                f"expiresAt ({expires_at.isoformat()}) must be after {named}"
                f" ({start.isoformat()}): a job cannot expire before it may run",
            )
    elif "expiresIn" in item:
        field = at(where, "expiresIn")
        expires_at = _after(start, parse_duration(item["expiresIn"], field), field)
    elif default_expires is not None:
        expires_at = _after(start, default_expires, at(where, "runAt"))
    return run_at, expires_at


def _after(start: dt.datetime, duration: dt.timedelta, field: str) -> dt.datetime:
    try:
        return start + duration
    except OverflowError:
        raise RuleError(field, "the expiry would be past the end of the calendar") from None


def check_window(start: dt.datetime | None, expires: dt.datetime | None, field: str) -> None:
    """An expiry at or before the start is refused (`field` names the expiry)."""
    if start is not None and expires is not None and expires <= start:
        raise RuleError(field, "must be after startAt")
