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
import logging
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
    """A job this worker holds, from claim until its outcome is written (or dropped)."""

    __slots__ = (
        "acking",
        "attempt",
        "cancel_handle",
        "cancel_requested",
        "ctx",
        "definition",
        "handing_back",
        "id",
        "lost",
        "max_attempts",
        "started",
        "task",
        "timeout",
    )

    def __init__(
        self,
        job_id: uuid.UUID,
        attempt: int,
        max_attempts: int,
        definition: Definition,
        ctx: JobContext,
        timeout: float | None,
    ) -> None:
        self.id = job_id
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.definition = definition
        self.ctx = ctx
        self.timeout = timeout
        self.started = time.monotonic()
        self.task: asyncio.Task[None] | None = None
        self.acking = False
        self.cancel_requested = False
        self.lost = False
        self.handing_back = False
        self.cancel_handle: asyncio.TimerHandle | None = None


def _clean(text: str, limit: int) -> str:
    """PostgreSQL text cannot hold NUL; keep errors bounded."""
    text = text.replace("\x00", "")
    return text if len(text) <= limit else text[:limit] + "…"


async def _hook(worker: Worker, held: Held, name: str, fn: HookFn, *args: Any) -> None:
    try:
        async with asyncio.timeout(HOOK_TIMEOUT):
            await fn(held.ctx.params, held.ctx, *args)
    except Exception as e:
        error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        log.warning("hook %s failed: %s", name, error, extra={"jobId": str(held.id)})
        try:
            await held.ctx._write_event(
                "hook_failed", to_json({"hook": name, "error": _clean(error, MAX_ERROR_CHARS)})
            )
        except Exception:
            log.exception("could not record hook_failed", extra={"jobId": str(held.id)})


async def execute(worker: Worker, held: Held) -> None:
    """The task body of one job; never raises (except when the worker is torn down)."""
    job_id_var.set(str(held.id))
    d = held.definition
    ctx = held.ctx
    outcome = "succeeded"
    result_json = ""
    error: BaseException | str | None = None
    tb: str | None = None
    timer = asyncio.timeout(held.timeout)
    try:
        if d.on_start is not None:
            await _hook(worker, held, "on_start", d.on_start)
        async with timer:
            result = await d.run(ctx.params, ctx)
        try:
            result_json = to_json(result)
        except (TypeError, ValueError) as e:
            outcome, error = "failed", f"result is not JSON-serialisable: {e}"
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if not (held.cancel_requested or held.lost or held.handing_back) or task is None:
            raise
        task.uncancel()
        outcome = "cancelled"
    except TimeoutError as e:
        if timer.expired():
            outcome, error = "timed_out", f"timed out after {held.timeout:g} s"
        else:
            outcome, error, tb = "failed", e, traceback.format_exc()
    except Exception as e:
        outcome, error, tb = "failed", e, traceback.format_exc()

    if held.handing_back or held.lost:
        worker.job_released(held, "handed_back" if held.handing_back else "lost")
        return
    if held.cancel_requested:
        outcome = "cancelled"  # a cancel request decides the outcome, whatever the job did
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

    ms = (time.monotonic() - held.started) * 1000.0
    if outcome == "succeeded":
        worker.job_finished(held)
        worker.acks.add_success(held, result_json, ms)
    elif outcome == "cancelled":
        worker.job_finished(held)
        worker.acks.add_cancel(held, ms)
    else:
        if isinstance(error, BaseException):
            text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        else:
            text = str(error)
        delay = 0.0
        if held.attempt < held.max_attempts:
            delay = backoff_delay(held.attempt, *policy_for(worker.settings, d.backoff))
            worker.wake_after(delay)
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
