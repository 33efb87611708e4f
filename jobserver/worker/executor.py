"""Running one claimed job: hooks, timeout, cancellation, and handing the outcome to the acks.

Outcomes: succeeded (JSON result), failed (an exception, or a result that is not JSON),
timed_out (ran past the job's `timeout_seconds`, else the definition's), cancelled (the worker
signalled `ctx.cancelled` for a cancel request; whatever the job then does, it ends cancelled),
lost (the lease was taken over: nothing is written), handed_back (shutdown: the daemon gives the
job back). Hooks `on_start(params, ctx)`, `on_success(params, ctx, result)`,
`on_fail(params, ctx, error)` and `on_end(params, ctx, outcome)` run while the job is still
held; a hook that raises or hangs (HOOK_TIMEOUT) writes a `hook_failed` event and changes
nothing else.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
import traceback
import uuid
from typing import TYPE_CHECKING, Any

from jobserver.db.job_runs import Failure
from jobserver.logs import job_id_var
from jobserver.registry import Definition, HookFn
from jobserver.worker.backoff import backoff_delay, policy_for
from jobserver.worker.context import JobContext, to_json

if TYPE_CHECKING:
    from jobserver.worker.daemon import Worker

log = logging.getLogger("jobserver.worker")

HOOK_TIMEOUT = 30.0
MAX_ERROR_CHARS = 10_000
MAX_TRACEBACK_CHARS = 50_000


class Held:
    """A job this worker holds, from claim until its outcome is written (or dropped).

    Claimed jobs may wait in the worker's local buffer before they start: `task` (the slot task
    that runs it) and `ctx` are None until then; `active` is True while its code runs.
    `claimed_at` and `ran_at` (monotonic) are when the claim answered and when the code began.
    """

    __slots__ = (
        "acking",
        "active",
        "attempt",
        "cancel_handle",
        "cancel_requested",
        "claimed_at",
        "ctx",
        "deadline",
        "definition",
        "expires_at",
        "handing_back",
        "id",
        "lost",
        "max_attempts",
        "params",
        "ran_at",
        "task",
        "timed_out",
        "timeout",
    )

    def __init__(
        self,
        job_id: uuid.UUID,
        attempt: int,
        max_attempts: int,
        definition: Definition,
        params: Any,
        timeout: float | None,
        expires_at: dt.datetime | None = None,
        claimed_at: float = 0.0,
    ) -> None:
        self.id = job_id
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.definition = definition
        self.params = params
        self.timeout = timeout
        self.expires_at = expires_at
        self.ctx: JobContext | None = None
        self.claimed_at = claimed_at
        self.ran_at: float | None = None
        self.task: asyncio.Task[None] | None = None
        self.deadline: float | None = None  # on the loop clock, while the timeout is armed
        self.acking = False
        self.active = False
        self.cancel_requested = False
        self.lost = False
        self.handing_back = False
        self.timed_out = False
        self.cancel_handle: asyncio.TimerHandle | None = None

    @property
    def waited(self) -> float:
        """Seconds between the claim and the start of the job's code (0 if it never ran)."""
        return 0.0 if self.ran_at is None else max(0.0, self.ran_at - self.claimed_at)

    def ran_for(self, now: float) -> float:
        """Seconds since the job's code began (0 when it never started)."""
        return 0.0 if self.ran_at is None else now - self.ran_at


