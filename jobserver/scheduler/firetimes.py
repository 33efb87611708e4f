"""When a schedule fires: pure functions over cron expressions and fixed intervals, no I/O.

    timing = Timing(cron="0 9 * * 1-5", timezone="Europe/Paris")
    next_fire_times(timing, after=now, limit=3)          # the next three fire instants (UTC)
    plan_fires(timing, next_fire_at, now, "latest", 10)   # what a scheduler tick should create

Expressions: 5 fields (minute hour day month weekday) or 6 fields with *seconds first*
(second minute hour day month weekday), evaluated by croniter in the schedule's IANA timezone.
`every_seconds` schedules fire every N seconds counted from the Unix epoch (so every process
computes the same instants). All returned datetimes are timezone-aware UTC.

Daylight-saving rules (the classic cron ones): expressions are matched against local wall-clock
time. When clocks go forward, a fixed-hour entry whose wall time does not exist fires at the
transition instant; entries whose hour field starts with `*` simply have no fire in the skipped
wall times. When clocks go back, a fixed-hour entry fires once (first occurrence) and a `*`-hour
entry fires in both occurrences of the repeated hour.

Catch-up policies (after downtime, fires older than `grace` are "missed"):
`none` fires nothing missed (only an on-time fire), `latest` fires only the newest due fire,
`all` fires every due fire, the newest `catchup_limit` of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

CatchupPolicy = Literal["none", "latest", "all"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_SCAN = 10_000
MISSED_COUNT_LIMIT = 1000
BOUND_SAMPLE = 6  # fires sampled to find a cron expression's shortest gap


class TimingError(ValueError):
    """A bad cron expression, interval or timezone; `field` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Timing:
    cron: str | None = None
    every_seconds: int | None = None
    timezone: str = "UTC"

    def zone(self) -> ZoneInfo:
        return load_zone(self.timezone)


def load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise TimingError("timezone", f"unknown timezone {name!r}") from None


def validate_timing(timing: Timing) -> None:
    """Raise TimingError naming the field unless exactly one of cron/every is valid."""
    if (timing.cron is None) == (timing.every_seconds is None):
        raise TimingError("cron", "exactly one of cron and everySeconds is required")
    load_zone(timing.timezone)
    if timing.every_seconds is not None:
        if timing.every_seconds < 1:
            raise TimingError("everySeconds", "everySeconds must be >= 1")
        return
    assert timing.cron is not None
    fields = timing.cron.split()
    if len(fields) not in (5, 6):
        raise TimingError("cron", f"cron {timing.cron!r}: expected 5 or 6 fields")
    try:
        ok = croniter.is_valid(timing.cron, second_at_beginning=True)
    except Exception:
        ok = False
    if not ok:
        raise TimingError("cron", f"invalid cron expression {timing.cron!r}")


def check_frequency(timing: Timing, min_every: int, max_every: int, now: datetime) -> None:
    """Raise TimingError unless the schedule fires at most every `min_every` seconds.

    `everySeconds` must lie in [min_every, max_every]; a cron expression must not put two of
    its next fires (the next BOUND_SAMPLE of them, from `now`) closer than `min_every`.
    """
    if timing.every_seconds is not None:
        if not min_every <= timing.every_seconds <= max_every:
            raise TimingError(
                "everySeconds",
                f"everySeconds must be between {min_every} and {max_every} seconds"
                f" (MIN_EVERY and MAX_EVERY), got {timing.every_seconds}",
            )
        return
    fires = next_fire_times(timing, now, limit=BOUND_SAMPLE)
    gaps = [(b - a).total_seconds() for a, b in pairwise(fires)]
    if gaps and min(gaps) < min_every:
        raise TimingError(
            "cron",
            f"cron {timing.cron!r} fires {min(gaps):g} s apart; schedules may fire at"
            f" most every {min_every} s (MIN_EVERY)",
        )


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError("naive datetime")
    return dt.astimezone(UTC)


def _hour_is_wild(expr: str) -> bool:
    fields = expr.split()
    return fields[1 if len(fields) == 5 else 2].startswith("*")


def _resolve(local: datetime, zone: ZoneInfo, wild: bool) -> list[datetime]:
    """UTC instants for a naive local wall time (0, 1 or 2 of them, see module doc)."""
    first = local.replace(tzinfo=zone, fold=0)
    second = local.replace(tzinfo=zone, fold=1)
    a, b = _utc(first), _utc(second)
    if a == b:
        return [a]
    roundtrip = a.astimezone(zone).replace(tzinfo=None)
    if roundtrip != local:  # skipped by a spring-forward gap
        if wild:
            return []
        # fold=1 maps the gap time with the post-transition offset, so it lands before the
        # transition; the transition instant is the earlier of the two readings plus the gap.
        return [_gap_end(min(a, b), zone)]
    return [a, b] if wild else [min(a, b)]


