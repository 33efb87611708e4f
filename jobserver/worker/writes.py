"""`JobWrites`: the progress pacing and the event budget of one job attempt.

Made by the job context on the job's first event or progress report (most jobs never write
one), so a job that writes nothing costs nothing here.

- Progress: at most one write per `Limits.progress_interval`. A report inside the interval
  replaces the pending one and returns at once; a timer (one handle, not a task, per job with a
  pending report) starts the write when the interval has passed. `flush()`, called by the
  executor when the job's code ends and before its outcome is acknowledged, writes the pending
  report, so the last one is always stored.
- Events: at most `Limits.max_events` custom and progress events are stored per job. The count
  of those already stored (earlier attempts) is read once, at the attempt's first write; then
  the attempt counts in memory. The writes themselves are fenced, so only the worker holding
  the attempt adds to it and the count is exact. At the cap one `events_truncated` event is
  written and later events are dropped (`emit_event` returns False); progress still updates
  `jobs.progress`, without its event.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobserver.codec import dumps_stored

if TYPE_CHECKING:
    from jobserver.config import Settings
    from jobserver.worker.context import JobHost

log = logging.getLogger("jobserver.worker")


@dataclass(frozen=True, slots=True)
class Limits:
    """What one job may store: the size of each JSON value, the progress pace, the events."""

    max_result_bytes: int = 1024 * 1024
    progress_interval: float = 1.0  # seconds
    max_events: int = 10_000

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(s.max_result_bytes, s.progress_min_interval_ms / 1000, s.max_events_per_job)


class JobWrites:
    __slots__ = (
        "_closed",
        "_fenced",
        "_left",
        "_task",
        "_timer",
        "_truncated",
        "_written_at",
        "attempt",
        "host",
        "job_id",
        "limits",
        "pending",
    )

    def __init__(self, host: JobHost, job_id: uuid.UUID, attempt: int) -> None:
        self.host = host
        self.job_id = job_id
        self.attempt = attempt
        self.limits = host.limits
        self.pending: str | None = None  # the newest progress report not yet written
        self._written_at = -math.inf  # loop time of the last progress write
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None  # a timer-started write in flight
        self._left: int | None = None  # events this job may still store (None: not read yet)
        self._truncated = False
        self._fenced = False
        self._closed = False  # flushed: the code ended, later reports are written at once

    # -- events --------------------------------------------------------------------------------

    async def _take(self) -> bool:
        """Use one event of the budget; at the cap write `events_truncated` once; False: drop."""
        if self._left is None:
            stored, truncated = await self.host.events_stored(self.job_id)
            if self._left is None:
                self._left = self.limits.max_events - stored
                self._truncated = truncated
        if self._left > 0:
            self._left -= 1
            return True
        if not self._truncated:
            self._truncated = True
            details = dumps_stored({"limit": self.limits.max_events})
            await self.host.write_event(self.job_id, self.attempt, "events_truncated", details)
        return False

    async def event(self, details_json: str) -> bool:
        """Store a custom event; False when it was dropped (over the cap) or fenced off."""
        if not await self._take():
            return False
        return await self.host.write_event(self.job_id, self.attempt, "custom", details_json)

    # -- progress ------------------------------------------------------------------------------

    async def progress(self, body_json: str) -> bool:
        """Write now when the interval has passed, else keep it pending; False once fenced."""
        if self._fenced:
            return False
        loop = asyncio.get_running_loop()
        now = loop.time()
        idle = self._timer is None and self._task is None
        if self._closed or (idle and now - self._written_at >= self.limits.progress_interval):
            self._written_at = now
            return await self._write(body_json)
        self.pending = body_json
        if idle:
            self._schedule(loop, now)
        return True

    def _schedule(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        delay = max(0.0, self._written_at + self.limits.progress_interval - now)
        self._timer = loop.call_later(delay, self._due)

    async def _write(self, body_json: str) -> bool:
        ok = await self.host.write_progress(
            self.job_id, self.attempt, body_json, event=await self._take()
        )
        if not ok:
            self._fenced = True
        return ok

    def _due(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self._write_pending(), name="progress")

    async def _write_pending(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            body, self.pending = self.pending, None
            if body is not None and not self._fenced:
                self._written_at = loop.time()
                await self._write(body)
        except Exception as e:
            log.warning("progress write failed (%s)", e, extra={"jobId": str(self.job_id)})
        finally:
            self._task = None
            if self.pending is not None and not self._closed:
                self._schedule(loop, loop.time())

    async def flush(self) -> None:
        """The job's code ended: write the pending report now. Raises only CancelledError."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            await asyncio.shield(self._task)
        body, self.pending = self.pending, None
        if body is None or self._fenced:
            return
        try:
            await self._write(body)
        except Exception as e:
            log.warning("progress write failed (%s)", e, extra={"jobId": str(self.job_id)})
