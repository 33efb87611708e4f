"""`FinishedTally`: the jobs that finished in each queue over the last day, kept by the minute.

Counting a day of finished jobs in `jobs` means reading every one of them (about 1.4 million
rows a day at 16 jobs/s: 200 ms even as an index-only count of `jobs_finished_idx`), which a
health check cannot pay on every call. A minute whose jobs are all written never changes, so
each API process keeps the minutes it has read, and a call reads only the minutes that
settled since the previous one plus the unsettled tail (`jobserver.db.queues.
queue_finished_minutes`, a time range of `jobs_finished_idx`):

- A minute is settled `SETTLE` (60 s) after it ends: a job's `finished_at` is the `now()` of
  the transaction that wrote it, which commits well within that (no writer of jobserver holds
  one longer). A job whose finishing transaction commits later than that, after its minute
  was read, is not counted.
- The first call of a process reads the whole horizon (a day), ten minutes per statement (so
  that no statement nears the statement timeout however busy the day was; each range read is
  kept even if a later one fails): about 1.4 million rows at ten million jobs a week, a few
  seconds. The following calls read what settled meanwhile: a few minutes.
- A job deleted after it was counted (pruned, deleted) stays counted: a window says what
  finished in it.
- Windows are whole minutes: a window of M minutes is the current minute and the M - 1
  before it. `refresh` returns a `TallyView`: per (queue, status) `Counts` of each window
  (sliding sums, so a call costs the minutes that changed, not the day), and of the last 60
  seconds exactly.

Not shared between processes: each API process keeps its own (some thousands of small
entries), so two processes can differ only by a job of the kind above.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import asyncpg

from jobserver.db.conn import Conn
from jobserver.db.queues import queue_finished_minutes

SETTLE = dt.timedelta(seconds=60)
CHUNK = dt.timedelta(minutes=10)  # the most one statement reads
MINUTE = dt.timedelta(minutes=1)
DAY_MINUTES = 1440

Key = tuple[str, str]  # (queue, status)


@dataclass(slots=True)
class Counts:
    """Finished jobs: how many, how many of them ran (have a start), their summed run time."""

    n: int = 0
    timed: int = 0
    duration_ms: float = 0.0

    def add(self, other: Counts, sign: int = 1) -> None:
        self.n += sign * other.n
        self.timed += sign * other.timed
        self.duration_ms += sign * other.duration_ms


Minute = dict[Key, Counts]


def floor_minute(t: dt.datetime) -> dt.datetime:
    return t.replace(second=0, microsecond=0)


def _by_minute(rows: Iterable[asyncpg.Record]) -> dict[dt.datetime, Minute]:
    out: dict[dt.datetime, Minute] = {}
    for r in rows:
        out.setdefault(r["minute"], {})[(r["queue"], r["status"])] = Counts(
            r["n"], r["timed"], r["duration_ms"]
        )
    return out


def _copy(counts: dict[Key, Counts]) -> dict[Key, Counts]:
    return {k: Counts(c.n, c.timed, c.duration_ms) for k, c in counts.items()}


@dataclass
class _Window:
    """The sliding sum of the settled minutes inside one window."""

    minutes: int
    total: dict[Key, Counts] = field(default_factory=dict)
    included: deque[dt.datetime] = field(default_factory=deque)

    def start(self, now: dt.datetime) -> dt.datetime:
        return floor_minute(now) - (self.minutes - 1) * MINUTE

    def add(self, minute: dt.datetime, counts: Minute, sign: int = 1) -> None:
        for key, c in counts.items():
            total = self.total.get(key)
            if total is None:
                total = self.total[key] = Counts()
            total.add(c, sign)
            if total.n <= 0:
                del self.total[key]
        if sign > 0:
            self.included.append(minute)


@dataclass(frozen=True)
class TallyView:
    """The tally at one moment: `window(minutes)` and `last_minute()` per (queue, status)."""

    now: dt.datetime
    settled: dict[int, dict[Key, Counts]]  # window length -> sums of its settled minutes
    tail: dict[dt.datetime, Minute]  # the unsettled minutes, read just now
    last: dict[Key, int]  # finished in the last 60 seconds

    def window(self, minutes: int) -> dict[Key, Counts]:
        """Jobs finished in the window of `minutes` (one of the tally's windows)."""
        start = floor_minute(self.now) - (minutes - 1) * MINUTE
        out = _copy(self.settled[minutes])
        for minute, counts in self.tail.items():
            if minute >= start:
                for key, c in counts.items():
                    out.setdefault(key, Counts()).add(c)
        return out

    def last_minute(self) -> dict[Key, int]:
        return self.last


class FinishedTally:
    """Keeps the settled minutes of the last `max(windows)` minutes (see the module doc)."""

    def __init__(self, windows: Sequence[int] = (60, DAY_MINUTES)) -> None:
        if not windows or min(windows) < 1:
            raise ValueError("windows must be at least one minute long")
        self._windows = {m: _Window(m) for m in sorted(set(windows))}
        self._horizon = max(self._windows)
        self._minutes: dict[dt.datetime, Minute] = {}  # settled minutes kept, oldest first
        self._read_until: dt.datetime | None = None  # every minute before it has been read
        self.statements = 0  # range reads issued (tests check a refresh reads only what's new)

    @property
    def windows(self) -> tuple[int, ...]:
        return tuple(self._windows)

    async def refresh(self, conn: Conn, now: dt.datetime) -> TallyView:
        """Read what settled since the last refresh and the tail, as of `now` (the database
        clock of `conn`'s snapshot)."""
        edge = floor_minute(now - SETTLE)
        horizon_start = floor_minute(now) - (self._horizon - 1) * MINUTE
        lo = self._read_until
        if lo is None or lo < horizon_start:
            lo = horizon_start
        while lo < edge:
            hi = min(lo + CHUNK, edge)
            rows = await queue_finished_minutes(conn, lo, hi)
            self.statements += 1
            self._take(_by_minute(rows), now)
            self._read_until = lo = hi
        self._expire(now)
        tail_rows = await queue_finished_minutes(conn, max(edge, horizon_start), None)
        self.statements += 1
        last: dict[Key, int] = {}
        for r in tail_rows:
            if r["last_minute"]:
                key = (r["queue"], r["status"])
                last[key] = last.get(key, 0) + r["last_minute"]
        return TallyView(
            now=now,
            settled={m: _copy(w.total) for m, w in self._windows.items()},
            tail=_by_minute(tail_rows),
            last=last,
        )

    def _take(self, minutes: dict[dt.datetime, Minute], now: dt.datetime) -> None:
        for minute in sorted(minutes):
            counts = minutes[minute]
            self._minutes[minute] = counts
            for w in self._windows.values():
                if minute >= w.start(now):
                    w.add(minute, counts)

    def _expire(self, now: dt.datetime) -> None:
        for w in self._windows.values():
            start = w.start(now)
            while w.included and w.included[0] < start:
                minute = w.included.popleft()
                w.add(minute, self._minutes[minute], sign=-1)
        horizon_start = floor_minute(now) - (self._horizon - 1) * MINUTE
        for minute in [m for m in self._minutes if m < horizon_start]:
            del self._minutes[minute]
