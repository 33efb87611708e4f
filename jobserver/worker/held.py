"""`HeldJob`: a job this worker holds, from its claim until its outcome is written or dropped.

A held job has one state and one stop reason, changed only by the methods below, which refuse
a move the lifecycle does not have (`IllegalTransition`).

State (`state`):

    buffered --begin--> running --finish--> acking --written--> done
       |                   |
       |                   +--release--> done     (lost, or handed back: nothing to write)
       +--release--> done                         (lost, or handed back unstarted)
       +--cancel_unstarted--> acking              (cancel request before it ran)

Stop reason (`stop`): why the job's code is asked to end early, at most one at a time.

    none --time_out--> timeout      (its run passed its timeout: a failed attempt)
    none|timeout --request_cancel--> cancel        (a cancel request decides the outcome)
    none|timeout|cancel --hand_back--> hand_back   (shutdown: back to queued, no attempt used)
    any but lost --lose--> lost     (the lease was taken over: nothing may be written)

A second request of the same stop is a no-op (a cancel NOTIFY and the cancel check may both
report one cancel); the request methods return whether they changed anything. The object is
made per claimed job (tens of thousands a second): plain attributes, `__slots__`, no events.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from jobserver.registry import Definition
    from jobserver.worker.context import JobContext

State = Literal["buffered", "running", "acking", "done"]
Stop = Literal["none", "cancel", "lost", "hand_back", "timeout"]

BUFFERED: Final = "buffered"
RUNNING: Final = "running"
ACKING: Final = "acking"
DONE: Final = "done"

NONE: Final = "none"
CANCEL: Final = "cancel"
LOST: Final = "lost"
HAND_BACK: Final = "hand_back"
TIMEOUT: Final = "timeout"


class IllegalTransition(RuntimeError):
    """A held job was asked for a move its lifecycle does not have (a bug in the worker)."""


class HeldJob:
    """One claimed job. `task` (the slot task running it) and `ctx` are None until it begins;
    `claimed_at` and `ran_at` (monotonic) are when the claim answered and its code began;
    `deadline` (loop clock) is set while its timeout is armed; `cancel_handle` is the timer
    that cancels its task after the cancel grace period."""

    __slots__ = (
        "attempt",
        "cancel_handle",
        "claimed_at",
        "ctx",
        "deadline",
        "definition",
        "expires_at",
        "id",
        "max_attempts",
        "params",
        "ran_at",
        "state",
        "stop",
        "task",
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
        self.claimed_at = claimed_at
        self.state: State = BUFFERED
        self.stop: Stop = NONE
        self.ctx: JobContext | None = None
        self.ran_at: float | None = None
        self.task: asyncio.Task[None] | None = None
        self.deadline: float | None = None
        self.cancel_handle: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<HeldJob {self.id} attempt={self.attempt} {self.state} stop={self.stop}>"

    # -- timings -------------------------------------------------------------------------------

    @property
    def waited(self) -> float:
        """Seconds between the claim and the start of the job's code (0 if it never ran)."""
        return 0.0 if self.ran_at is None else max(0.0, self.ran_at - self.claimed_at)

    def ran_for(self, now: float) -> float:
        """Seconds since the job's code began (0 when it never started)."""
        return 0.0 if self.ran_at is None else now - self.ran_at

    # -- state ---------------------------------------------------------------------------------

    def _refuse(self, move: str) -> IllegalTransition:
        return IllegalTransition(f"{move}: job {self.id} is {self.state} (stop={self.stop})")

    def begin(self, task: asyncio.Task[None], ctx: JobContext, now: float) -> None:
        """buffered -> running: a slot starts the job's code."""
        if self.state != BUFFERED or self.stop != NONE:
            raise self._refuse("begin")
        self.state = RUNNING
        self.task = task
        self.ctx = ctx
        self.ran_at = now

    def finish(self) -> None:
        """running -> acking: the job's code is over; its outcome waits in the ack buffer."""
        if self.state != RUNNING:
            raise self._refuse("finish")
        self.state = ACKING
        if self.cancel_handle is not None:
            self.cancel_handle.cancel()

    def cancel_unstarted(self) -> None:
        """buffered -> acking: a cancel request reached a job that never ran."""
        if self.state != BUFFERED or self.stop != CANCEL:
            raise self._refuse("cancel_unstarted")
        self.state = ACKING

    def release(self) -> None:
        """buffered|running -> done without a write of its outcome (lost or handed back)."""
        if self.state in (ACKING, DONE) or self.stop not in (LOST, HAND_BACK):
            raise self._refuse("release")
        self.state = DONE
        if self.cancel_handle is not None:
            self.cancel_handle.cancel()

    def written(self) -> None:
        """acking -> done: the ack buffer wrote the outcome (or found it fenced off)."""
        if self.state != ACKING:
            raise self._refuse("written")
        self.state = DONE

    # -- stop reason ---------------------------------------------------------------------------

    def request_cancel(self) -> bool:
        """A cancel request; False when it changes nothing (already stopping, or finished)."""
        if self.state in (ACKING, DONE):
            return False
        stop = self.stop
        if stop in (NONE, TIMEOUT):
            self.stop = CANCEL
            return True
        return False

    def lose(self) -> bool:
        """The lease is gone; False if already lost. Refused once the job is finished."""
        if self.state in (ACKING, DONE):
            raise self._refuse("lose")
        if self.stop == LOST:
            return False
        self.stop = LOST
        return True

    def hand_back(self) -> bool:
        """Shutdown gives the job back; False when already handed back or lost."""
        if self.state in (ACKING, DONE):
            raise self._refuse("hand_back")
        if self.stop in (LOST, HAND_BACK):
            return False
        self.stop = HAND_BACK
        return True

    def time_out(self) -> bool:
        """Its run passed the timeout: True when its task is to be cancelled (it runs). The
        reason becomes `timeout` unless the job is already stopping for another one."""
        if self.state != RUNNING:
            return False
        if self.stop == NONE:
            self.stop = TIMEOUT
        return True
