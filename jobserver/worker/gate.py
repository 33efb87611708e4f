"""`ClaimGate`: whether the claim loop may claim now, and which queues it must leave alone.

Two kinds of pause close it, neither of which the claim reads from the database:

- the worker's own pause (`paused`, the control channel's `pause`/`resume`): this worker claims
  nothing until resumed or restarted; not durable;
- the durable, fleet-wide pause of queues (`paused_queues`, a copy of the table the control
  module keeps: read after each LISTEN (re)connection and whenever the control channel says it
  changed). A worker of explicit queues leaves the paused ones out of the queues it claims; a
  worker of every queue passes them to the claim to skip (`job_claim_available(skip_queues)`).

The gate stays closed until the paused set was first read (`loaded`), so a worker started
while a queue is paused never claims it. `on_change` (the doorbell) is rung when it opens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence


class ClaimGate:
    def __init__(self, queues: Sequence[str] | None, on_change: Callable[[], None]) -> None:
        self._queues = list(queues) if queues else None
        self._on_change = on_change
        self.paused = False
        self.loaded = False
        self.paused_queues: frozenset[str] = frozenset()
        self._claim_queues = self._queues
        self._skip: list[str] | None = None

    def pause(self) -> bool:
        """The worker's own pause; False when it already was paused."""
        was, self.paused = self.paused, True
        return not was

    def resume(self) -> bool:
        """End the worker's own pause; False when it was not paused."""
        was, self.paused = self.paused, False
        if was:
            self._on_change()
        return was

    def set_paused_queues(self, names: Iterable[str]) -> None:
        """The fleet's paused queues as just read; opens the gate the first time."""
        paused = frozenset(names)
        changed = paused != self.paused_queues or not self.loaded
        self.paused_queues = paused
        self.loaded = True
        if self._queues is None:
            self._claim_queues, self._skip = None, sorted(paused) or None
        else:
            self._claim_queues, self._skip = [q for q in self._queues if q not in paused], None
        if changed:
            self._on_change()

    @property
    def open(self) -> bool:
        """The claim loop may claim (something of its queues is not paused)."""
        return self.loaded and not self.paused and self._claim_queues != []

    @property
    def claim_queues(self) -> list[str] | None:
        """The queues to claim from (None: all)."""
        return self._claim_queues

    @property
    def skip_queues(self) -> list[str] | None:
        """The queues the claim must skip (None: none)."""
        return self._skip

    def wanted(self, queue: str) -> bool:
        """Whether a NOTIFY about `queue` ("*": several) may bring this worker a job."""
        return queue == "*" or queue not in self.paused_queues
