"""`Doorbell`: when the claim loop should claim again.

The claim loop sleeps on `event`; the slot pool rings when a slot frees and the buffer is low,
the ack buffer's callback when outcomes are written (the loop may wait for the backlog to
drain), NOTIFYs and retries falling due ring it too. `more` says the last claim was full (or a
NOTIFY came), so there may be more to claim when a slot frees; `refill_at` is the buffer
length at which the loop wants to run again; in `burst` mode every freed slot rings.
"""

from __future__ import annotations

import asyncio


class Doorbell:
    __slots__ = ("acks", "burst", "event", "more", "poll", "refill_at")

    def __init__(self, *, burst: bool, poll: float) -> None:
        self.event = asyncio.Event()
        self.burst = burst
        self.poll = poll
        self.more = True
        self.refill_at = 0
        # outcomes written so far: a claim that ran while one was written may have missed the
        # slot it freed (the claim loop compares it across a claim, see ClaimLoop._rounds)
        self.acks = 0

    def ring(self) -> None:
        """Claim now: there may be new jobs."""
        self.more = True
        self.event.set()

    def slot_freed(self, buffered: int) -> None:
        if (self.more or self.burst) and buffered <= self.refill_at:
            self.event.set()

    def acked(self) -> None:
        self.acks += 1
        if self.more or self.burst:
            self.event.set()

    def ring_after(self, delay: float) -> None:
        """A retry of ours falls due in `delay` s: claim then rather than at the next poll."""
        if not self.burst and delay < self.poll:
            asyncio.get_running_loop().call_later(delay + 0.005, self.ring)
