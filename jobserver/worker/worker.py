"""`Worker`: one worker process' lifecycle, wiring the claim loop, the slot pool and the checks.

    worker = Worker(settings, registry, queues=["default"], concurrency=10)
    await worker.start()      # register, LISTEN, heartbeat, claim
    ...
    await worker.stop()       # stop claiming, grace period, hand back, flush, mark stopped

    await Worker(settings, burst=True).run_burst()   # drain what is ready, then stop

The parts, each in its own module: `ClaimLoop` (claims.py) claims into the `SlotPool`
(slots.py), whose slots run jobs with `executor.run` and hand outcomes to the `AckBuffer`
(acks.py); `LeaseKeeper` (leases.py) renews leases and checks for cancel requests; the shared
`Listener` (db/listener.py) wakes the claim loop on JOBS_CHANNEL, cancels held jobs on
CANCEL_CHANNEL and hands runner commands on CONTROL_CHANNEL to `RunnerControl` (control.py),
and after every (re)connection triggers a claim, a cancel check and the control channel's
catch-up, since anything may have been missed. The `ClaimGate` (gate.py) holds the claims of a
paused worker and leaves paused queues out; the paused queues are read before the first claim.
Options: `queues` (None = all), `concurrency` (default MAX_CONCURRENT_EXECUTIONS), `burst`,
`pool` (else one of its own), `ack_delay` and `ack_max_batch` (see acks.py), `prefetch_max`
(default 50 times concurrency, at most 1,000).

Shutdown (`stop`): stop claiming, hand the buffered jobs back, let running jobs finish for
SHUTDOWN_GRACE_SECONDS, then cancel the rest and hand them back to `queued` without using an
attempt, flush acknowledgements, mark the worker stopped and close the pools. `stop` may be
called twice (the second call waits for the first).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import sys
import uuid
from collections import deque
from collections.abc import Collection, Coroutine, Sequence
from typing import Any

import asyncpg

from jobserver.blobs.models import BlobOptions
from jobserver.config import Settings
from jobserver.db import job_runs, workers
from jobserver.db.channels import CANCEL_CHANNEL, CONTROL_CHANNEL, JOBS_CHANNEL
from jobserver.db.listener import Listener
from jobserver.db.pool import connect, create_pool
from jobserver.registry import Definition, Registry
from jobserver.registry import registry as default_registry
from jobserver.sources.shared import close_all as close_source_driver
from jobserver.worker import metrics
from jobserver.worker.acks import AckBuffer
from jobserver.worker.claims import ClaimLoop
from jobserver.worker.control import RunnerControl
from jobserver.worker.doorbell import Doorbell
from jobserver.worker.gate import ClaimGate
from jobserver.worker.held import DONE, HAND_BACK, HeldJob
from jobserver.worker.host import WorkerHost
from jobserver.worker.leases import LeaseKeeper
from jobserver.worker.reload import RELOADABLE
from jobserver.worker.slots import SlotPool, report_fenced
from jobserver.worker.writes import Limits

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
        # the definitions with a rate limit: only the rated claim takes their limited jobs
        self.rated_refs = [d.ref for d in self.definitions.values() if d.rate_limit is not None]
        self.queues = list(queues) if queues else None
        self.concurrency = concurrency or settings.max_concurrent_executions
        self._concurrency_pinned = concurrency is not None
        self._own_pool = pool is None
        self._pool = pool
        self._host = WorkerHost(
            self.worker_id,
            self.concurrency,
            Limits.from_settings(settings),
            BlobOptions.from_settings(settings),
        )
        if pool is not None:
            self._host.set_pool(pool)
        self.acks = AckBuffer(
            self._write_connection,
            self.worker_id,
            self._written,
            refused=lambda h, error: self.slots.refused(h, error),
            delay=ack_delay,
            max_batch=ack_max_batch,
            retry_due=lambda delay: self._bell.ring_after(delay),
            busy=lambda: self.slots.running > 0 or bool(self.slots.ready),
        )
        self._bell = Doorbell(burst=burst, poll=settings.poll_interval_ms / 1000)
        self.gate = ClaimGate(self.queues, self._bell.ring)
        self.control = RunnerControl(self, self.gate)
        self.slots = SlotPool(
            settings,
            self.concurrency,
            self.definitions,
            self._host,
            self.acks,
            self._bell,
            self._hand_back_later,
        )
        self.claims = ClaimLoop(
            settings,
            self.worker_id,
            self.slots,
            self.acks,
            self._bell,
            refs=self.refs,
            queues=self.queues,
            limits=limits,
            rated=self.rated_refs,
            prefetch_max=(
                prefetch_max if prefetch_max is not None else min(1000, 50 * self.concurrency)
            ),
            gate=self.gate,
        )
        self._listener: Listener | None = None
        self._leases: LeaseKeeper | None = None
        self._claim_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._stop_task: asyncio.Task[None] | None = None
        self._started = False
        self._side_tasks: set[asyncio.Task[None]] = set()

    # -- what tests, the CLI and the benchmark read --------------------------------------------

    @property
    def burst(self) -> bool:
        return self._bell.burst

    @burst.setter
    def burst(self, value: bool) -> None:
        self._bell.burst = value

    @property
    def pool(self) -> asyncpg.Pool:
        return self._host.pool

    @property
    def held(self) -> dict[uuid.UUID, HeldJob]:
        """Claimed jobs not yet written: buffered or running."""
        return self.slots.held

    @property
    def ready(self) -> deque[HeldJob]:
        """Claimed jobs waiting for a free slot."""
        return self.slots.ready

    @property
    def running(self) -> int:
        return self.slots.running

    @property
    def processed(self) -> int:
        """Outcomes acknowledged by the database."""
        return self.slots.processed

    @property
    def claim_calls(self) -> int:
        return self.claims.claim_calls

    @property
    def prefetch_max(self) -> int:
        return self.claims.prefetch_max

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        url = self.settings.require_database_url()
        # the claim and acknowledgement sessions open while the pool starts and registers
        early = asyncio.gather(self.claims.open_early(), self.acks.connect())
        try:
            if self._pool is None:
                self._pool = await create_pool(
                    url, self.settings, min_size=2, max_size=max(4, self.settings.db_pool_max)
                )
                self._host.set_pool(self._pool)
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
        try:
            await self.control.load_paused_queues()
        except Exception as e:  # the gate stays shut until the LISTEN session's catch-up
            log.warning("could not read the paused queues (%s)", e)
        self.acks.start()
        self._listener = Listener(
            url,
            {
                JOBS_CHANNEL: self.claims.on_jobs_notify,
                CANCEL_CHANNEL: self._on_cancel_notify,
                CONTROL_CHANNEL: self.control.on_notify,
            },
            on_connect=self._caught_up,
            name="worker-listener",
        )
        self._listener.start()
        slots = self.slots
        self._leases = LeaseKeeper(
            self._pool,
            self.settings,
            self.worker_id,
            slots.held,
            lambda: slots.running,
            on_lost=slots.lease_lost,
            on_cancel=slots.request_cancel,
        )
        self._leases.start()
        self._claim_task = asyncio.get_running_loop().create_task(self.claims.run(), name="claim")
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
        self.slots.stop_starting()
        self.claims.stop()
        if not self._started:
            self._stopped.set()
            return
        if self._claim_task is not None:
            with contextlib.suppress(asyncio.CancelledError):  # the loop is torn down
                await self._claim_task
        await self._set_status("stopping")
        buffered = self.slots.take_buffered()  # claimed but never started: back at once
        if buffered:
            await self._hand_back(buffered)
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        if self.slots.running:
            log.info("waiting up to %.1f s for %d running jobs", grace, self.slots.running)
            with contextlib.suppress(TimeoutError):  # then the rest are handed back
                await asyncio.wait_for(asyncio.shield(self.slots.nothing_runs()), grace)
        left = self.slots.stop_running()
        if left:
            await self.slots.nothing_runs()
            # the ones released by the cancellation; one that ended with an outcome meanwhile
            # is written by the ack buffer instead, and a lost one is no longer ours
            held = self.slots.held
            back = [h for h in left if h.stop == HAND_BACK and h.state == DONE]
            back = [h for h in back if held.get(h.id) is h]
            if back:
                await self._hand_back(back)
        await self.slots.close()
        await self.acks.close()
        if self._leases is not None:
            await self._leases.stop()
        if self._listener is not None:
            await self._listener.stop()
        await self.control.close()
        await self._set_status("stopped")
        await self._host.close_cpu_pool()
        await close_source_driver()
        await _close_http_sessions()
        if self._own_pool and self._pool is not None:
            await self._pool.close()
        log.info("worker stopped", extra={"workerId": self.worker_id, "processed": self.processed})
        self._stopped.set()

    async def _set_status(self, status: str) -> None:
        try:
            await workers.worker_set_status(self.pool, self.worker_id, status)
        except Exception as e:
            log.warning("could not mark the worker %s (%s)", status, e)

    async def _hand_back(self, held: list[HeldJob]) -> None:
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
            self.slots.held.pop(h.id, None)
            if h.id not in written:
                report_fenced(h, "hand_back")
        log.info("handed back %d jobs", len(written))

    def _hand_back_later(self, h: HeldJob) -> None:
        """A buffered job whose `expires_at` passed: back to the queue (the expirer ends it)."""
        self._spawn(self._hand_back([h]))

    # -- the acks' callback and notifications --------------------------------------------------

    def _written(self, kind: str, entries: list[HeldJob], written: Collection[uuid.UUID]) -> None:
        self.slots.written(kind, entries, written)

    def _on_cancel_notify(self, payload: str) -> None:
        try:
            job_id = uuid.UUID(payload)
        except ValueError:
            return
        h = self.slots.held.get(job_id)
        if h is not None:
            self.slots.request_cancel(h)

    def _caught_up(self) -> None:
        """(Re)connected to LISTEN: anything may have been missed, so claim and check now."""
        self._bell.ring()
        if self.slots.held and self._leases is not None:
            self._spawn(self._check_cancels())
        self.control.caught_up()

    async def _check_cancels(self) -> None:
        assert self._leases is not None
        try:
            await self._leases.cancel_check_once()
        except Exception as e:
            log.warning("cancel check after the LISTEN (re)connection failed (%s)", e)

    # -- the control channel's hooks (control.py) ----------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stop_task is not None

    def request_stop(self, grace: float | None = None) -> None:
        """Begin the shutdown without waiting for it (a `shutdown` command)."""
        if self._stop_task is None:
            self._spawn(self.stop(grace))

    async def apply_settings(self, new: Settings) -> dict[str, str]:
        """Apply the reloadable settings of `new` (reload.py); returns those left as they were,
        by environment variable, with the reason."""
        ignored: dict[str, str] = {}
        n = new.max_concurrent_executions
        if n != self.settings.max_concurrent_executions:
            if self._concurrency_pinned:
                ignored["MAX_CONCURRENT_EXECUTIONS"] = f"--concurrency {self.concurrency} given"
                n = self.settings.max_concurrent_executions
            else:
                self.concurrency = self.slots.concurrency = n
                await workers.worker_set_max_concurrency(self.pool, self.worker_id, n)
                self._bell.ring()  # more slots: claim for them now
        self._bell.poll = new.poll_interval_ms / 1000
        if self._leases is not None:
            self._leases.cancel_check_seconds = new.cancel_check_interval_ms / 1000
        logging.getLogger().setLevel(new.log_level)
        values = {f: getattr(new, f) for f in RELOADABLE}
        values["max_concurrent_executions"] = n
        self.settings = dataclasses.replace(self.settings, **values)
        return ignored

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _write_connection(self) -> asyncpg.Connection:
        """A session for the acknowledgements (see WRITE_SESSION_SETTINGS)."""
        conn = await connect(
            self.settings.require_database_url(),
            timeout=self.settings.db_pool_connection_timeout_ms / 1000,
            server_settings=job_runs.WRITE_SESSION_SETTINGS,
        )
        await job_runs.job_runs_prepare(conn)
        return conn


async def _close_http_sessions() -> None:
    """Closes the pooled outbound HTTP sessions of this loop, if a job opened any. The module is
    looked up, not imported: importing it loads aiohttp's client (about 10 MB and 0.2 s) into
    workers whose jobs never call out."""
    sessions = sys.modules.get("jobserver.outbound.sessions")
    if sessions is not None:
        await sessions.close_sessions()
