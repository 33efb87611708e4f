"""The worker daemon: claim loop, slots, wake-ups, cancellation and graceful shutdown.

    worker = Worker(settings, registry, queues=["default"], concurrency=10)
    await worker.start()      # register, LISTEN, heartbeat, claim
    ...
    await worker.stop()       # stop claiming, grace period, hand back, flush, mark stopped

    await Worker(settings, burst=True).run_burst()   # drain what is ready, then stop

Claiming: up to the number of free slots (`concurrency`, default MAX_CONCURRENT_EXECUTIONS) per
round trip, only the definitions in `registry` and the given queues (None = all). After a full
claim it claims again as soon as a slot frees; after a short one it sleeps until a NOTIFY on
JOBS_CHANNEL, a retry falling due, or POLL_INTERVAL_MS — it never busy-loops on an empty queue.
Definitions with a `concurrency_limit` are claimed under a per-key advisory lock so the limit
holds across the fleet. Outcomes go through the batched `AckBuffer`.

Shutdown (`stop`): stop claiming, let running jobs finish for SHUTDOWN_GRACE_SECONDS, then cancel
the rest and hand them back to `queued` without using an attempt, flush acknowledgements, mark
the worker stopped and close the pools. `stop` may be called twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from jobserver.config import Settings
from jobserver.db import job_runs, workers
from jobserver.db.pool import connect, create_pool
from jobserver.registry import Definition, Registry
from jobserver.registry import registry as default_registry
from jobserver.worker import metrics
from jobserver.worker.acks import AckBuffer
from jobserver.worker.context import JobContext
from jobserver.worker.executor import Held, execute
from jobserver.worker.heartbeat import cancel_check_once, every, heartbeat_once
from jobserver.worker.listener import Listener

log = logging.getLogger("jobserver.worker")


class Worker:
    def __init__(
        self,
        settings: Settings,
        registry: Registry | None = None,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        burst: bool = False,
        pool: asyncpg.Pool | None = None,
        ack_delay: float = 0.005,
        ack_max_batch: int = 1000,
    ) -> None:
        self.settings = settings
        self.worker_id = settings.worker_id or f"worker-{socket.gethostname()}-{os.getpid()}"
        reg = registry if registry is not None else default_registry
        self.definitions: dict[tuple[str, int], Definition] = {
            (d.key, d.version): d for d in reg.all()
        }
        self.refs = [f"{k}@{v}" for k, v in self.definitions]
        limits: dict[str, int] = {}
        for d in self.definitions.values():
            if d.concurrency_limit is not None:
                limits[d.key] = min(limits.get(d.key, d.concurrency_limit), d.concurrency_limit)
        self.limits = limits
        self.queues = list(queues) if queues else None
        self.concurrency = concurrency or settings.max_concurrent_executions
        self.burst = burst
        self._own_pool = pool is None
        self._pool = pool
        self._ack_delay = ack_delay
        self._ack_max_batch = ack_max_batch
        self.held: dict[uuid.UUID, Held] = {}
        self.running = 0  # jobs whose code is executing (slots in use)
        self.processed = 0  # outcomes acknowledged by the database
        self.claim_calls = 0  # claim round trips, full or empty (tests check for busy loops)
        self._acks: AckBuffer | None = None
        self._listener: Listener | None = None
        self._cpu: concurrent.futures.ProcessPoolExecutor | None = None
        self._wake = asyncio.Event()
        self._more = True  # the last claim was full or a NOTIFY came: claim when a slot frees
        self._stopping = False
        self._stop_bg = asyncio.Event()
        self._claim_task: asyncio.Task[None] | None = None
        self._claim_conn: asyncpg.Connection | None = None
        self._bg: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self._stop_task: asyncio.Task[None] | None = None
        self._started = False
        self._side_tasks: set[asyncio.Task[None]] = set()

    # -- properties used by the job context, executor and checks ---------------------------

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "worker not started"
        return self._pool

    @property
    def acks(self) -> AckBuffer:
        assert self._acks is not None, "worker not started"
        return self._acks

    def cpu_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        """One process pool per worker, created on first use (CPU-bound definitions)."""
        if self._cpu is None:
            self._cpu = concurrent.futures.ProcessPoolExecutor(
                max_workers=max(1, min(os.cpu_count() or 1, self.concurrency)),
                mp_context=multiprocessing.get_context("forkserver"),
            )
        return self._cpu

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        url = self.settings.require_database_url()
        if self._pool is None:
            self._pool = await create_pool(
                url, self.settings, min_size=2, max_size=max(4, self.settings.db_pool_max)
            )
        await workers.worker_register(
            self._pool,
            self.worker_id,
            socket.gethostname(),
            os.getpid(),
            self.queues,
            self.refs,
            self.concurrency,
        )
        self._acks = AckBuffer(
            self._pool,
            self.worker_id,
            self._written,
            delay=self._ack_delay,
            max_batch=self._ack_max_batch,
        )
        self._acks.start()
        self._listener = Listener(
            url, self._on_jobs_notify, self._on_cancel_notify, self._caught_up
        )
        self._listener.start()
        s = self.settings
        loop = asyncio.get_running_loop()
        self._bg = [
            loop.create_task(
                every(
                    s.heartbeat_interval_seconds,
                    self._stop_bg,
                    lambda: heartbeat_once(self),
                    "heartbeat",
                ),
                name="heartbeat",
            ),
            loop.create_task(
                every(
                    s.cancel_check_interval_ms / 1000,
                    self._stop_bg,
                    lambda: cancel_check_once(self),
                    "cancel_check",
                ),
                name="cancel-check",
            ),
        ]
        self._claim_task = loop.create_task(self._claim_loop(), name="claim")
        log.info(
            "worker started",
            extra={
                "workerId": self.worker_id,
                "definitions": self.refs,
                "queues": self.queues,
                "concurrency": self.concurrency,
            },
        )

    async def run_burst(self) -> int:
        """Drain every job that is ready, then stop; returns the outcomes acknowledged."""
        self.burst = True
        await self.start()
        assert self._claim_task is not None
        await self._claim_task
        await self.stop()
        return self.processed

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown; a second call waits for the first one."""
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self._shutdown(grace))
        await asyncio.shield(self._stop_task)

    async def _shutdown(self, grace: float | None) -> None:
        self._stopping = True
        self._wake.set()
        if not self._started:
            self._stopped.set()
            return
        if self._claim_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._claim_task
        with contextlib.suppress(Exception):
            await workers.worker_set_status(self.pool, self.worker_id, "stopping")
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        tasks = [h.task for h in self.held.values() if h.task is not None and not h.task.done()]
        if tasks:
            log.info("waiting up to %.1f s for %d running jobs", grace, len(tasks))
            await asyncio.wait(tasks, timeout=grace)
        left = [
            h
            for h in self.held.values()
            if h.task is not None and not h.task.done() and not h.acking
        ]
        for h in left:
            h.handing_back = True
            h.ctx.cancelled.set()
            assert h.task is not None
            h.task.cancel()
        if left:
            await asyncio.gather(*(h.task for h in left if h.task), return_exceptions=True)
            await self._hand_back(left)
        await self.acks.close()
        self._stop_bg.set()
        await asyncio.gather(*self._bg, return_exceptions=True)
        if self._listener is not None:
            await self._listener.stop()
        with contextlib.suppress(Exception):
            await workers.worker_set_status(self.pool, self.worker_id, "stopped")
        if self._cpu is not None:
            self._cpu.shutdown(wait=False, cancel_futures=True)
        if self._own_pool and self._pool is not None:
            await self._pool.close()
        log.info("worker stopped", extra={"workerId": self.worker_id, "processed": self.processed})
        self._stopped.set()

    async def _hand_back(self, held: list[Held]) -> None:
        for attempt in range(3):
            try:
                async with self.pool.acquire() as conn:
                    rows = await job_runs.job_hand_back_many(
                        conn, self.worker_id, [h.id for h in held], [h.attempt for h in held]
                    )
                break
            except Exception as e:
                metrics.DB_ERRORS.labels("hand_back").inc()
                log.warning("hand back failed (%s); try %d of 3", e, attempt + 1)
                await asyncio.sleep(0.2 * (attempt + 1))
        else:
            return  # the leases expire and the rescuer takes over
        written = {r[0] for r in rows}
        for h in held:
            self.held.pop(h.id, None)
            if h.id not in written:
                self._fenced(h, "hand_back")
        log.info("handed back %d jobs", len(written))

    # -- claiming ------------------------------------------------------------------------------

    async def _wait_wake(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _claim_connection(self) -> asyncpg.Connection:
        """The claim loop's own session (claims are sequential; see CLAIM_SESSION_SETTINGS)."""
        if self._claim_conn is None or self._claim_conn.is_closed():
            self._claim_conn = await connect(
                self.settings.require_database_url(),
                timeout=self.settings.db_pool_connection_timeout_ms / 1000,
                server_settings=job_runs.CLAIM_SESSION_SETTINGS,
            )
        return self._claim_conn

    async def _drop_claim_connection(self) -> None:
        conn, self._claim_conn = self._claim_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)

    async def _claim_loop(self) -> None:
        try:
            await self._claim_rounds()
        finally:
            await self._drop_claim_connection()

    async def _claim_rounds(self) -> None:
        poll = self.settings.poll_interval_ms / 1000
        backlog_limit = max(1000, 4 * self.concurrency)
        error_delay = 0.1
        while not self._stopping:
            free = self.concurrency - self.running
            if free <= 0 or self.acks.backlog() > backlog_limit:
                self._wake.clear()
                await self._wait_wake(poll)
                continue
            self._wake.clear()
            self._more = False
            self.claim_calls += 1
            try:
                conn = await self._claim_connection()
                rows = await job_runs.job_claim_available(
                    conn,
                    self.worker_id,
                    free,
                    self.refs,
                    self.queues,
                    self.settings.lease_duration_seconds,
                    self.limits,
                )
                error_delay = 0.1
            except Exception as e:
                await self._drop_claim_connection()
                metrics.DB_ERRORS.labels("claim").inc()
                log.warning("claim failed (%s); retrying in %.1f s", e, error_delay)
                await self._wait_wake(error_delay)
                error_delay = min(error_delay * 2, 5.0)
                continue
            if rows:
                metrics.CLAIMS.inc()
                metrics.JOBS_CLAIMED.inc(len(rows))
                metrics.CLAIM_BATCH.observe(len(rows))
                for row in rows:
                    self._start_job(row)
                metrics.RUNNING.set(self.running)
            if len(rows) == free:
                self._more = True
                continue
            if self.burst:
                if rows or self.running:
                    self._more = True  # claim again when one of these ends
                    await self._wait_wake(poll)
                    continue
                before = self.processed
                await self.acks.flush()  # a retry due at once becomes visible: look again
                if self.processed != before:
                    continue
                return
            await self._wait_wake(poll)

    def _start_job(self, row: Any) -> None:
        job_id, key, version, params, attempt, max_attempts, timeout = row
        d = self.definitions[(key, version)]
        ctx = JobContext(self, job_id, attempt, max_attempts, params)
        h = Held(job_id, attempt, max_attempts, d, ctx, timeout or d.timeout_seconds)
        self.held[job_id] = h
        self.running += 1
        h.task = asyncio.get_running_loop().create_task(execute(self, h))
        h.task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("job task crashed", exc_info=task.exception())

    # -- called by the executor, the acks and the checks ---------------------------------------

    def job_finished(self, h: Held) -> None:
        """The job's code is done; its outcome now waits in the ack buffer."""
        h.acking = True
        if h.cancel_handle is not None:
            h.cancel_handle.cancel()
        self.running -= 1
        if self._more or self.burst:
            self._wake.set()

    def job_released(self, h: Held, why: str) -> None:
        """The job ends here without a write (lease lost, or the daemon hands it back)."""
        if h.cancel_handle is not None:
            h.cancel_handle.cancel()
        self.running -= 1
        if why == "lost":
            self.held.pop(h.id, None)
            metrics.FINISHED.labels("lost").inc()
        if self._more or self.burst:
            self._wake.set()

    def _written(self, kind: str, entries: list[Held], written: set[uuid.UUID]) -> None:
        held = self.held
        for h in entries:
            if held.get(h.id) is h:
                del held[h.id]
        n = len(written)
        self.processed += len(entries)
        if n:
            metrics.FINISHED.labels(kind).inc(n)
        if n != len(entries):
            for h in entries:
                if h.id not in written:
                    self._fenced(h, kind)
        metrics.RUNNING.set(self.running)
        if self._more or self.burst:
            self._wake.set()  # the claim loop may be waiting for the ack backlog to drain

    def _fenced(self, h: Held, kind: str) -> None:
        metrics.FENCED.labels(kind).inc()
        log.warning(
            "write fenced off: job no longer held by this worker; result dropped",
            extra={"jobId": str(h.id), "attempt": h.attempt, "write": kind},
        )

    def lease_lost(self, h: Held) -> None:
        """The job was rescued or taken over: signal it, cancel it after the grace period."""
        if h.lost:
            return
        h.lost = True
        metrics.LEASES_LOST.inc()
        log.warning(
            "lease lost; dropping the job", extra={"jobId": str(h.id), "attempt": h.attempt}
        )
        self._signal(h)

    def request_cancel(self, h: Held) -> None:
        """A cancel request for a held job: set ctx.cancelled, cancel the task after the grace."""
        if h.cancel_requested or h.acking or h.lost:
            return
        h.cancel_requested = True
        log.info("cancel requested", extra={"jobId": str(h.id)})
        self._signal(h)

    def _signal(self, h: Held) -> None:
        h.ctx.cancelled.set()
        if h.task is not None and not h.task.done() and h.cancel_handle is None:
            h.cancel_handle = asyncio.get_running_loop().call_later(
                self.settings.cancel_grace_ms / 1000, h.task.cancel
            )

    def wake_after(self, delay: float) -> None:
        """A retry of ours falls due in `delay` s: claim then rather than at the next poll."""
        if not self.burst and delay < self.settings.poll_interval_ms / 1000:
            asyncio.get_running_loop().call_later(delay + 0.005, self._wake_claim)

    def _wake_claim(self) -> None:
        self._more = True
        self._wake.set()

    # -- notifications -------------------------------------------------------------------------

    def _on_jobs_notify(self, payload: str) -> None:
        if self.queues is None or payload == "*" or payload in self.queues:
            self._wake_claim()

    def _on_cancel_notify(self, payload: str) -> None:
        try:
            job_id = uuid.UUID(payload)
        except ValueError:
            return
        h = self.held.get(job_id)
        if h is not None:
            self.request_cancel(h)

    def _caught_up(self) -> None:
        """(Re)connected to LISTEN: anything may have been missed, so claim and check now."""
        self._wake_claim()
        if self.held:
            task = asyncio.get_running_loop().create_task(self._check_quietly())
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    async def _check_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await cancel_check_once(self)
