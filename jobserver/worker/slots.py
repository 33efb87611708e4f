"""`SlotPool`: the jobs a worker holds and the slot tasks that run them.

    slots.take(rows)          # hold claimed rows: buffer them, wake or make slots
    slots.request_cancel(h)   # a cancel request (NOTIFY or cancel check)
    slots.lease_lost(h)       # the heartbeat found the lease gone
    slots.written(...)        # the ack buffer's callback: outcomes written (or fenced off)
    slots.refused(h, error)   # the ack buffer's callback: the database refused h's result

`held` maps every claimed job not yet written to its `HeldJob`; `ready` is the local buffer of
claimed jobs waiting for a slot. At most `concurrency` long-lived slot tasks (made on demand)
each take the next buffered job when their job ends, so a job costs no task of its own; a slot
yields to the loop every 8 jobs so jobs that never wait cannot starve it, and parks on a future
when the buffer is empty. Jobs of one slot share its context variables (`run` sets job_id_var).

A slot runs a job with `executor.run` and applies the `Outcome` it returns: a result, failure
or cancellation goes to the ack buffer (a failure with its retry delay, which also rings the
doorbell so the retry is claimed when due); a released job (lost, handed back) is dropped or
left for the hand back. A buffered job whose cancel arrives ends `cancelled` without running;
one whose `expires_at` passed while it waited goes back unstarted (`hand_back_later`).

Cancelling a running job (cancel request, lost lease) sets `ctx.cancelled` at once and cancels
its slot task after CANCEL_GRACE_MS, unless it ended first.

Emits jobserver_worker_jobs_finished_total{outcome}, _leases_lost_total, _fenced_writes_total,
jobserver_worker_running.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Sequence
from typing import Any

from jobserver.config import Settings
from jobserver.db.job_runs import Failure
from jobserver.registry import Definition
from jobserver.worker import metrics
from jobserver.worker.acks import AckBuffer
from jobserver.worker.backoff import policy_for, retry_delay
from jobserver.worker.context import JobContext, JobHost
from jobserver.worker.deadlines import Deadlines
from jobserver.worker.doorbell import Doorbell
from jobserver.worker.executor import run
from jobserver.worker.held import BUFFERED, LOST, RUNNING, HeldJob
from jobserver.worker.outcome import RELEASED, FailureKind, Outcome

log = logging.getLogger("jobserver.worker")


def report_fenced(h: HeldJob, kind: str) -> None:
    """A write about `h` matched nothing: the job is no longer ours; its result is dropped."""
    metrics.FENCED.labels(kind).inc()
    log.warning(
        "write fenced off: job no longer held by this worker; result dropped",
        extra={"jobId": str(h.id), "attempt": h.attempt, "write": kind},
    )


class SlotPool:
    def __init__(
        self,
        settings: Settings,
        concurrency: int,
        definitions: dict[tuple[str, int], Definition],
        host: JobHost,
        acks: AckBuffer,
        doorbell: Doorbell,
        hand_back_later: Callable[[HeldJob], None],
    ) -> None:
        self._settings = settings
        self.concurrency = concurrency
        self._definitions = definitions
        self._host = host
        self._acks = acks
        self._doorbell = doorbell
        self._hand_back_later = hand_back_later
        self.held: dict[uuid.UUID, HeldJob] = {}  # claimed and not yet written
        self.ready: deque[HeldJob] = deque()  # claimed, waiting for a free slot
        self.running = 0  # jobs whose code is executing (slots in use)
        self.processed = 0  # outcomes acknowledged by the database
        self.run_avg = 0.0  # moving mean of the run time of jobs, seconds (0 = none seen)
        self.deadlines = Deadlines()
        self._slots: list[asyncio.Task[None]] = []
        self._idle: list[asyncio.Future[None]] = []  # parked slots waiting for a job
        self._drained: asyncio.Future[None] | None = None  # set when nothing runs (shutdown)
        self._stopping = False

    # -- taking and running --------------------------------------------------------------------

    def take(self, rows: Sequence[Any]) -> None:
        """Hold the claimed rows: buffer them, then wake or make slots to run them."""
        held = self.held
        ready = self.ready
        definitions = self._definitions
        now = time.monotonic()
        for job_id, key, version, params, attempt, max_attempts, timeout, expires, _ in rows:
            d = definitions[(key, version)]
            limit = d.timeout_seconds
            if timeout is not None and (limit is None or timeout < limit):
                limit = timeout  # a job may shorten its definition's timeout, never lengthen it
            h = HeldJob(
                job_id,
                attempt,
                max_attempts,
                d,
                params,
                limit,
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
        assert task is not None
        ready = self.ready
        host = self._host
        deadlines = self.deadlines
        streak = 0
        while True:
            if not ready or self._stopping or self.running >= self.concurrency:
                # (over `concurrency` only after a reload lowered it: the extra slots park)
                fut: asyncio.Future[None] = loop.create_future()
                self._idle.append(fut)
                await fut
                streak = 0
                continue
            h = ready.popleft()
            if h.expires_at is not None and h.expires_at <= dt.datetime.now(dt.UTC):
                h.hand_back()  # its deadline passed while it waited: back unstarted
                h.release()
                self._hand_back_later(h)
                continue
            ctx = JobContext(host, h.id, h.attempt, h.max_attempts, h.params)
            self.running += 1
            h.begin(task, ctx, time.monotonic())
            try:
                outcome = await run(h, ctx, deadlines)
            except asyncio.CancelledError:
                raise  # the slot task is cancelled: the worker is torn down
            except Exception:
                log.exception("job crashed the executor", extra={"jobId": str(h.id)})
                h.lose()
                outcome = RELEASED
            self._apply(h, outcome)
            streak += 1
            if streak >= 8:  # jobs that never wait must not starve the loop
                streak = 0
                await asyncio.sleep(0)

    def _apply(self, h: HeldJob, outcome: Outcome) -> None:
        """Free the job's slot and hand its outcome to the ack buffer (or drop it)."""
        kind = outcome.kind
        if kind == "released":
            h.release()
            if h.stop == LOST:  # a handed back job stays held until the hand back is written
                self.held.pop(h.id, None)
                metrics.FINISHED.labels("lost").inc()
        else:
            h.finish()
        ran_at = h.ran_at
        ran = 0.0 if ran_at is None else time.monotonic() - ran_at
        self.running -= 1
        self.run_avg += (ran - self.run_avg) * 0.05 if self.run_avg else ran
        self._doorbell.slot_freed(len(self.ready))
        if self._drained is not None and self.running == 0 and not self._drained.done():
            self._drained.set_result(None)
        if kind == "succeeded":
            self._acks.add_success(h, outcome.result_json)
        elif kind == "cancelled":
            self._acks.add_cancel(h)
        elif kind == "failed":
            self._acks.add_failure(
                h,
                self._failure(
                    h,
                    outcome.failure,
                    outcome.error,
                    outcome.traceback,
                    ran,
                    final=outcome.final,
                    retry_after=outcome.retry_after,
                ),
            )

    def _failure(
        self,
        h: HeldJob,
        kind: FailureKind,
        error: str,
        tb: str | None,
        ran: float,
        *,
        final: bool = False,
        retry_after: float | None = None,
    ) -> Failure:
        """The failed attempt to record, with its retry delay (which rings the doorbell);
        `final` (a PermanentError) retries no more, whatever attempts remain; `retry_after`
        (a RetryAfter) replaces the back-off and is `pinned`: the job's own retryDelays,
        applied when the failure is written, do not replace it."""
        override = h.definition.backoff
        wait = retry_delay(
            h.attempt,
            h.max_attempts,
            policy_for(self._settings, override),
            final=final,
            retry_after=retry_after,
            delays=override.delays if override is not None else None,
        )
        delay = 0.0
        if wait is not None:
            delay = wait
            self._doorbell.ring_after(delay)
        return Failure(
            h.id,
            h.attempt,
            kind,
            error,
            tb,
            delay,
            ran * 1000.0,
            final=final,
            pinned=retry_after is not None,
        )

    def refused(self, h: HeldJob, error: str) -> Failure:
        """The ack buffer's callback: the database refused `h`'s result; its attempt fails."""
        return self._failure(h, "failed", error, None, h.ran_for(time.monotonic()))

    # -- stopping jobs -------------------------------------------------------------------------

    def request_cancel(self, h: HeldJob) -> None:
        """A cancel request for a held job: set ctx.cancelled, cancel the task after the grace.

        A job still in the buffer is cancelled without running."""
        if not h.request_cancel():
            return
        log.info("cancel requested", extra={"jobId": str(h.id)})
        if h.state == BUFFERED:
            self.ready.remove(h)
            h.cancel_unstarted()
            self._acks.add_cancel(h)
            return
        self._signal(h)

    def lease_lost(self, h: HeldJob) -> None:
        """The job was rescued or taken over: signal it, cancel it after the grace period."""
        if not h.lose():
            return
        metrics.LEASES_LOST.inc()
        log.warning(
            "lease lost; dropping the job", extra={"jobId": str(h.id), "attempt": h.attempt}
        )
        if h.state == BUFFERED:
            self.ready.remove(h)
            h.release()
            self.held.pop(h.id, None)
            metrics.FINISHED.labels("lost").inc()
            return
        self._signal(h)

    def _signal(self, h: HeldJob) -> None:
        if h.ctx is not None:
            h.ctx.cancelled.set()
        if h.state == RUNNING and h.cancel_handle is None:
            h.cancel_handle = asyncio.get_running_loop().call_later(
                self._settings.cancel_grace_ms / 1000, self._cancel_run, h
            )

    @staticmethod
    def _cancel_run(h: HeldJob) -> None:
        """Cancel the slot task while it still runs `h` (never the job after it)."""
        if h.state == RUNNING and h.task is not None:
            h.task.cancel()

    # -- the ack buffer's callback -------------------------------------------------------------

    def written(self, kind: str, entries: list[HeldJob], written: Collection[uuid.UUID]) -> None:
        held = self.held
        for h in entries:
            h.written()
            if held.get(h.id) is h:
                del held[h.id]
        n = len(written)
        self.processed += len(entries)
        if n:
            metrics.FINISHED.labels(kind).inc(n)
        if kind == "given_up":  # not written (logged by the ack buffer): leases expire
            metrics.FINISHED.labels(kind).inc(len(entries))
        elif n != len(entries):
            written = set(written)
            for h in entries:
                if h.id not in written:
                    report_fenced(h, kind)
        metrics.RUNNING.set(self.running)
        self._doorbell.acked()

    # -- shutdown ------------------------------------------------------------------------------

    def stop_starting(self) -> None:
        """Start no more jobs: running ones finish, buffered ones stay for `take_buffered`."""
        self._stopping = True

    def take_buffered(self) -> list[HeldJob]:
        """The buffered jobs, taken out of the buffer and marked handed back."""
        buffered = list(self.ready)
        self.ready.clear()
        for h in buffered:
            h.hand_back()
            h.release()
        return buffered

    def stop_running(self) -> list[HeldJob]:
        """Hand back every job still running: signal it and cancel its task now."""
        left = [h for h in self.held.values() if h.state == RUNNING]
        for h in left:
            h.hand_back()
            if h.ctx is not None:
                h.ctx.cancelled.set()
            assert h.task is not None
            h.task.cancel()
        return left

    def nothing_runs(self) -> asyncio.Future[None]:
        """A future done once no job's code runs (shutdown waits on it)."""
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()
        if self.running == 0 and not self._drained.done():
            self._drained.set_result(None)
        return self._drained

    async def close(self) -> None:
        """End the (parked) slot tasks."""
        for t in self._slots:
            t.cancel()
        await asyncio.gather(*self._slots, return_exceptions=True)
        self._slots.clear()
