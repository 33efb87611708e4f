"""The worker daemon: claim loop, slots, wake-ups, cancellation and graceful shutdown.

    worker = Worker(settings, registry, queues=["default"], concurrency=10)
    await worker.start()      # register, LISTEN, heartbeat, claim
    ...
    await worker.stop()       # stop claiming, grace period, hand back, flush, mark stopped

    await Worker(settings, burst=True).run_burst()   # drain what is ready, then stop

Claiming: only the definitions in `registry` and the given queues (None = all). At most
`concurrency` (default MAX_CONCURRENT_EXECUTIONS) jobs *run* at once; claimed jobs beyond the free
slots wait in a small local buffer (`ready`) and start the moment a slot frees, so a deep queue
is drained with few large claims instead of one round trip per `concurrency` jobs:

- After a claim that came back short (the queue is drained, or the worker was idle and woken by
  a NOTIFY) the next claim asks only for the free slots: an idle fleet shares new jobs instead
  of one worker hoarding them, and a NOTIFY'd job starts after one round trip.
- After a full claim the queue is deep: the worker asks for the free slots plus a prefetch of
  about PREFETCH_HORIZON seconds of work (from the mean run time of recent jobs, at most
  `prefetch_max`, default 50 times concurrency capped at 1,000), and refills when half of it is
  used. Slow jobs therefore get almost no prefetch; no-op jobs get the full buffer.
- Buffered jobs are held like running ones: `running` in the database, under the lease the
  heartbeat renews (it renews every held job), counted by the fleet-wide concurrency limits
  (the claim never takes more of a limited definition than its free count). Their attempt
  begins at the claim; `started_at` is corrected to the moment the code began when the outcome
  is written (see db/job_runs.py).
- Jobs run in at most `concurrency` long-lived slot tasks (made on demand), each taking the
  next buffered job when its job ends, so a job costs no task of its own; a slot yields to the
  loop every few jobs. Jobs of one slot share its context variables (jobserver sets
  job_id_var for each job).
- A buffered job whose cancel arrives ends `cancelled` without running; one whose `expires_at`
  passed while it waited is handed back unstarted (the expirer then expires it); at shutdown
  every buffered job is handed back at once, without using an attempt.

After a short claim the worker sleeps until a NOTIFY on JOBS_CHANNEL, a retry falling due, or
POLL_INTERVAL_MS — it never busy-loops on an empty queue. Definitions with a
`concurrency_limit` are claimed under a per-key advisory lock so the limit holds across the
fleet. Outcomes go through the batched `AckBuffer`.

Shutdown (`stop`): stop claiming, hand the buffered jobs back, let running jobs finish for
SHUTDOWN_GRACE_SECONDS, then cancel the rest and hand them back to `queued` without using an
attempt, flush acknowledgements, mark the worker stopped and close the pools. `stop` may be
called twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from jobserver.config import Settings
from jobserver.db import job_runs, workers
from jobserver.db.pool import connect, create_pool
from jobserver.registry import Definition, Registry
from jobserver.registry import registry as default_registry
from jobserver.worker import metrics
from jobserver.worker.acks import AckBuffer
from jobserver.worker.context import JobContext
from jobserver.worker.executor import Deadlines, Held, execute
from jobserver.worker.heartbeat import cancel_check_once, every, heartbeat_once
from jobserver.worker.listener import Listener

if TYPE_CHECKING:
    import pebble

log = logging.getLogger("jobserver.worker")

# Seconds of work a deep queue keeps buffered per worker (from the mean run time of its jobs).
PREFETCH_HORIZON = 0.2


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
        prefetch_max: int | None = None,
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
        self.held: dict[uuid.UUID, Held] = {}  # claimed and not yet written: buffered or running
        self.ready: deque[Held] = deque()  # claimed, waiting for a free slot
        self.running = 0  # jobs whose code is executing (slots in use)
        self.prefetch_max = (
            prefetch_max if prefetch_max is not None else min(1000, 50 * self.concurrency)
        )
        self.deadlines = Deadlines()
        self._slots: list[asyncio.Task[None]] = []  # slot tasks (at most `concurrency`)
        self._idle: list[asyncio.Future[None]] = []  # parked slots waiting for a job
        self._drained: asyncio.Future[None] | None = None  # set when nothing runs (shutdown)
        self._run_avg = 0.0  # moving mean of the run time of jobs, seconds (0 = none seen)
        self._refill_at = 0  # the claim loop wants to run when `ready` shrinks to this
        self.processed = 0  # outcomes acknowledged by the database
        self.claim_calls = 0  # claim round trips, full or empty (tests check for busy loops)
        self._acks: AckBuffer | None = None
        self._listener: Listener | None = None
        self._cpu: pebble.ProcessPool | None = None
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

    def cpu_pool(self) -> pebble.ProcessPool:
        """One process pool per worker, created on first use (CPU-bound definitions).

        pebble's pool, not the standard library's: cancelling a running call terminates its
        process (the pool starts a new one), so work of a job that timed out or was cancelled
        stops with the job instead of holding a pool slot until it returns."""
        if self._cpu is None:
            import multiprocessing  # on first use: most workers never need it

            import pebble

            self._cpu = pebble.ProcessPool(
                max_workers=max(1, min(os.cpu_count() or 1, self.concurrency)),
                context=multiprocessing.get_context("forkserver"),
            )
        return self._cpu

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        url = self.settings.require_database_url()
        self._acks = AckBuffer(
            self._write_connection,
            self.worker_id,
            self._written,
            delay=self._ack_delay,
            max_batch=self._ack_max_batch,
        )
        # the claim and acknowledgement sessions open while the pool starts and registers
        early = asyncio.gather(self._claim_session_early(), self._acks.connect())
        try:
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
        finally:
            await early
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
        if self.ready:  # claimed but never started: back to the queue at once
            buffered = list(self.ready)
            self.ready.clear()
            for h in buffered:
                h.handing_back = True
            await self._hand_back(buffered)
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        if self.running:
            log.info("waiting up to %.1f s for %d running jobs", grace, self.running)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._nothing_runs()), grace)
        left = [h for h in self.held.values() if h.active and not h.acking]
        for h in left:
            h.handing_back = True
            if h.ctx is not None:
                h.ctx.cancelled.set()
            assert h.task is not None
            h.task.cancel()
        if left:
            await self._nothing_runs()
            await self._hand_back(left)
        for t in self._slots:
            t.cancel()
        await asyncio.gather(*self._slots, return_exceptions=True)
        self._slots.clear()
        await self.acks.close()
        self._stop_bg.set()
        await asyncio.gather(*self._bg, return_exceptions=True)
        if self._listener is not None:
            await self._listener.stop()
        with contextlib.suppress(Exception):
            await workers.worker_set_status(self.pool, self.worker_id, "stopped")
        if self._cpu is not None:
            self._cpu.stop()
            await asyncio.to_thread(self._cpu.join)  # terminates what still runs
        if self._own_pool and self._pool is not None:
            await self._pool.close()
        log.info("worker stopped", extra={"workerId": self.worker_id, "processed": self.processed})
        self._stopped.set()

    async def _hand_back(self, held: list[Held]) -> None:
        for attempt in range(3):
            try:
                async with self.pool.acquire() as conn:
                    rows = await job_runs.job_hand_back_many(
                        conn,
                        self.worker_id,
                        [h.id for h in held],
                        [h.attempt for h in held],
                        [h.ran_at is not None for h in held],
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
        """Sleep until `_wake` is set or `seconds` pass (a timer sets it then). Awaiting the
        event itself, not asyncio.wait_for, lets a NOTIFY reach the claim in one loop turn
        instead of three."""
        if self._wake.is_set():
            return
        timer = asyncio.get_running_loop().call_later(seconds, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            timer.cancel()

    async def _claim_connection(self) -> asyncpg.Connection:
        """The claim loop's own session (claims are sequential; see CLAIM_SESSION_SETTINGS)."""
        if self._claim_conn is None or self._claim_conn.is_closed():
            self._claim_conn = await connect(
                self.settings.require_database_url(),
                timeout=self.settings.db_pool_connection_timeout_ms / 1000,
                server_settings=job_runs.CLAIM_SESSION_SETTINGS,
            )
        return self._claim_conn

    async def _claim_session_early(self) -> None:
        try:
            conn = await self._claim_connection()
            if not self.limits:
                await job_runs.job_runs_prepare(conn, claim=True)
        except Exception as e:
            await self._drop_claim_connection()
            log.warning("claim session not ready yet (%s)", e)

    async def _write_connection(self) -> asyncpg.Connection:
        """A session for the acknowledgements (see WRITE_SESSION_SETTINGS)."""
        conn = await connect(
            self.settings.require_database_url(),
            timeout=self.settings.db_pool_connection_timeout_ms / 1000,
            server_settings=job_runs.WRITE_SESSION_SETTINGS,
        )
        await job_runs.job_runs_prepare(conn)
        return conn

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

    def _prefetch(self) -> int:
        """Jobs to buffer beyond the free slots while the queue is deep."""
        avg = self._run_avg
        if avg <= 0.0:
            return min(self.prefetch_max, self.concurrency)
        return min(self.prefetch_max, int(self.concurrency * PREFETCH_HORIZON / avg))

    async def _claim_rounds(self) -> None:
        poll = self.settings.poll_interval_ms / 1000
        backlog_limit = max(1000, 4 * self.concurrency)
        error_delay = 0.1
        deep = False  # the last claim came back full
        while not self._stopping:
            prefetch = self._prefetch() if deep else 0
            want = self.concurrency + prefetch - self.running - len(self.ready)
            if want <= 0 or len(self.ready) > prefetch // 2 or self.acks.backlog() > backlog_limit:
                self._refill_at = prefetch // 2
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
                    want,
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
                self._take(rows)
                await asyncio.sleep(0)  # the woken slots start their jobs before the bookkeeping
                metrics.CLAIMS.inc()
                metrics.JOBS_CLAIMED.inc(len(rows))
                metrics.CLAIM_BATCH.observe(len(rows))
                metrics.RUNNING.set(self.running)
            deep = len(rows) == want
            if deep:
                self._more = True
                continue
            self._refill_at = 0
            if rows and self.limits:
                # short, perhaps only because a limited definition is at its fleet-wide cap:
                # look again when one of ours ends (not a busy loop: once per job at most)
                self._more = True
            if self.burst:
                if rows or self.running or self.ready:
                    self._more = True  # claim again when one of these ends
                    await self._wait_wake(poll)
                    continue
                before = self.processed
                await self.acks.flush()  # a retry due at once becomes visible: look again
                if self.processed != before:
                    continue
                return
            await self._wait_wake(poll)

    def _nothing_runs(self) -> asyncio.Future[None]:
        """A future done once no job's code runs (shutdown waits on it)."""
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()
        if self.running == 0 and not self._drained.done():
            self._drained.set_result(None)
        return self._drained

    def _take(self, rows: list[Any]) -> None:
        """Hold the claimed rows: buffer them, then wake or make slots to run them."""
        held = self.held
        ready = self.ready
        definitions = self.definitions
        now = time.monotonic()
        for job_id, key, version, params, attempt, max_attempts, timeout, expires in rows:
            d = definitions[(key, version)]
            h = Held(
                job_id,
                attempt,
                max_attempts,
                d,
                params,
                timeout or d.timeout_seconds,
                expires,
                now,
            )
            held[job_id] = h
            ready.append(h)
        self._fill()

    def _fill(self) -> None:
        """Wake parked slots (or make new ones, up to `concurrency`) for the buffered jobs."""
        if self._stopping:
            return
        want = len(self.ready)
        idle = self._idle
        while want and idle:
            fut = idle.pop()
            if not fut.done():
                fut.set_result(None)
                want -= 1
        if want and len(self._slots) < self.concurrency:
            loop = asyncio.get_running_loop()
            while want and len(self._slots) < self.concurrency:
                self._slots.append(loop.create_task(self._slot(), name="slot"))
                want -= 1

    async def _slot(self) -> None:
        """One execution slot: run buffered jobs one after another, park when there is none."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        ready = self.ready
        streak = 0
        while True:
            if not ready or self._stopping:
                fut: asyncio.Future[None] = loop.create_future()
                self._idle.append(fut)
                await fut
                streak = 0
                continue
            h = ready.popleft()
            if h.expires_at is not None and h.expires_at <= dt.datetime.now(dt.UTC):
                h.handing_back = True  # its deadline passed while it waited: back unstarted
                self._spawn(self._hand_back([h]))
                continue
            h.ctx = JobContext(self, h.id, h.attempt, h.max_attempts, h.params)
            h.task = task
            h.active = True
            self.running += 1
            h.ran_at = time.monotonic()
            await execute(self, h)
            streak += 1
            if streak >= 8:  # jobs that never wait must not starve the loop
                streak = 0
                await asyncio.sleep(0)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    # -- called by the executor, the acks and the checks ---------------------------------------

    def _slot_freed(self, h: Held) -> None:
        if h.cancel_handle is not None:
            h.cancel_handle.cancel()
        h.active = False
        self.running -= 1
        if h.ran_at is not None:
            ran = time.monotonic() - h.ran_at
            self._run_avg += (ran - self._run_avg) * 0.05 if self._run_avg else ran
        if (self._more or self.burst) and len(self.ready) <= self._refill_at:
            self._wake.set()
        if self._drained is not None and self.running == 0 and not self._drained.done():
            self._drained.set_result(None)

    def job_finished(self, h: Held) -> None:
        """The job's code is done; its outcome now waits in the ack buffer."""
        h.acking = True
        self._slot_freed(h)

    def job_released(self, h: Held, why: str) -> None:
        """The job ends here without a write (lease lost, or the daemon hands it back)."""
        if why == "lost":
            self.held.pop(h.id, None)
            metrics.FINISHED.labels("lost").inc()
        self._slot_freed(h)

    def _written(self, kind: str, entries: list[Held], written: Collection[uuid.UUID]) -> None:
        held = self.held
        for h in entries:
            if held.get(h.id) is h:
                del held[h.id]
        n = len(written)
        self.processed += len(entries)
        if n:
            metrics.FINISHED.labels(kind).inc(n)
        if n != len(entries):
            written = set(written)
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

    def _unbuffer(self, h: Held) -> bool:
        """Take a job that never started out of the buffer; False if it has started."""
        if h.task is not None:
            return False
        with contextlib.suppress(ValueError):
            self.ready.remove(h)
        return True

    def lease_lost(self, h: Held) -> None:
        """The job was rescued or taken over: signal it, cancel it after the grace period."""
        if h.lost:
            return
        h.lost = True
        metrics.LEASES_LOST.inc()
        log.warning(
            "lease lost; dropping the job", extra={"jobId": str(h.id), "attempt": h.attempt}
        )
        if self._unbuffer(h):
            self.held.pop(h.id, None)
            metrics.FINISHED.labels("lost").inc()
            return
        self._signal(h)

    def request_cancel(self, h: Held) -> None:
        """A cancel request for a held job: set ctx.cancelled, cancel the task after the grace.

        A job still in the buffer is cancelled without running."""
        if h.cancel_requested or h.acking or h.lost or h.handing_back:
            return
        h.cancel_requested = True
        log.info("cancel requested", extra={"jobId": str(h.id)})
        if self._unbuffer(h):
            h.acking = True
            self.acks.add_cancel(h)
            return
        self._signal(h)

    def _signal(self, h: Held) -> None:
        if h.ctx is not None:
            h.ctx.cancelled.set()
        if h.active and h.cancel_handle is None:
            h.cancel_handle = asyncio.get_running_loop().call_later(
                self.settings.cancel_grace_ms / 1000, self._cancel_run, h
            )

    @staticmethod
    def _cancel_run(h: Held) -> None:
        """Cancel the slot task while it still runs `h` (never the job after it)."""
        if h.active and not h.acking and h.task is not None:
            h.task.cancel()

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
            self._spawn(self._check_quietly())

    async def _check_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await cancel_check_once(self)
