"""Leader election among any number of `jobserver-scheduler` processes: a lease row.

Choice: one row in `scheduler_leader` (name "scheduler") holding the leader's id and a lease
expiry. Every `L/4` seconds (L = LEADER_LEASE_SECONDS) each process runs one statement: the
holder extends the lease to `now() + 3L/4`, anyone else takes the row only when the lease has
passed (`jobserver.db.leader`). So a dead leader's row expires at most 3L/4 after its last renewal
and a follower notices within L/4 more: L bounds the takeover time. The database
clock decides expiry, so host clocks never need to agree. An advisory lock was rejected because
it lives on one session: it ties leadership to a pooled connection, dies silently with it and
is invisible to other tools, while a row can be inspected (`SELECT * FROM scheduler_leader`).

Locally, leadership is trusted until `send time of the last successful renewal + 3L/4`, measured
on this process' monotonic clock. The database started that lease no earlier than the send
time, so the local view always ends before the database's: two processes never both believe
they lead (barring clock *rate* drift over one lease, which is negligible).

Failure modes:
- Leader killed (`kill -9`, host lost): nobody renews; another process takes over at its first
  try after the row's lease passed, i.e. within L seconds of the kill.
- Leader cut off from the database or stalled (GC, SIGSTOP) past its lease: it stops acting when
  its local deadline passes, a successor takes over. Work already in flight at that instant can
  still land; every duty is therefore safe to repeat or overlap: cron inserts are exactly-once
  through a unique (schedule, fire time) index, the rescuer is fenced on status + lease expiry,
  expirer/pruner/workers-gone re-check their condition in the UPDATE/DELETE itself.
- Graceful shutdown (SIGTERM): the leader deletes its row and notifies; followers LISTENing
  take the lease at once instead of waiting for it to expire. The LISTEN session is the shared
  `jobserver.db.listener.Listener` (a pool connection, reconnected after a drop, with a renewal
  attempt after every reconnection since a release may have gone unheard meanwhile).
- Database down: nobody can renew; leadership lapses everywhere and resumes when it returns.

Emits: `jobserver_scheduler_is_leader`, `jobserver_scheduler_leadership_changes_total{change}`
and a log line on every change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import asyncpg

from jobserver.db.leader import leader_acquire_or_renew, leader_release
from jobserver.db.listener import Listener
from jobserver.scheduler import metrics
from jobserver.scheduler.base import BaseService

log = logging.getLogger("jobserver.scheduler.leader")

ELECTION = "scheduler"
LEADER_CHANNEL = "jobserver_leader"


class LeaderElector(BaseService):
    """Keeps (or competes for) the lease; `is_leader()` is what every other service asks."""

    name = "leader"

    def __init__(
        self,
        pool: asyncpg.Pool,
        holder: str,
        *,
        lease_seconds: float = 15.0,
        interval: float | None = None,
        election: str = ELECTION,
        listen: bool = True,
    ) -> None:
        super().__init__(pool, interval=interval or lease_seconds / 4)
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.row_lease = lease_seconds * 0.75
        self.election = election
        self.listen = listen
        self._valid_until = 0.0
        self._was_leader = False
        self._listener: Listener | None = None
        self.on_change: list[Callable[[bool], None]] = []

    def is_leader(self) -> bool:
        return time.monotonic() < self._valid_until

    async def run_once(self) -> dict[str, int]:
        """One acquire-or-renew round trip; changes are logged by `_set`."""
        sent = time.monotonic()
        try:
            expiry = await leader_acquire_or_renew(
                self.pool, self.election, self.holder, self.row_lease
            )
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as e:
            log.warning("leadership renewal failed: %s: %s", type(e).__name__, e)
            self._set(self.is_leader())  # the local deadline still stands until it passes
            return {}
        if expiry is not None:
            self._valid_until = sent + self.row_lease
        else:
            self._valid_until = 0.0
        self._set(expiry is not None)
        return {}

    def _set(self, leader: bool) -> None:
        metrics.IS_LEADER.set(1 if leader else 0)
        if leader != self._was_leader:
            self._was_leader = leader
            metrics.LEADERSHIP.labels("acquired" if leader else "lost").inc()
            log.info(
                "leadership %s", "acquired" if leader else "lost", extra={"holder": self.holder}
            )
            for callback in self.on_change:
                callback(leader)

    def start(self) -> None:
        """Start the renewals and, with `listen`, a LISTEN session (held from the pool,
        reconnected after a drop) that wakes a follower as soon as a leader releases."""
        super().start()
        if self.listen and self._listener is None:
            self._listener = Listener(
                self.pool,
                {LEADER_CHANNEL: self._on_notify},
                on_connect=self._on_notify,  # a release may have passed unheard meanwhile
                name="leader-listener",
            )
            self._listener.start()

    def _on_notify(self, _payload: str = "") -> None:
        if not self.is_leader():
            self.wake()

    async def stop(self) -> None:
        """Stop renewing and, when leader, release the lease so a successor takes over now."""
        await super().stop()
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.stop()
        if self.is_leader():
            self._valid_until = 0.0
            try:
                await leader_release(self.pool, self.election, self.holder, LEADER_CHANNEL)
            except Exception as e:
                log.warning("leadership release failed: %s: %s", type(e).__name__, e)
            metrics.IS_LEADER.set(0)
            metrics.LEADERSHIP.labels("released").inc()
            self._was_leader = False
            log.info("leadership released", extra={"holder": self.holder})
