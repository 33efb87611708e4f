"""Workers-gone service (leader only): marks workers that stopped heartbeating as `gone`.

A worker refreshes `workers.last_seen_at` every HEARTBEAT_INTERVAL_SECONDS; one silent for
`missed_beats` (3) intervals is marked `gone` (its jobs are the rescuer's business: their leases
expire on their own). A gone worker that comes back re-registers itself as active.

Options: `interval` (RESCUE_INTERVAL_SECONDS, 5 s), `heartbeat_seconds` (HEARTBEAT_INTERVAL_SECONDS,
10 s), `missed_beats` (3). Emits: `jobserver_scheduler_workers_gone_total`, one log line per run.
"""

from __future__ import annotations

import asyncpg

from jobserver.db.maintenance import worker_mark_gone
from jobserver.scheduler import metrics
from jobserver.scheduler.base import BaseService, LeaderCheck


class WorkersGone(BaseService):
    name = "workers_gone"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval: float = 5.0,
        leader: LeaderCheck | None = None,
        heartbeat_seconds: float = 10.0,
        missed_beats: int = 3,
    ) -> None:
        super().__init__(pool, interval=interval, leader=leader)
        self.silent_seconds = heartbeat_seconds * missed_beats

    async def run_once(self) -> dict[str, int]:
        async with self.pool.acquire() as conn:
            gone = await worker_mark_gone(conn, self.silent_seconds)
        metrics.WORKERS_GONE.inc(len(gone))
        return {"gone": len(gone)}
