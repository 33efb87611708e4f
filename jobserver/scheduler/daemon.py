"""The scheduler process: leader election plus every maintenance service, wired from Settings.

    daemon = SchedulerDaemon(settings, pool)
    await daemon.start()
    ...
    await daemon.stop()   # stops the services, then releases leadership (successor takes over)

All services run in every process; only the elected leader's ticks do any work. When this
process gains leadership every service is woken so it acts at once rather than at its next tick.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile

import asyncpg

from jobserver.config import Settings
from jobserver.scheduler.base import BaseService
from jobserver.scheduler.cron import CronService
from jobserver.scheduler.expirer import Expirer
from jobserver.scheduler.failures import FailureWatch
from jobserver.scheduler.leader import LeaderElector
from jobserver.scheduler.pruner import Pruner
from jobserver.scheduler.rescuer import Rescuer
from jobserver.scheduler.workers_gone import WorkersGone

log = logging.getLogger("jobserver.scheduler")


def default_holder() -> str:
    return f"scheduler-{socket.gethostname()}-{os.getpid()}"


class SchedulerDaemon:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, holder: str | None = None) -> None:
        self.settings = settings
        self.holder = holder or default_holder()
        s = settings
        self.leader = LeaderElector(pool, self.holder, lease_seconds=s.leader_lease_seconds)
        self.services: list[BaseService] = [
            CronService(
                pool,
                interval=s.scheduler_tick_seconds,
                leader=self.leader,
                max_consecutive_failures=s.max_consecutive_failures,
            ),
            FailureWatch(
                pool,
                interval=s.scheduler_tick_seconds,
                leader=self.leader,
                default_max=s.max_consecutive_failures,
            ),
            Rescuer(
                pool,
                interval=s.rescue_interval_seconds,
                leader=self.leader,
                holder=self.holder,
                silent_seconds=s.heartbeat_interval_seconds * 3,
            ),
            Expirer(pool, interval=s.rescue_interval_seconds, leader=self.leader),
            Pruner(
                pool,
                interval=s.prune_interval_seconds,
                leader=self.leader,
                succeeded_seconds=s.retention_succeeded_seconds,
                cancelled_seconds=s.retention_cancelled_seconds,
                failed_seconds=s.retention_failed_seconds,
                audit_days=s.log_retention_days,
                blob_unattached_seconds=s.blob_unattached_seconds,
                blob_dir=s.blob_dir or None,
                spool_dir=s.video_upload_dir or tempfile.gettempdir(),
                batch=s.prune_batch_size,
            ),
            WorkersGone(
                pool,
                interval=s.rescue_interval_seconds,
                leader=self.leader,
                heartbeat_seconds=s.heartbeat_interval_seconds,
            ),
        ]
        self.leader.on_change.append(self._on_leadership)

    def _on_leadership(self, leader: bool) -> None:
        if leader:
            for svc in self.services:
                svc.wake()

    async def start(self) -> None:
        self.leader.start()
        for svc in self.services:
            svc.start()
        log.info("scheduler started", extra={"holder": self.holder})

    async def stop(self) -> None:
        """Stop every service, then the elector (which releases the lease). Safe to repeat."""
        for svc in self.services:
            await svc.stop()
        await self.leader.stop()
