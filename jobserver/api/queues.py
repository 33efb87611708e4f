"""Queue health and stats handlers (`view_jobs`): what the people on call look at first.

- `GET /v1/queues`: every queue with its counts, runners, status and alerts, by name (paged:
  `limit`, `cursor`).
- `GET /v1/queues/{name}/health`: one queue: `status`, `counts` {total, waiting, unclaimed, pending,
  scheduled, running, stuck}, `runners` {active, total}, `stuckJobs` (the longest stuck first,
  at most 20: id, workerId, since, reason), `alerts` (rule, severity, value, threshold,
  message), `metrics` over the window: jobsPerMinute, successRate (0-1), avgDurationMs,
  p50DurationMs and p95DurationMs. 404 for a queue that does not exist, 422 (naming `name`)
  for a name no queue can have.
- `GET /v1/health`: the system: `status` (the worst queue's, and `degraded` while no
  scheduler holds the leader lease), `database` {ok, latencyMs}, `scheduler` {leader,
  acquiredAt, leaseExpiresAt, ok}, `workers` by status, every queue's status.
- `GET /v1/stats`: `pending` (queued jobs), `waiting` (jobs waiting for their parents),
  `running` (held jobs), `completed` and `failed`
  (in the last 24 hours), `workers` (active), `queueType` "postgresql", `avgProcessingTime`
  (ms, over the window), `throughput` {lastMinute, lastHour, lastDay} (jobs that succeeded or
  failed).

Every figure comes from one `Snapshot` (`jobserver.api.queue_snapshot`, where the counts are
defined), so the four routes agree with each other; the health rules are in
`jobserver.core.queue_health`. Each route takes `ttl` (seconds): an answer computed less than
that ago is reused (default QUEUE_HEALTH_CACHE_TTL_MS); `checkedAt` is the database clock of
the snapshot.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from jobserver.api.errors import invalid, not_found
from jobserver.api.jsonio import json_response
from jobserver.api.keys import QUERY_KEY, QUEUE_SNAPSHOTS_KEY, SETTINGS_KEY
from jobserver.api.paging import Pager
from jobserver.api.queue_snapshot import Durations, QueueState, Snapshot
from jobserver.api.read_replica import read_pool
from jobserver.core.names import QUEUE
from jobserver.core.queue_health import Alert, worst

QUEUES = Pager("queues", ("str",))


def _ttl(request: web.Request) -> float:
    q = request[QUERY_KEY]
    return q["ttl"] if "ttl" in q else request.app[SETTINGS_KEY].queue_health_cache_ttl_ms / 1000


async def _snapshot(request: web.Request) -> Snapshot:
    app = request.app
    return await app[QUEUE_SNAPSHOTS_KEY].get(read_pool(request), app[SETTINGS_KEY], _ttl(request))


def _alert_json(a: Alert) -> dict[str, Any]:
    return {
        "rule": a.rule,
        "severity": a.severity,
        "value": a.value,
        "threshold": a.threshold,
        "message": a.message,
    }


def _counts_json(s: QueueState) -> dict[str, int]:
    return {
        "total": s.total,
        "waiting": s.waiting,
        "unclaimed": s.unclaimed,
        "pending": s.pending,
        "scheduled": s.scheduled,
        "running": s.running,
        "stuck": s.stuck,
    }


def _metrics_json(snap: Snapshot, s: QueueState) -> dict[str, Any]:
    w = s.window
    return {
        "windowMinutes": snap.window_minutes,
        "jobsPerMinute": snap.jobs_per_minute(w),
        "successRate": w.success_rate,
        "avgDurationMs": w.avg_duration_ms,
        "succeeded": w.succeeded,
        "failed": w.failed,
    }


def queue_json(snap: Snapshot, s: QueueState) -> dict[str, Any]:
    """A queue as `GET /v1/queues` lists it: only figures that change when its jobs do (no
    clock), so two pages read from different snapshots of an idle system agree."""
    return {
        "name": s.name,
        "status": s.status,
        "counts": _counts_json(s),
        "countsCapped": s.capped,
        "oldestWaitingSince": s.oldest_ready,
        "runners": {"active": s.runners_active, "total": s.runners_total},
        "paused": None
        if s.paused is None
        else {
            "pausedAt": s.paused["paused_at"],
            "pausedBy": s.paused["paused_by"],
            "reason": s.paused["reason"],
        },
        "alerts": [_alert_json(a) for a in s.alerts],
        "metrics": _metrics_json(snap, s),
    }


async def list_queues(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    after = QUEUES.after(q)
    limit = q.get("limit", 100)
    snap = await _snapshot(request)
    states = [s for name, s in snap.queues.items() if after is None or name > after[0]]
    return json_response(
        QUEUES.page(states[: limit + 1], limit, lambda s: (s.name,), lambda s: queue_json(snap, s))
    )


def health_json(snap: Snapshot, s: QueueState, d: Durations) -> dict[str, Any]:
    """One queue as `GET /v1/queues/{name}/health` answers it."""
    out = queue_json(snap, s)
    out["queue"] = s.name
    out["oldestWaitingSeconds"] = s.oldest_wait_seconds
    out["stuckJobs"] = [
        {"id": j.id, "workerId": j.worker_id, "since": j.since, "reason": j.reason}
        for j in s.stuck_jobs
    ]
    out["metrics"].update(p50DurationMs=d.p50_ms, p95DurationMs=d.p95_ms, durationSample=d.n)
    out["checkedAt"] = snap.at
    return out


async def queue_health(request: web.Request) -> web.Response:
    name = request.match_info.get("name", "")
    if not QUEUE.matches(name):
        raise invalid("name", f"queue {name[:120]!r}: expected {QUEUE.description}")
    app = request.app
    snapshots, ttl = app[QUEUE_SNAPSHOTS_KEY], _ttl(request)
    known = snapshots.fresh(ttl)
    if known is not None and name not in known.queues:
        raise not_found("queue")
    snap, durations = await asyncio.gather(  # two statements of their own: both at once
        _snapshot(request), snapshots.durations(read_pool(request), app[SETTINGS_KEY], name, ttl)
    )
    state = snap.queues.get(name)
    if state is None:
        raise not_found("queue")
    return json_response(health_json(snap, state, durations))


async def system_health(request: web.Request) -> web.Response:
    snap = await _snapshot(request)
    leader = snap.leader
    scheduler_ok = leader is not None and not leader["expired"]
    status = worst([snap.status, "healthy" if scheduler_ok else "degraded"])
    return json_response(
        {
            "status": status,
            "database": {"ok": True, "latencyMs": snap.db_latency_ms},
            "scheduler": {
                "ok": scheduler_ok,
                "leader": None if leader is None else leader["holder"],
                "acquiredAt": None if leader is None else leader["acquired_at"],
                "leaseExpiresAt": None if leader is None else leader["lease_expires_at"],
            },
            "workers": snap.workers,
            "queues": [
                {"name": s.name, "status": s.status, "alerts": len(s.alerts)}
                for s in snap.queues.values()
            ],
            "queuesTruncated": snap.truncated,
            "checkedAt": snap.at,
        }
    )


async def stats(request: web.Request) -> web.Response:
    snap = await _snapshot(request)
    queues = snap.queues.values()
    return json_response(
        {
            "pending": sum(s.unclaimed + s.scheduled for s in queues),
            "waiting": sum(s.waiting for s in queues),
            "running": sum(s.pending + s.running for s in queues),
            "completed": snap.last_day.succeeded,
            "failed": snap.last_day.failed,
            "workers": snap.workers["active"],
            "queueType": "postgresql",
            "avgProcessingTime": snap.window.avg_duration_ms,
            "throughput": {
                "lastMinute": snap.last_minute,
                "lastHour": snap.last_hour.succeeded + snap.last_hour.failed,
                "lastDay": snap.last_day.succeeded + snap.last_day.failed,
            },
            "windowMinutes": snap.window_minutes,
            "countsCapped": any(s.capped for s in queues),
            "queuesTruncated": snap.truncated,
            "checkedAt": snap.at,
        }
    )
