"""Failure watch (leader only): a schedule whose latest runs keep failing is disabled.

The streak is derived, never counted up blindly: `failure_streak` reads the schedule's latest
finished runs (newest fire first, through `jobs_schedule_fire_idx`, at most N rows) and counts
how many in a row ended `failed` or `expired`; a run that succeeded (or was cancelled) ends the
streak. Runs created before the schedule was last disabled (`disabled_at`, kept when it is
re-enabled) do not count, so re-enabling starts afresh. N is the schedule's
`max_consecutive_failures`, or MAX_CONSECUTIVE_FAILURES (default 3) when NULL; 0 = never.

When the streak reaches N the schedule is disabled (`enabled=false`, `disabled_reason`
"disabled after 3 consecutive failed runs (last: job <id>: <error>)", `disabled_at`), with a
`schedule_disabled` event (details: schedule, reason) on the last failed job, a log line and
`jobserver_scheduler_schedules_disabled_total`. Otherwise `consecutive_failures` is refreshed.

Two callers, both off the workers' path: the cron service checks a schedule at fire time
(cheap: N rows; catches expired runs and anything the sweep missed), and `FailureWatch` sweeps
each tick: runs that failed since its in-memory watermark, found through `dead_letter_jobs`
(every terminal failure lands there, under the job's id), at most `batch` per tick.

Options of FailureWatch: `interval` (SCHEDULER_TICK_SECONDS), `batch` (500 failed runs per
tick), `window` (3600 s: the watermark starts at the first leader tick minus this and never
lags further behind), `default_max` (MAX_CONSECUTIVE_FAILURES).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from jobserver.db.conn import Conn
from jobserver.db.schedules import (
    schedule_disable_failing,
    schedule_failed_since,
    schedule_get,
    schedule_now,
    schedule_runs_latest_finished,
    schedule_set_failures,
)
from jobserver.scheduler import metrics
from jobserver.scheduler.base import BaseService, LeaderCheck

log = logging.getLogger("jobserver.scheduler.failures")

FAILED = ("failed", "expired")
DISPLAY_CAP = 100  # runs read to show the streak of a schedule that is never disabled
MAX_ERROR = 500  # characters of the last error quoted in the reason
ZERO_ID = uuid.UUID(int=0)


@dataclass(frozen=True)
class Streak:
    count: int
    last_job_id: uuid.UUID | None
    last_error: str | None


def streak_of(runs: Sequence[asyncpg.Record]) -> Streak:
    """The failures in a row at the head of `runs` (newest first)."""
    count = 0
    for r in runs:
        if r["status"] not in FAILED:
            break
        count += 1
    if not count:
        return Streak(0, None, None)
    last = runs[0]
    error = last["last_error"] or (
        "expired before it could run" if last["status"] == "expired" else None
    )
    return Streak(count, last["id"], error)


def disabled_reason(streak: Streak) -> str:
    error = streak.last_error or "no error recorded"
    if len(error) > MAX_ERROR:
        error = error[: MAX_ERROR - 3] + "..."
    return (
        f"disabled after {streak.count} consecutive failed runs"
        f" (last: job {streak.last_job_id}: {error})"
    )


async def check_schedule(conn: Conn, schedule: asyncpg.Record, default_max: int) -> bool:
    """Refresh one schedule's streak (its row locked by the caller); True if it got disabled."""
    limit = schedule["max_consecutive_failures"]
    if limit is None:
        limit = default_max
    runs = await schedule_runs_latest_finished(
        conn, schedule["name"], limit or DISPLAY_CAP, schedule["disabled_at"]
    )
    streak = streak_of(runs)
    if limit and streak.count >= limit and schedule["enabled"]:
        assert streak.last_job_id is not None
        reason = disabled_reason(streak)
        if await schedule_disable_failing(
            conn,
            schedule["name"],
            failures=streak.count,
            reason=reason,
            last_job_id=streak.last_job_id,
        ):
            metrics.SCHEDULES_DISABLED.inc()
            log.warning(
                "schedule %s disabled: %s",
                schedule["name"],
                reason,
                extra={"schedule": schedule["name"], "failures": streak.count},
            )
            return True
    if streak.count != schedule["consecutive_failures"]:
        await schedule_set_failures(conn, schedule["name"], streak.count)
    return False


class FailureWatch(BaseService):
    name = "schedule_failures"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval: float = 1.0,
        leader: LeaderCheck | None = None,
        batch: int = 500,
        window: float = 3600.0,
        default_max: int = 3,
    ) -> None:
        super().__init__(pool, interval=interval, leader=leader)
        self.batch = batch
        self.window = dt.timedelta(seconds=window)
        self.default_max = default_max
        self.watermark: tuple[dt.datetime, uuid.UUID] | None = None

    async def run_once(self) -> dict[str, int]:
        async with self.pool.acquire() as conn:
            floor = await schedule_now(conn) - self.window
            if self.watermark is None or self.watermark[0] < floor:
                self.watermark = (floor, ZERO_ID)
            failed = await schedule_failed_since(conn, self.watermark, self.batch)
            names = sorted({r["schedule_name"] for r in failed})
            disabled = 0
            for name in names:
                async with conn.transaction():
                    row = await schedule_get(conn, name, lock=True)
                    if row is not None and await check_schedule(conn, row, self.default_max):
                        disabled += 1
        if failed:  # moved on only once every schedule concerned was checked
            self.watermark = (failed[-1]["failed_at"], failed[-1]["id"])
        return {"failed_runs": len(failed), "schedules": len(names), "disabled": disabled}
