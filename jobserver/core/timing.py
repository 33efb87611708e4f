"""When a job may run and until when: date-time parsing and the run/expiry rules.

- `parse_datetime(text, field)`: ISO 8601; a value without a zone is UTC; out of range or
  unparseable -> `RuleError(field)`.
- `run_window(item, where, now)`: a submission's (`run_at`, `expires_at`). `runAt` and
  `delaySeconds` exclude each other (`delaySeconds` counts from `now`); `expiresAt` must be
  after `runAt` (or after `now` when the job may run at once). None = not given.
- `check_window(start, expires, field)`: an expiry must come after a start (schedules).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from jobserver.core.errors import RuleError, at

UTC = dt.UTC


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


def run_window(
    item: Mapping[str, Any], where: str, now: dt.datetime
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(run_at, expires_at) of a submission; errors name `where.runAt` and so on."""
    run_at = None
    if "runAt" in item:
        if "delaySeconds" in item:
            raise RuleError(at(where, "delaySeconds"), "give runAt or delaySeconds, not both")
        run_at = parse_datetime(item["runAt"], at(where, "runAt"))
    elif "delaySeconds" in item:
        run_at = now + dt.timedelta(seconds=item["delaySeconds"])
    expires_at = None
    if "expiresAt" in item:
        expires_at = parse_datetime(item["expiresAt"], at(where, "expiresAt"))
        if expires_at <= (run_at or now):
            raise RuleError(
                at(where, "expiresAt"), "must be after runAt (or now when runAt is not given)"
            )
    return run_at, expires_at


def check_window(start: dt.datetime | None, expires: dt.datetime | None, field: str) -> None:
    """An expiry at or before the start is refused (`field` names the expiry)."""
    if start is not None and expires is not None and expires <= start:
        raise RuleError(field, "must be after startAt")
