"""`run(job, ctx, deadlines)`: run one held job's code and hooks, and say what it came to.

The executor reports, it does not act: it returns an `Outcome` and the slot pool applies it
(ack buffer, slot, metrics). It reads the job's stop reason (`HeldJob.stop`), set meanwhile by
the worker, to judge how the run ended:

- succeeded: the code returned a JSON value (stored as `result_json`)
- failed: it raised, or returned something JSON cannot hold or PostgreSQL cannot store
  (`result_not_storable`: NUL, lone surrogate, over MAX_RESULT_BYTES; checked here, before the
  batched write, so it fails only its own attempt); a cancellation raised by its own code (an
  inner task cancelled) is a failed attempt too; `PermanentError` (from jobserver.registry)
  makes it a final failure: no retry; `RetryAfter` a failed attempt whose retry waits the
  delay it names (`Outcome.retry_after`) instead of the back-off
- timed out (a failed attempt): it ran past the job's `timeout_seconds` (else the definition's);
  `Deadlines` cancelled it, or it swallowed that cancellation and returned anyway
- cancelled: a cancel request was made while it was held; whatever the job then did, it ends
  cancelled (the request decides the outcome)
- released: its lease was lost, or the worker hands it back at shutdown: nothing is written

Hooks `on_start(params, ctx)`, `on_success(params, ctx, result)`, `on_fail(params, ctx, error)`
and `on_end(params, ctx, outcome)` run while the job is still held; a hook that raises or hangs
(HOOK_TIMEOUT) writes a `hook_failed` event and changes nothing else.

`run` never raises, except when the slot task itself is cancelled (the worker is torn down): a
cancellation the worker did not ask for about this job propagates.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any, Literal

from jobserver.codec import NotStorable, dumps_storable, dumps_stored
from jobserver.logs import job_id_var
from jobserver.registry import HookFn, PermanentError, RetryAfter
from jobserver.worker.context import JobContext
from jobserver.worker.deadlines import Deadlines
from jobserver.worker.held import CANCEL, HAND_BACK, LOST, NONE, TIMEOUT, HeldJob
from jobserver.worker.outcome import CANCELLED, RELEASED, SUCCEEDED_NULL, Outcome

log = logging.getLogger("jobserver.worker")

HOOK_TIMEOUT = 30.0
Ended = Literal["succeeded", "failed", "timed_out", "cancelled", "released"]
MAX_ERROR_CHARS = 10_000
MAX_TRACEBACK_CHARS = 50_000


def clean(text: str, limit: int) -> str:
    """PostgreSQL text cannot hold NUL nor lone surrogates (they are not UTF-8): drop the one,
    escape the other; keep errors bounded."""
    text = text.replace("\x00", "")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode()
    return text if len(text) <= limit else text[:limit] + "…"


def describe(error: BaseException | str) -> str:
    """One line for an error: `Type: message`, or the type alone when it has no message
    (a `NotStorable` is its message: `result_not_storable: …`)."""
    if isinstance(error, NotStorable):
        return str(error)
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return error


async def _hook(ctx: JobContext, name: str, fn: HookFn, *args: Any) -> None:
    try:
        async with asyncio.timeout(HOOK_TIMEOUT):
            await fn(ctx.params, ctx, *args)
    except Exception as e:
        error = describe(e)
        log.warning("hook %s failed: %s", name, error, extra={"jobId": str(ctx.job_id)})
        try:
            await ctx.host.write_event(
                ctx.job_id,
                ctx.attempt,
                "hook_failed",
                dumps_stored({"hook": name, "error": clean(error, MAX_ERROR_CHARS)}),
            )
        except Exception:
            log.exception("could not record hook_failed", extra={"jobId": str(ctx.job_id)})


def _timed_out(job: HeldJob) -> str:
    return f"timed out after {job.timeout:g} s"


def _returned_while_stopping(job: HeldJob) -> tuple[Ended, str]:
    """The code returned although the worker had asked it to stop (it may have swallowed the
    cancellation the worker sent it: take that back, or the slot's next job would see it)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        task.uncancel()
    if job.stop == TIMEOUT:
        return "timed_out", _timed_out(job)
    return "succeeded", ""  # cancel, lost, hand back: decided by the stop reason below


def _cancelled(job: HeldJob, e: asyncio.CancelledError) -> tuple[Ended, str | BaseException, str]:
    """The code ended with CancelledError: the worker's doing (a stop reason), a teardown of
    the slot (re-raised) or the job's own (an inner task cancelled: a failed attempt)."""
    task = asyncio.current_task()
    if task is None:
        raise e
    if job.stop != NONE:  # the worker cancelled it: timeout, cancel, lost or hand back
        task.uncancel()
        if job.stop == TIMEOUT:
            return "timed_out", _timed_out(job), ""
        return "succeeded", "", ""  # decided by the stop reason below
    if task.cancelling():
        raise e  # the slot task itself is cancelled: the worker is torn down
    return "failed", e, traceback.format_exc()


async def _end_hooks(
    job: HeldJob, ctx: JobContext, ended: Ended, result: Any, error: BaseException | str
) -> Ended:
    """on_success / on_fail, then on_end; a stop that cancels them decides the outcome."""
    d = job.definition
    try:
        if ended == "succeeded":
            if d.on_success is not None:
                await _hook(ctx, "on_success", d.on_success, result)
        elif ended != "cancelled" and d.on_fail is not None:
            await _hook(ctx, "on_fail", d.on_fail, error)
        if d.on_end is not None:
            await _hook(ctx, "on_end", d.on_end, ended)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        stop = job.stop
        if task is None or stop not in (CANCEL, LOST, HAND_BACK):
            raise
        task.uncancel()
        return "cancelled" if stop == CANCEL else "released"
    return ended


async def run(job: HeldJob, ctx: JobContext, deadlines: Deadlines) -> Outcome:
    """Run the job's hooks and code in the calling task; see the module docstring."""
    job_id_var.set(str(job.id))
    d = job.definition
    result: Any = None
    result_json: str | None = None  # None: the result was None
    ended: Ended = "succeeded"  # what on_end is told (and what the outcome is)
    error: BaseException | str = ""
    tb = ""
    final = False  # PermanentError: fail without retry
    retry_after: float | None = None  # RetryAfter: the delay before the retry
    try:
        if d.on_start is not None:
            await _hook(ctx, "on_start", d.on_start)
        if job.timeout:
            deadlines.arm(job, job.timeout)
            try:
                result = await d.run(ctx.params, ctx)
            finally:
                deadlines.disarm(job)
                if ctx.writes is not None:  # the last progress report is always written
                    await ctx.writes.flush()
        else:
            try:
                result = await d.run(ctx.params, ctx)
            finally:
                if ctx.writes is not None:
                    await ctx.writes.flush()
    except asyncio.CancelledError as e:
        ended, error, tb = _cancelled(job, e)
    except PermanentError as e:
        ended, error, tb, final = "failed", e, traceback.format_exc(), True
    except RetryAfter as e:
        ended, error, tb, retry_after = "failed", e, traceback.format_exc(), e.seconds
    except Exception as e:
        ended, error, tb = "failed", e, traceback.format_exc()
    else:
        if job.stop != NONE:
            ended, error = _returned_while_stopping(job)
        elif result is not None:
            try:
                result_json = dumps_storable(result, ctx.host.limits.max_result_bytes)
            except NotStorable as e:
                ended, error = "failed", str(e)
            except (TypeError, ValueError) as e:
                ended, error = "failed", f"result is not JSON-serialisable: {e}"

    stop = job.stop
    if stop in (LOST, HAND_BACK):
        return RELEASED
    if stop == CANCEL:
        ended = "cancelled"  # a cancel request decides the outcome, whatever the job did
    if d.on_success is not None or d.on_fail is not None or d.on_end is not None:
        ended = await _end_hooks(job, ctx, ended, result, error)
    if ended == "succeeded":
        return SUCCEEDED_NULL if result_json is None else Outcome("succeeded", result_json)
    if ended == "cancelled":
        return CANCELLED
    if ended == "released":
        return RELEASED
    return Outcome.failed(
        clean(describe(error), MAX_ERROR_CHARS),
        clean(tb, MAX_TRACEBACK_CHARS) if tb else None,
        timed_out=ended == "timed_out",
        final=final and ended == "failed",
        retry_after=retry_after if ended == "failed" else None,
    )
