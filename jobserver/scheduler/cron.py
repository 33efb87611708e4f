"""Cron service (leader only): turns due schedules into jobs, exactly once per fire time.

Each tick, in one transaction: lock up to `batch` enabled schedules whose `next_fire_at` passed
(SKIP LOCKED), plan their fires with `firetimes.plan_fires` against the database clock, insert
one job per fire with (schedule_name, scheduled_for) = (name, fire time) — the unique index
`jobs_schedule_fire_idx` turns a repeat into a no-op — and move `next_fire_at` on. A crash
between insert and commit loses nothing: both roll back and the next leader redoes the tick.

Options: `interval` (SCHEDULER_TICK_SECONDS, default 1 s), `batch` (100 schedules per tick),
`max_consecutive_failures` (the default limit, 3),
`grace` (how late a fire may be and still count as on time for catch-up `none`; default
max(5 s, 3 ticks)). Per schedule: `overlap_policy` `skip` creates nothing while the last job is
still queued/running; `catchup_policy`/`catchup_limit` decide what happens to missed fires;
`expires_at` ends a schedule (it is disabled). Jobs get the schedule's definition version (or the
latest registered), queue, priority, params, `event` and `tags`, owner `system:scheduler`
(`jobserver.owners.SCHEDULER`), and the schedule's maxAttempts, else 1: recurring runs are not
retried by default (a failure waits for the next fire); a schedule opts in with maxAttempts > 1.
Before firing, the schedule's failure streak is re-checked (`jobserver.scheduler.failures`,
`max_consecutive_failures` option, MAX_CONSECUTIVE_FAILURES): one that reached its limit is
disabled and fires nothing.

Emits: `jobserver_scheduler_cron_fired_total`, `jobserver_scheduler_cron_missed_total`, the
base service's tick metrics and one log line per tick (`fired`, `missed`, `schedules`).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import asyncpg

from jobserver import owners
from jobserver.core.rate_limits import RateLimit
from jobserver.core.submission import schedule_job
from jobserver.db.conn import Conn
from jobserver.db.definitions import definition_get
from jobserver.db.jobs import NewJob
from jobserver.db.schedules import (
    schedule_due_lock,
    schedule_job_status,
    schedule_jobs_insert,
    schedule_jobs_label,
    schedule_mark_fired,
)
from jobserver.scheduler import metrics
from jobserver.scheduler.base import BaseService, LeaderCheck
from jobserver.scheduler.failures import check_schedule
from jobserver.scheduler.firetimes import Timing, first_fire_at, plan_fires

log = logging.getLogger("jobserver.scheduler.cron")

SCHEDULE_OWNER = owners.SCHEDULER  # internal: no token can own it
RECURRING_MAX_ATTEMPTS = 1  # a schedule's runs are not retried unless it sets maxAttempts


class CronService(BaseService):
    name = "cron"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval: float = 1.0,
        leader: LeaderCheck | None = None,
        batch: int = 100,
        grace: float | None = None,
        max_consecutive_failures: int = 3,
    ) -> None:
        super().__init__(pool, interval=interval, leader=leader)
        self.batch = batch
        self.max_consecutive_failures = max_consecutive_failures
        self.grace = timedelta(seconds=grace if grace is not None else max(5.0, 3 * interval))

    async def run_once(self) -> dict[str, int]:
        fired = missed = seen = 0
        async with self.pool.acquire() as conn, conn.transaction():
            for row in await schedule_due_lock(conn, self.batch):
                seen += 1
                try:
                    async with conn.transaction():
                        f, m = await self._fire(conn, row)
                except (asyncpg.PostgresError, ValueError) as e:
                    log.warning("schedule %s skipped: %s", row["name"], e)
                    continue
                fired += f
                missed += m
        metrics.CRON_FIRED.inc(fired)
        metrics.CRON_MISSED.inc(missed)
        return {"schedules": seen, "fired": fired, "missed": missed}

    async def _fire(self, conn: Conn, row: asyncpg.Record) -> tuple[int, int]:
        now = row["db_now"]
        timing = Timing(row["cron"], row["every_seconds"], row["timezone"])
        if row["expires_at"] is not None and now >= row["expires_at"]:
            await schedule_mark_fired(conn, row["name"], next_fire_at=None, disable=True)
            return 0, 0
        if row["next_fire_at"] is not None and await check_schedule(
            conn, row, self.max_consecutive_failures
        ):
            return 0, 0
        if row["next_fire_at"] is None:
            nxt = first_fire_at(timing, now, row["start_at"])
            await schedule_mark_fired(conn, row["name"], next_fire_at=nxt, disable=nxt is None)
            return 0, 0
        plan = plan_fires(
            timing,
            row["next_fire_at"],
            now,
            row["catchup_policy"],
            row["catchup_limit"],
            grace=self.grace,
            expires_at=row["expires_at"],
        )
        fires = plan.fires
        missed = plan.missed
        if fires and row["overlap_policy"] == "skip" and row["last_job_id"] is not None:
            status = await schedule_job_status(conn, row["last_job_id"])
            if status in ("queued", "running", "cancelling"):
                missed += len(fires)
                fires = []
        job_ids: list[Any] = []
        if fires:
            jobs = await self._jobs(conn, row, fires)
            if jobs is None:  # definition not registered (yet): skip these fires, log once each
                missed += len(fires)
                fires = []
            else:
                job_ids = await schedule_jobs_insert(conn, jobs)
                await schedule_jobs_label(conn, job_ids, row["event"], row["tags"])
        await schedule_mark_fired(
            conn,
            row["name"],
            next_fire_at=plan.next_fire_at,
            last_fire_at=fires[-1] if fires else None,
            last_job_id=job_ids[-1] if job_ids else None,
            disable=plan.next_fire_at is None,
        )
        return len(job_ids), missed

    async def _jobs(self, conn: Conn, row: asyncpg.Record, fires: list[Any]) -> list[NewJob] | None:
        d = await definition_get(conn, row["definition_key"], row["definition_version"])
        if d is None:
            log.warning(
                "schedule %s: definition %s@%s is not registered; fire skipped",
                row["name"],
                row["definition_key"],
                row["definition_version"] or "latest",
            )
            return None
        defaults = (d["key"], d["version"], RECURRING_MAX_ATTEMPTS)
        rate = RateLimit.from_json(d["rate_limit"])
        return [schedule_job(row, defaults, SCHEDULE_OWNER, t, rate) for t in fires]
