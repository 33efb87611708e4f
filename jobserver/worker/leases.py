"""`LeaseKeeper`: the two periodic checks a worker runs about the jobs it holds.

- `heartbeat_once`: every HEARTBEAT_INTERVAL_SECONDS, ONE statement extends the lease of every
  held job (fenced) and the worker's own `workers` row is touched. A held job missing from the
  answer lost its lease (`on_lost`); rows found `cancelling` are cancelled (`on_cancel`). A job
  that swallowed the cancellation of its timeout is no longer renewed (`drop_overdue`), so it
  is rescued.
- `cancel_check_once`: every CANCEL_CHECK_INTERVAL_MS (`cancel_check_seconds`, which a reload
  may change: the next wait uses it), one query reads the status of the held jobs (only when
  there are some): the fallback for a missed cancel NOTIFY, and a quick way to notice a lease
  taken over.

Both only judge jobs that were buffered or running (not finished, not being acknowledged,
not stopping for good) before and after the query, so a job acknowledged meanwhile is never
mistaken for a lost one. The keeper sees the worker only through `held` (the mapping of held
jobs it reads), `running` (the count for the worker row) and the two callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping

import asyncpg

from jobserver.config import Settings
from jobserver.db import job_runs, workers
from jobserver.worker import metrics
from jobserver.worker.held import ACKING, CANCEL, DONE, HAND_BACK, LOST, RUNNING, TIMEOUT, HeldJob

log = logging.getLogger("jobserver.worker")

JobFn = Callable[[HeldJob], None]


class LeaseKeeper:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        worker_id: str,
        held: Mapping[uuid.UUID, HeldJob],
        running: Callable[[], int],
        *,
        on_lost: JobFn,
        on_cancel: JobFn,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._worker_id = worker_id
        self._held = held
        self._running = running
        self._on_lost = on_lost
        self._on_cancel = on_cancel
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.cancel_check_seconds = settings.cancel_check_interval_ms / 1000

    def start(self) -> None:
        if self._tasks:
            return
        s = self._settings
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(
                every(s.heartbeat_interval_seconds, self._stop, self.heartbeat_once, "heartbeat"),
                name="heartbeat",
            ),
            loop.create_task(
                every(
                    lambda: self.cancel_check_seconds,
                    self._stop,
                    self.cancel_check_once,
                    "cancel_check",
                ),
                name="cancel-check",
            ),
        ]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _judge(self, sent: list[HeldJob], rows: list[asyncpg.Record]) -> None:
        status = {r[0]: r[1] for r in rows}
        held = self._held
        for h in sent:
            if h.state in (ACKING, DONE) or h.stop in (LOST, HAND_BACK) or held.get(h.id) is not h:
                continue
            s = status.get(h.id)
            if s is None:
                self._on_lost(h)
            elif s == "cancelling":
                self._on_cancel(h)

    def drop_overdue(self) -> None:
        """A job still running CANCEL_GRACE_MS after its timeout cancelled it swallowed the
        cancellation: a coroutine cannot be killed, so stop renewing its lease instead. The
        rescuer then ends the attempt (`lease_expired`: retried, or failed into the DLQ) and the
        job can never hold its lease forever; its result, should it ever return, is dropped.
        (A job asked to cancel meanwhile is judged the same: its timeout cancelled it too.)"""
        now = time.monotonic()
        grace = self._settings.cancel_grace_ms / 1000
        for h in self._held.values():
            if (
                h.state == RUNNING
                and h.stop in (TIMEOUT, CANCEL)
                and h.timeout
                and h.ran_for(now) > h.timeout + grace
            ):
                h.lose()
                metrics.LEASES_LOST.inc()
                log.error(
                    "job ignored the cancellation of its timeout; leaving its lease to expire",
                    extra={"jobId": str(h.id), "attempt": h.attempt},
                )

    async def heartbeat_once(self) -> None:
        self.drop_overdue()
        sent = [h for h in self._held.values() if h.stop != LOST]
        async with self._pool.acquire() as conn:
            rows = await job_runs.job_heartbeat(
                conn,
                self._worker_id,
                [h.id for h in sent],
                [h.attempt for h in sent],
                self._settings.lease_duration_seconds,
            )
            await workers.worker_heartbeat(conn, self._worker_id, self._running())
        metrics.HEARTBEATS.inc()
        self._judge(sent, rows)

    async def cancel_check_once(self) -> None:
        sent = [h for h in self._held.values() if h.state not in (ACKING, DONE) and h.stop != LOST]
        if not sent:
            return
        async with self._pool.acquire() as conn:
            rows = await job_runs.job_held_status(
                conn, self._worker_id, [h.id for h in sent], [h.attempt for h in sent]
            )
        self._judge(sent, rows)


async def every(
    interval: float | Callable[[], float],
    stop: asyncio.Event,
    fn: Callable[[], Awaitable[None]],
    name: str,
) -> None:
    """Run `fn` every `interval` seconds (a function: read before each wait) until `stop` is
    set; errors are logged and survived."""
    while not stop.is_set():
        wait = interval() if callable(interval) else interval
        with contextlib.suppress(TimeoutError):  # the interval passed: run once
            await asyncio.wait_for(stop.wait(), wait)
        if stop.is_set():
            return
        try:
            await fn()
        except Exception as e:
            metrics.DB_ERRORS.labels(name).inc()
            log.warning("%s failed: %s", name, e)