def _gap_end(instant: datetime, zone: ZoneInfo) -> datetime:
    """The first instant after `instant` whose UTC offset changed (the transition)."""
    off = instant.astimezone(zone).utcoffset()
    lo, hi = instant, instant + timedelta(hours=3)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == off:
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0)


def next_fire_times(
    timing: Timing, after: datetime, *, until: datetime | None = None, limit: int = 1
) -> list[datetime]:
    """Fire instants strictly after `after` (and <= `until` if given), at most `limit`."""
    after = _utc(after)
    out: list[datetime] = []
    if limit <= 0:
        return out
    if timing.every_seconds is not None:
        step = timing.every_seconds
        n = int((after - EPOCH).total_seconds() // step) + 1
        while len(out) < limit:
            t = EPOCH + timedelta(seconds=n * step)
            if until is not None and t > _utc(until):
                break
            out.append(t)
            n += 1
        return out
    assert timing.cron is not None
    zone = timing.zone()
    wild = _hour_is_wild(timing.cron)
    # Start a little before `after` in wall time so a repeated hour is not skipped.
    start = (after.astimezone(zone) - timedelta(hours=2)).replace(tzinfo=None)
    it = croniter(timing.cron, start, second_at_beginning=True)
    for _ in range(MAX_SCAN * 10):
        try:
            local = it.get_next(datetime)
        except Exception:  # no further match within croniter's search horizon
            return out
        for t in _resolve(local, zone, wild):
            if t <= after or (out and t <= out[-1]):
                continue
            if until is not None and t > _utc(until):
                return out
            out.append(t)
            if len(out) >= limit:
                return out
        if until is not None and local.replace(tzinfo=zone) > _utc(until) + timedelta(hours=3):
            break
    return out


@dataclass(frozen=True)
class FirePlan:
    """What one tick does for one schedule: jobs to create and the next time to look again."""

    fires: list[datetime]
    next_fire_at: datetime | None
    missed: int


def plan_fires(
    timing: Timing,
    next_fire_at: datetime,
    now: datetime,
    policy: CatchupPolicy,
    catchup_limit: int,
    *,
    grace: timedelta = timedelta(seconds=5),
    expires_at: datetime | None = None,
) -> FirePlan:
    """Fires due at `now` given the stored `next_fire_at`, filtered by the catch-up policy.

    Only the newest due fires are enumerated (a window before `now` that widens until it holds
    enough), so a long outage of a per-second schedule stays cheap. `missed` counts the due
    fires not created (those before the window only up to MISSED_COUNT_LIMIT).
    """
    now = _utc(now)
    next_fire_at = _utc(next_fire_at)
    if next_fire_at > now:
        return FirePlan([], next_fire_at, 0)
    cap = max(catchup_limit, 1) if policy == "all" else 1
    lookback = max(grace, timedelta(seconds=60))
    while True:
        start = max(next_fire_at, now - lookback)
        due = [next_fire_at] if start == next_fire_at else []
        due += next_fire_times(timing, start, until=now, limit=MAX_SCAN * 10)
        if len(due) >= cap or start == next_fire_at:
            break
        lookback *= 4
    skipped_before = 0
    if start > next_fire_at:  # fires before the window: counted (up to MISSED_COUNT_LIMIT)
        skipped_before = 1 + len(
            next_fire_times(
                timing,
                next_fire_at,
                until=start - timedelta(microseconds=1),
                limit=MISSED_COUNT_LIMIT,
            )
        )
    if expires_at is not None:
        due = [t for t in due if t < _utc(expires_at)]
    fires = due[-cap:]
    if policy == "none":
        fires = [t for t in fires if now - t <= grace]
    nxt = next_fire_times(timing, now, limit=1)
    following = nxt[0] if nxt else None
    if following is not None and expires_at is not None and following >= _utc(expires_at):
        following = None
    return FirePlan(fires, following, skipped_before + len(due) - len(fires))


def first_fire_at(
    timing: Timing, now: datetime, start_at: datetime | None = None
) -> datetime | None:
    """The first fire of a new (or re-enabled) schedule: the next one after max(now, start_at)."""
    base = _utc(now)
    if start_at is not None and _utc(start_at) > base:
        base = _utc(start_at) - timedelta(microseconds=1)
    found = next_fire_times(timing, base, limit=1)
    return found[0] if found else None
