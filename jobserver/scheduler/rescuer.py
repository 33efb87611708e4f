"""Rescuer (leader only): jobs whose worker stopped renewing their lease get a new life.

Each run rescues up to `batch` held jobs (running/cancelling) whose `lease_expires_at` passed, in
one transaction (`jobserver.db.maintenance.job_rescue_expired`): back to `queued` when attempts
remain (events `lease_expired` + `rescued`), else `failed` + DLQ copy (events `lease_expired`,
`failed`, `dead_lettered`); a job whose cancel was pending ends `cancelled`. The attempt row
closes with outcome `lease_expired`. Fenced: the UPDATE re-checks status and lease expiry on the
locked row, so a job that finished (or was renewed) meanwhile is untouched. Runs repeat until a
batch comes back short, bounded by `max_batches`.

Each run also fails the queued jobs of private queues (broadcast children, `@<worker id>`)
whose worker is gone: not active or stopping, or silent for `silent_seconds`
(`jobserver.db.broadcast.broadcast_fail_orphans`; outcome `orphaned`). No other worker may
run them, so they would otherwise wait forever.

Options: `interval` (RESCUE_INTERVAL_SECONDS, default 5 s), `batch` (1000), `max_batches` (10),
`silent_seconds` (3 x HEARTBEAT_INTERVAL_SECONDS, 30 s).
Emits: `jobserver_scheduler_jobs_rescued_total{outcome}` and one log line per run.
"""

from __future__ import annotations

import asyncpg

from jobserver.db.broadcast import broadcast_fail_orphans
from jobserver.db.maintenance import job_rescue_expired
from jobserver.scheduler import metrics
from jobserver.scheduler.base import BaseService, LeaderCheck


class Rescuer(BaseService):
    name = "rescuer"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval: float = 5.0,
        leader: LeaderCheck | None = None,
        batch: int = 1000,
        max_batches: int = 10,
        holder: str = "scheduler",
        silent_seconds: float = 30.0,
    ) -> None:
        super().__init__(pool, interval=interval, leader=leader)
        self.batch = batch
        self.max_batches = max_batches
        self.holder = holder
        self.silent_seconds = silent_seconds

    async def run_once(self) -> dict[str, int]:
        totals = {"requeued": 0, "failed": 0, "cancelled": 0, "orphaned": 0}
        for _ in range(self.max_batches):
            async with self.pool.acquire() as conn:
                res = await job_rescue_expired(conn, self.batch, self.holder)
            totals["requeued"] += len(res.requeued)
            totals["failed"] += len(res.failed)
            totals["cancelled"] += len(res.cancelled)
            if res.total < self.batch:
                break
        for _ in range(self.max_batches):
            async with self.pool.acquire() as conn:
                orphans = await broadcast_fail_orphans(conn, self.silent_seconds, self.batch)
            totals["orphaned"] += len(orphans)
            if len(orphans) < self.batch:
                break
        for outcome, n in totals.items():
            if n:
                metrics.RESCUED.labels(outcome).inc(n)
        return totals
