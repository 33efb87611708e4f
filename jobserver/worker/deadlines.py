"""`Deadlines`: run timeouts with one loop timer for the whole worker, not one per job.

The jobs whose code runs are kept in a set (at most `concurrency` of them) with their deadline
on the loop clock; the timer is armed for the earliest one. When it fires, every job past its
deadline gets the stop reason `timeout` (`HeldJob.time_out`) and its slot task is cancelled; the
timer re-arms for the next. A job that ends leaves the set (a discard). Jobs of one definition
share a timeout, so a new job's deadline is after the armed one and arming costs a clock read
and a set add.
"""

from __future__ import annotations

import asyncio
import math

from jobserver.worker.held import HeldJob


class Deadlines:
    def __init__(self) -> None:
        self._active: set[HeldJob] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._at = math.inf

    def arm(self, held: HeldJob, seconds: float) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        at = loop.time() + seconds
        held.deadline = at
        self._active.add(held)
        if at < self._at:
            self._schedule(loop, at)

    def disarm(self, held: HeldJob) -> None:
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
                if task is not None and held.time_out():
                    task.cancel()
            elif at < nxt:
                nxt = at
        if nxt < math.inf:
            self._schedule(loop, nxt)

    def __len__(self) -> int:
        return len(self._active)