class Deadlines:
    """Run timeouts with one loop timer for the whole worker, not one per job.

    The jobs whose code runs are kept in a set (at most `concurrency` of them) with their
    deadline on the loop clock; the timer is armed for the earliest one. When it fires, it
    cancels the slot task of every job past its deadline and re-arms for the next; a job that
    ends leaves the set (a discard). Jobs of one definition share a timeout, so a new job's
    deadline is after the armed one and arming costs a clock read and a set add.
    """

    def __init__(self) -> None:
        self._active: set[Held] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._at = math.inf

    def arm(self, held: Held, seconds: float) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        at = loop.time() + seconds
        held.deadline = at
        self._active.add(held)
        if at < self._at:
            self._schedule(loop, at)

    def disarm(self, held: Held) -> None:
        if held.deadline is not None:
            held.deadline = None
            self._active.discard(held)

    def _schedule(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._at = at
        self._handle = loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._at = math.inf
        loop = self._loop
        assert loop is not None
        now = loop.time()
        nxt = math.inf
        for held in list(self._active):
            at = held.deadline
            if at is None:
                self._active.discard(held)
            elif at <= now:
                self._active.discard(held)
                held.deadline = None
                task = held.task
                if task is not None and held.active and not held.acking:
                    held.timed_out = True
                    task.cancel()
            elif at < nxt:
                nxt = at
        if nxt < math.inf:
            self._schedule(loop, nxt)

    def __len__(self) -> int:
        return len(self._active)


def _clean(text: str, limit: int) -> str:
    """PostgreSQL text cannot hold NUL; keep errors bounded."""
    text = text.replace("\x00", "")
    return text if len(text) <= limit else text[:limit] + "…"


async def _hook(worker: Worker, held: Held, name: str, fn: HookFn, *args: Any) -> None:
    ctx = held.ctx
    assert ctx is not None
    try:
        async with asyncio.timeout(HOOK_TIMEOUT):
            await fn(ctx.params, ctx, *args)
    except Exception as e:
        error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        log.warning("hook %s failed: %s", name, error, extra={"jobId": str(held.id)})
        try:
            await ctx._write_event(
                "hook_failed", to_json({"hook": name, "error": _clean(error, MAX_ERROR_CHARS)})
            )
        except Exception:
            log.exception("could not record hook_failed", extra={"jobId": str(held.id)})


async def execute(worker: Worker, held: Held) -> None:
    """Run one job in the calling slot task; never raises (except when the worker is torn
    down: a cancellation of the slot task that is not about this job)."""
    try:
        await _execute(worker, held)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("job crashed the executor", extra={"jobId": str(held.id)})
        if held.active:
            worker.job_released(held, "lost")


async def _execute(worker: Worker, held: Held) -> None:
    job_id_var.set(str(held.id))
    d = held.definition
    ctx = held.ctx
    assert ctx is not None
    outcome = "succeeded"
    result: Any = None
    result_json = "null"
    error: BaseException | str | None = None
    tb: str | None = None
    try:
        if d.on_start is not None:
            await _hook(worker, held, "on_start", d.on_start)
        if held.timeout:
            worker.deadlines.arm(held, held.timeout)
            try:
                result = await d.run(ctx.params, ctx)
            finally:
                worker.deadlines.disarm(held)
        else:
            result = await d.run(ctx.params, ctx)
        if held.timed_out:  # the job swallowed the cancellation of its timeout
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            outcome, error = "timed_out", f"timed out after {held.timeout:g} s"
        elif result is not None:
            try:
                result_json = to_json(result)
            except (TypeError, ValueError) as e:
                outcome, error = "failed", f"result is not JSON-serialisable: {e}"
    except asyncio.CancelledError as e:
        task = asyncio.current_task()
        stopped = held.cancel_requested or held.lost or held.handing_back
        if task is None:
            raise
        if stopped or held.timed_out:
            task.uncancel()
            if stopped:
                outcome = "cancelled"
            else:
                outcome, error = "timed_out", f"timed out after {held.timeout:g} s"
        elif task.cancelling():
            raise  # the slot task itself is cancelled: the worker is torn down
        else:  # raised by the job's own code (an inner task cancelled): a failed attempt
            outcome, error, tb = "failed", e, traceback.format_exc()
    except Exception as e:
        outcome, error, tb = "failed", e, traceback.format_exc()

    if held.handing_back or held.lost:
        worker.job_released(held, "handed_back" if held.handing_back else "lost")
        return
    if held.cancel_requested:
        outcome = "cancelled"  # a cancel request decides the outcome, whatever the job did
    if d.on_success is not None or d.on_fail is not None or d.on_end is not None:
        try:
            if outcome == "succeeded":
                if d.on_success is not None:
                    await _hook(worker, held, "on_success", d.on_success, result)
            elif outcome != "cancelled" and d.on_fail is not None:
                await _hook(worker, held, "on_fail", d.on_fail, error)
            if d.on_end is not None:
                await _hook(worker, held, "on_end", d.on_end, outcome)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or not (held.handing_back or held.lost or held.cancel_requested):
                raise
            task.uncancel()
            if held.handing_back or held.lost:
                worker.job_released(held, "handed_back" if held.handing_back else "lost")
                return
            outcome = "cancelled"

    if outcome == "succeeded":
        worker.job_finished(held)
        worker.acks.add_success(held, result_json)
    elif outcome == "cancelled":
        worker.job_finished(held)
        worker.acks.add_cancel(held)
    else:
        if isinstance(error, BaseException):
            text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        else:
            text = str(error)
        delay = 0.0
        if held.attempt < held.max_attempts:
            delay = backoff_delay(held.attempt, *policy_for(worker.settings, d.backoff))
            worker.wake_after(delay)
        ms = held.ran_for(time.monotonic()) * 1000.0
        worker.job_finished(held)
        worker.acks.add_failure(
            held,
            Failure(
                held.id,
                held.attempt,
                outcome,
                _clean(text, MAX_ERROR_CHARS),
                _clean(tb, MAX_TRACEBACK_CHARS) if tb else None,
                delay,
                ms,
            ),
        )
