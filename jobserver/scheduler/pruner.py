"""Pruner (leader only): deletes finished jobs past their retention so the hot table stays small.

Retention per status (settings, seconds): succeeded RETENTION_SUCCEEDED_SECONDS (7 days),
cancelled and expired RETENTION_CANCELLED_SECONDS (7 days), failed RETENTION_FAILED_SECONDS
(7 days) counted only once the job left the DLQ (redriven or discarded): a failed job whose DLQ
row still waits is kept. Events and attempts go with their job (ON DELETE CASCADE).

Each run deletes batches of `batch` rows (PRUNE_BATCH_SIZE, 1000), oldest `finished_at` first
on `jobs_finished_idx`, until a batch comes back short or `max_batches` (100) ran, so one run
never holds locks for long and a backlog drains over a few runs.

Options: `interval` (PRUNE_INTERVAL_SECONDS, 60 s), the retentions, `batch`, `max_batches`.
Emits: `jobserver_scheduler_jobs_pruned_total{status}` and one log line per run.
"""

from __future__ import annotations

import asyncpg

from jobserver.db.maintenance import job_prune_finished
from jobserver.scheduler import metrics
from jobserver.scheduler.base import BaseService, LeaderCheck

DAY = 86400.0


class Pruner(BaseService):
    name = "pruner"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval: float = 60.0,
        leader: LeaderCheck | None = None,
        succeeded_seconds: float = 7 * DAY,
        cancelled_seconds: float = 7 * DAY,
        failed_seconds: float = 7 * DAY,
        batch: int = 1000,
        max_batches: int = 100,
    ) -> None:
        super().__init__(pool, interval=interval, leader=leader)
        self.succeeded_seconds = succeeded_seconds
        self.cancelled_seconds = cancelled_seconds
        self.failed_seconds = failed_seconds
        self.batch = batch
        self.max_batches = max_batches

    async def run_once(self) -> dict[str, int]:
        totals: dict[str, int] = {"pruned": 0}
        for _ in range(self.max_batches):
            async with self.pool.acquire() as conn:
                counts = await job_prune_finished(
                    conn,
                    succeeded_seconds=self.succeeded_seconds,
                    cancelled_seconds=self.cancelled_seconds,
                    failed_seconds=self.failed_seconds,
                    limit=self.batch,
                )
            n = sum(counts.values())
            totals["pruned"] += n
            for status, c in counts.items():
                totals[status] = totals.get(status, 0) + c
                metrics.PRUNED.labels(status).inc(c)
            if n < self.batch:
                break
        return totals
