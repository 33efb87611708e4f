"""Expirer (leader only): queued jobs whose `expires_at` passed become `expired`.

Each run expires up to `batch` jobs per statement (`job_expire_queued`: SKIP LOCKED, the
condition re-checked in the UPDATE, event `expired`), repeating until a batch comes back short,
bounded by `max_batches`. Workers never claim an expired row, so this only makes the outcome
visible and final.

Options: `interval` (RESCUE_INTERVAL_SECONDS, default 5 s), `batch` (1000), `max_batches` (10).
Emits: `jobserver_scheduler_jobs_expired_total` and one log line per run.
"""

from __future__ import annotations

import asyncpg

from jobserver.db.maintenance import job_expire_queued
from jobserver.scheduler import metrics
from jobserver.scheduler.base import BaseService, LeaderCheck


class Expirer(BaseService):
    name = "expirer"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval: float = 5.0,
        leader: LeaderCheck | None = None,
        batch: int = 1000,
        max_batches: int = 10,
    ) -> None:
        super().__init__(pool, interval=interval, leader=leader)
        self.batch = batch
        self.max_batches = max_batches

    async def run_once(self) -> dict[str, int]:
        expired = 0
        for _ in range(self.max_batches):
            async with self.pool.acquire() as conn:
                ids = await job_expire_queued(conn, self.batch)
            expired += len(ids)
            if len(ids) < self.batch:
                break
        metrics.EXPIRED.inc(expired)
        return {"expired": expired}
