"""`QueueSnapshots`: one computation of every queue's state, which all the queue routes render.

`GET /v1/queues`, `/v1/queues/{name}/health`, `/v1/health` and `/v1/stats` answer from the
same `Snapshot`, so their figures agree by construction. Per queue (definitions in
`jobserver.db.queues`):

- `unclaimed`: queued and ready to run now; `scheduled`: queued with a run time in the future
  (delayed, or waiting out a retry back-off); both exact up to QUEUE_COUNT_CAP, past it the
  cap (`capped`: a lower bound);
- `pending`: claimed by a worker but not started (in its local buffer); `running`: the rest of
  what workers hold (`running` and `cancelling` jobs); `stuck`: held jobs past their lease or
  past their timeout by QUEUE_STUCK_MARGIN_SECONDS, counted in pending or running too;
- `waiting`: jobs whose parents (`dependsOn`) have not all finished (status waiting),
  counted up to QUEUE_COUNT_CAP over all queues (`capped` past it);
- `total` = waiting + unclaimed + scheduled + pending + running: the queue's unfinished jobs;
- runners: live workers that serve it (by name, or every queue), `active` those claiming;
- `paused`: its durable pause (`jobserver.db.paused_queues`), if any;
- the window (QUEUE_HEALTH_WINDOW_MINUTES): jobs that finished in it, per status, and their
  run times (`jobserver.api.finished_tally`).

A queue exists while it has waiting, queued or held jobs, a live worker names it, it is
paused, or some of its jobs finished in the last day; at most MAX_QUEUES of them (by name) are
shown (`truncated`).
The system figures are sums over the same queues: `pending` (status queued: unclaimed +
scheduled), `running` (held: pending + running), throughput = jobs that succeeded or failed
in the last minute / hour / day.

A snapshot is one read-only REPEATABLE READ transaction (plus the tally's reads), computed
at most once per QUEUE_HEALTH_CACHE_TTL_MS per app (a request's `?ttl=` seconds overrides;
`ttl=0` recomputes) and once for any number of concurrent callers (`SingleFlight`). The
duration percentiles of one queue (`durations`) are a query of their own, cached the same way.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import asyncpg

from jobserver.api.finished_tally import DAY_MINUTES, Counts, FinishedTally
from jobserver.api.singleflight import SingleFlight
from jobserver.config import Settings
from jobserver.core.queue_health import (
    Alert,
    QueueFigures,
    Status,
    Thresholds,
    queue_alerts,
    status_of,
    worst,
)
from jobserver.db import queues as sql
from jobserver.db.leader import leader_get
from jobserver.db.paused_queues import paused_queue_list
from jobserver.db.workers import WORKER_STATUSES
from jobserver.scheduler.leader import ELECTION

MAX_QUEUES = 1000
STUCK_LIST = 20  # stuck jobs listed per queue (the count says how many there are)
DURATION_SCAN = 5_000  # latest finished jobs the duration percentiles look at
DURATIONS_KEPT = 256  # queues whose percentiles are cached
FINISHED = ("succeeded", "failed")


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(
        backlog=settings.queue_alert_backlog,
        wait_seconds=settings.queue_alert_wait_seconds,
        failure_rate=settings.queue_alert_failure_rate,
        stuck=settings.queue_alert_stuck,
    )


@dataclass(frozen=True)
class StuckJob:
    id: object
    worker_id: str | None
    since: dt.datetime
    reason: str


@dataclass(frozen=True)
class Finished:
    """Jobs finished in a window, per terminal status, and the run times of those that
    succeeded or failed."""

    by_status: dict[str, int]
    timed: int
    duration_ms: float

    @property
    def succeeded(self) -> int:
        return self.by_status.get("succeeded", 0)

    @property
    def failed(self) -> int:
        return self.by_status.get("failed", 0)

    @property
    def avg_duration_ms(self) -> float | None:
        return round(self.duration_ms / self.timed, 3) if self.timed else None

    @property
    def success_rate(self) -> float | None:
        done = self.succeeded + self.failed
        return round(self.succeeded / done, 4) if done else None


def _finished(counts: Iterable[tuple[str, Counts]]) -> Finished:
    by_status: dict[str, int] = {}
    timed, duration = 0, 0.0
    for status, c in counts:
        by_status[status] = by_status.get(status, 0) + c.n
        if status in FINISHED:
            timed += c.timed
            duration += c.duration_ms
    return Finished(by_status, timed, max(duration, 0.0))


@dataclass(frozen=True)
class QueueState:
    name: str
    waiting: int = 0
    unclaimed: int = 0
    scheduled: int = 0
    pending: int = 0
    running: int = 0
    stuck: int = 0
    capped: bool = False  # unclaimed or scheduled passed the cap: answered as the cap
    oldest_ready: dt.datetime | None = None  # the run time of the oldest unclaimed job
    oldest_wait_seconds: float | None = None  # how long it has waited, at the snapshot
    runners_active: int = 0
    runners_total: int = 0
    window: Finished = field(default_factory=lambda: Finished({}, 0, 0.0))
    stuck_jobs: tuple[StuckJob, ...] = ()
    paused: asyncpg.Record | None = None  # its paused_queues row (paused_at, paused_by, reason)
    alerts: tuple[Alert, ...] = ()
    status: Status = "healthy"

    @property
    def total(self) -> int:
        return self.waiting + self.unclaimed + self.scheduled + self.pending + self.running


@dataclass(frozen=True)
class Snapshot:
    at: dt.datetime  # the database clock of the snapshot
    db_latency_ms: float
    window_minutes: int
    queues: dict[str, QueueState]  # by name, in name order
    truncated: bool
    workers: dict[str, int]  # worker rows by status
    leader: asyncpg.Record | None
    last_minute: int  # succeeded or failed in the last 60 seconds
    last_hour: Finished
    last_day: Finished
    window: Finished  # every queue's window together

    @property
    def status(self) -> Status:
        """The worst status of the queues."""
        return worst([q.status for q in self.queues.values()])

    def jobs_per_minute(self, f: Finished) -> float:
        """Jobs of `f` (a window's) that succeeded or failed, per minute of the window (its
        length: the current minute counts as a whole one, so a figure changes only when jobs
        finish)."""
        return round((f.succeeded + f.failed) / self.window_minutes, 3)


@dataclass(frozen=True)
class Durations:
    n: int
    p50_ms: float | None
    p95_ms: float | None


class QueueSnapshots:
    """The app's snapshot source (under QUEUE_SNAPSHOTS_KEY); see the module doc."""

    def __init__(self, window_minutes: int) -> None:
        self.window_minutes = window_minutes
        self.tally = FinishedTally((window_minutes, 60, DAY_MINUTES))
        self._flights: SingleFlight[object] = SingleFlight()
        self._snapshot: tuple[float, Snapshot] | None = None
        self._durations: dict[str, tuple[float, Durations]] = {}

    def fresh(self, ttl: float) -> Snapshot | None:
        """The last snapshot if it is younger than `ttl` seconds."""
        hit = self._snapshot
        return hit[1] if hit is not None and time.monotonic() - hit[0] < ttl else None

    async def get(self, pool: asyncpg.Pool, settings: Settings, ttl: float) -> Snapshot:
        hit = self.fresh(ttl)
        if hit is not None:
            return hit
        value = await self._flights.run("snapshot", lambda: self._compute(pool, settings))
        assert isinstance(value, Snapshot)
        return value

    async def durations(
        self, pool: asyncpg.Pool, settings: Settings, queue: str, ttl: float
    ) -> Durations:
        """The run time percentiles of `queue` over the window: a statement of its own, which
        needs nothing of the snapshot (a health request runs both at once)."""
        hit = self._durations.get(queue)
        if hit is not None and time.monotonic() - hit[0] < ttl:
            return hit[1]

        async def compute() -> Durations:
            started = time.monotonic()
            async with sql.queues_conn(pool, settings.metrics_statement_timeout_ms) as conn:
                row = await sql.queue_durations(conn, queue, self.window_minutes, DURATION_SCAN)
            value = Durations(
                row["n"],
                None if row["p50_ms"] is None else round(row["p50_ms"], 3),
                None if row["p95_ms"] is None else round(row["p95_ms"], 3),
            )
            if len(self._durations) >= DURATIONS_KEPT:
                self._durations.clear()
            self._durations[queue] = (started, value)
            return value

        value = await self._flights.run(("durations", queue), compute)
        assert isinstance(value, Durations)
        return value

    async def _compute(self, pool: asyncpg.Pool, settings: Settings) -> Snapshot:
        started = time.monotonic()
        margin = settings.queue_stuck_margin_seconds
        cap = settings.queue_count_cap
        async with sql.queues_conn(pool, settings.metrics_statement_timeout_ms) as conn:
            t0 = time.perf_counter()
            now = await sql.queue_clock(conn)
            latency_ms = round((time.perf_counter() - t0) * 1000, 3)
            waiting = await sql.queue_waiting(conn, cap + 1, MAX_QUEUES + 1)
            dependents = await sql.queue_dependents_waiting(conn, cap + 1)
            held = await sql.queue_held(conn, margin, STUCK_LIST)
            live = await sql.queue_live_workers(conn)
            statuses = await sql.queue_worker_statuses(conn)
            leader = await leader_get(conn, ELECTION)
            paused = {r["queue"]: r for r in await paused_queue_list(conn, limit=MAX_QUEUES + 1)}
            view = await self.tally.refresh(conn, now)
        window = view.window(self.window_minutes)
        day = view.window(DAY_MINUTES)
        names = {r["queue"] for r in waiting} | {r["queue"] for r in held} | set(dependents)
        dependents_capped = sum(dependents.values()) > cap
        names |= {q for r in live for q in (r["queues"] or ())}
        names |= {q for q, _ in day} | set(paused)
        window_by: dict[str, list[tuple[str, Counts]]] = {}
        for (q, s), c in window.items():
            window_by.setdefault(q, []).append((s, c))
        stuck_by = {
            r["queue"]: tuple(
                StuckJob(*j)
                for j in zip(
                    r["stuck_ids"] or (),
                    r["stuck_workers"] or (),
                    r["stuck_since"] or (),
                    r["stuck_reasons"] or (),
                    strict=True,
                )
            )
            for r in held
        }
        waiting_by = {r["queue"]: r for r in waiting}
        held_by = {r["queue"]: r for r in held}
        rules = thresholds(settings)
        queues: dict[str, QueueState] = {}
        for name in sorted(names)[:MAX_QUEUES]:
            w, h = waiting_by.get(name), held_by.get(name)
            serving = [r for r in live if r["queues"] is None or name in r["queues"]]
            unclaimed = 0 if w is None else w["unclaimed"]  # counted up to cap + 1
            scheduled = 0 if w is None else w["scheduled"]
            oldest = None if w is None else w["oldest_ready"]
            wait = None if oldest is None else round(max((now - oldest).total_seconds(), 0.0), 3)
            state = QueueState(
                name=name,
                waiting=min(dependents.get(name, 0), cap),
                unclaimed=min(unclaimed, cap),
                scheduled=min(scheduled, cap),
                pending=0 if h is None else h["pending"],
                running=0 if h is None else h["running"],
                stuck=0 if h is None else h["stuck"],
                capped=unclaimed > cap
                or scheduled > cap
                or (dependents_capped and name in dependents),
                oldest_ready=oldest,
                oldest_wait_seconds=wait,
                runners_active=sum(1 for r in serving if r["status"] == "active"),
                runners_total=len(serving),
                window=_finished(window_by.get(name, ())),
                stuck_jobs=stuck_by.get(name, ()),
                paused=paused.get(name),
            )
            alerts = queue_alerts(
                QueueFigures(
                    unclaimed=state.unclaimed,
                    oldest_wait_seconds=wait,
                    succeeded=state.window.succeeded,
                    failed=state.window.failed,
                    stuck=state.stuck,
                    active_runners=state.runners_active,
                    unclaimed_capped=unclaimed > cap,
                    paused=name in paused,
                ),
                rules,
            )
            queues[name] = replace(state, alerts=tuple(alerts), status=status_of(alerts))
        workers = {s: 0 for s in WORKER_STATUSES}
        workers.update({r["status"]: r["n"] for r in statuses})
        snapshot = Snapshot(
            at=now,
            db_latency_ms=latency_ms,
            window_minutes=self.window_minutes,
            queues=queues,
            truncated=len(names) > MAX_QUEUES,
            workers=workers,
            leader=leader,
            last_minute=sum(n for (_, s), n in view.last_minute().items() if s in FINISHED),
            last_hour=_finished((s, c) for (_, s), c in view.window(60).items()),
            last_day=_finished((s, c) for (_, s), c in day.items()),
            window=_finished((s, c) for (_, s), c in window.items()),
        )
        self._snapshot = (started, snapshot)
        return snapshot
