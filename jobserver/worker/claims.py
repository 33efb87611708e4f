"""`ClaimLoop`: claims jobs for the slot pool, in as few round trips as the queue allows.

Only the definitions in the registry (`refs`) and the given queues (None = all) are claimed.
At most `concurrency` jobs run at once; claimed jobs beyond the free slots wait in the slot
pool's buffer and start the moment a slot frees, so a deep queue is drained with few large
claims instead of one round trip per `concurrency` jobs:

- After a claim that came back short (the queue is drained, or the worker was idle and woken by
  a NOTIFY) the next claim asks only for the free slots: an idle fleet shares new jobs instead
  of one worker hoarding them, and a NOTIFY'd job starts after one round trip.
- After a full claim the queue is deep: the loop asks for the free slots plus a prefetch of
  about PREFETCH_HORIZON seconds of work (from the mean run time of recent jobs, at most
  `prefetch_max`), and refills when half of it is used. Slow jobs therefore get almost no
  prefetch; no-op jobs get the full buffer.
- Buffered jobs are held like running ones: `running` in the database, under the lease the
  heartbeat renews, counted by the fleet-wide concurrency limits (the claim never takes more of
  a limited definition than its free count, under a per-key advisory lock). Their attempt
  begins at the claim; `started_at` is corrected to the moment the code began when the outcome
  is written (see db/job_runs.py).
- It also waits while the ack backlog is over max(1000, 4 x concurrency) outcomes.
- Concurrency-limited definitions need a claim of their own kind (a transaction under tried
  advisory locks); while none of their jobs is about, claims leave them out and stay one
  statement, looking for them again when a claim comes back empty and every
  LIMITED_RECHECK_SECONDS (see `_claim_ordinary`).
- Claims are fair between owners at equal priority (a share per owner, see db/job_runs.py); the
  loop keeps the cursor of that walk, so with more owners than one claim visits they take
  turns. Per-owner running quotas (a token's --max-running, else OWNER_MAX_RUNNING) are held
  fleet-wide like concurrency limits: the loop looks every QUOTA_CHECK_SECONDS whether any
  token has one, and while none does (and no default is set) claims skip the quota locks.

After a short claim the loop sleeps until the doorbell rings (a NOTIFY on JOBS_CHANNEL, a retry
falling due, a slot freeing after a full claim) or POLL_INTERVAL_MS pass (the doorbell's `poll`,
which a reload may change): it never busy-loops on an empty queue. In burst mode it returns once
nothing is ready, running or buffered. While the `gate` (gate.py) is closed (the worker paused,
or all of its queues paused) it claims nothing; paused queues are left out of every claim.
Rate-limited jobs (definitions with a rate limit: `rated`) are claimed by a rated claim of
their own (db/job_runs.py, `job_claim_rated`), after the ordinary claim of a round came back
short: the ordinary claim never takes them and costs what it did. The rated claim answers when
the next slot of a bucket it skipped opens; the loop runs it again only then (its sleep is cut
to that moment), at a NOTIFY, or a poll later: never in a busy loop while only the limit
holds the jobs back. In burst mode jobs waiting for their slot keep the loop alive. Rated jobs
held back by a concurrency limit or an owner's quota (the answer's `capped`) are claimed again
at the next round, which the doorbell starts when one of ours ends, as after a limited
ordinary claim (a slot freed by another worker's job is seen at the poll, as there). The rated
claim is fair between owners and holds their running quotas and the concurrency limits like
the ordinary one (under the same advisory locks); it keeps a cursor of its own walk of owners.
The claim session is its own connection (see CLAIM_SESSION_SETTINGS), reopened after an error
with back-off (0.1 s doubling to 5 s). Emits the claim counters and batch size histogram.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from jobserver.config import Settings
from jobserver.db import job_runs
from jobserver.db.pool import connect
from jobserver.db.tokens import token_quotas_exist
from jobserver.worker import metrics
from jobserver.worker.acks import AckBuffer
from jobserver.worker.doorbell import Doorbell
from jobserver.worker.gate import ClaimGate
from jobserver.worker.slots import SlotPool

log = logging.getLogger("jobserver.worker")

# Seconds of work a deep queue keeps buffered per worker (from the mean run time of its jobs).
PREFETCH_HORIZON = 0.2
# How often the loop looks whether some token has a running quota (a new quota holds within it).
QUOTA_CHECK_SECONDS = 5.0
# While no job of a concurrency-limited definition is about, claims leave those definitions
# out and skip the limited claim's transaction; they look for them again at least this often.
LIMITED_RECHECK_SECONDS = 0.25


class ClaimLoop:
    def __init__(
        self,
        settings: Settings,
        worker_id: str,
        slots: SlotPool,
        acks: AckBuffer,
        doorbell: Doorbell,
        *,
        refs: list[str],
        queues: list[str] | None,
        limits: dict[str, int],
        prefetch_max: int,
        gate: ClaimGate | None = None,
        rated: list[str] | None = None,
    ) -> None:
        self._settings = settings
        self._worker_id = worker_id
        self._slots = slots
        self._acks = acks
        self._bell = doorbell
        self._refs = refs
        self._queues = queues
        self._limits = limits
        # The refs of definitions without a concurrency limit, and until when claims may take
        # only those (monotonic): see `_claim_ordinary`.
        self._plain_refs = [r for r in refs if r.rsplit("@", 1)[0] not in limits]
        self._plain_until = 0.0
        self.limited_calls = 0  # limited claim transactions (tests count them)
        self._gate = gate
        self.prefetch_max = prefetch_max
        self.claim_calls = 0  # claim round trips, full or empty (tests check for busy loops)
        # Rate limits: the refs whose definitions declare one, when the rated claim is due next
        # (monotonic; the time its answer said a slot opens, else a poll later; a NOTIFY
        # brings it forward) and whether its last answer was blocked by a limit.
        self._rated = list(rated or [])
        self._rated_due = 0.0
        self._rated_waiting = False
        self._rated_at_wake = False  # a cap held rated jobs back: claim them at the next round
        self.rated_calls = 0  # rated claim transactions (tests check for busy loops)
        self._rated_cursor = ""  # where the rated claim's walk of owners starts
        self._stopping = False
        self._conn: asyncpg.Connection | None = None
        # Fair claims between owners (db/job_runs.py): where the next walk of owners starts,
        # whether some token has a running quota (checked every QUOTA_CHECK_SECONDS), and the
        # default quota of every token owner.
        self._owner_cursor = ""
        self._owner_default = settings.owner_max_running or None
        self._owner_quotas = False
        self._quotas_checked = -QUOTA_CHECK_SECONDS

    def stop(self) -> None:
        """Stop claiming: the loop returns at its next turn."""
        self._stopping = True
        self._bell.event.set()

    def on_jobs_notify(self, payload: str) -> None:
        """A NOTIFY on JOBS_CHANNEL (payload: a queue, or "*" for several)."""
        if self._gate is not None and not self._gate.wanted(payload):
            return
        if self._queues is None or payload == "*" or payload in self._queues:
            self._rated_due = 0.0
            self._bell.ring()

    # -- the claim session ---------------------------------------------------------------------

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await connect(
                self._settings.require_database_url(),
                timeout=self._settings.db_pool_connection_timeout_ms / 1000,
                server_settings=job_runs.CLAIM_SESSION_SETTINGS,
            )
        return self._conn

    async def open_early(self) -> None:
        """Open (and prepare) the claim session while the worker starts; errors: retried."""
        try:
            conn = await self._connection()
            await job_runs.job_runs_prepare(conn, claim=True)
        except Exception as e:
            await self._drop_connection()
            log.warning("claim session not ready yet (%s)", e)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception as e:
                log.warning("closing the claim session failed (%s)", e)

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._rounds()
        finally:
            await self._drop_connection()

    async def _wait(self, seconds: float) -> None:
        """Sleep until the doorbell rings or `seconds` pass (a timer rings it then). Awaiting
        the event itself, not asyncio.wait_for, lets a NOTIFY reach the claim in one loop turn
        instead of three."""
        event = self._bell.event
        if event.is_set():
            return
        timer = asyncio.get_running_loop().call_later(seconds, event.set)
        try:
            await event.wait()
        finally:
            timer.cancel()

    def _prefetch(self) -> int:
        """Jobs to buffer beyond the free slots while the queue is deep."""
        avg = self._slots.run_avg
        concurrency = self._slots.concurrency
        if avg <= 0.0:
            return min(self.prefetch_max, concurrency)
        return min(self.prefetch_max, int(concurrency * PREFETCH_HORIZON / avg))

    async def _claim_of(
        self, conn: asyncpg.Connection, want: int, refs: list[str], limits: dict[str, int]
    ) -> Sequence[Any]:
        gate = self._gate
        rows = await job_runs.job_claim_available(
            conn,
            self._worker_id,
            want,
            refs,
            self._queues if gate is None else gate.claim_queues,
            self._settings.lease_duration_seconds,
            limits,
            owner_quotas=self._owner_quotas,
            owner_default=self._owner_default,
            cursor=self._owner_cursor,
            skip_queues=None if gate is None else gate.skip_queues,
        )
        self._owner_cursor = job_runs.next_owner_cursor(self._owner_cursor, rows)
        return rows

    async def _claim_ordinary(
        self, conn: asyncpg.Connection, want: int, now: float
    ) -> Sequence[Any]:
        """The ordinary claim. A concurrency-limited definition needs the limited claim (a
        transaction: tried locks, count, claim: four round trips instead of one, 1.2 ms
        against 0.35 ms for a claim of one job), and every worker that loads the shipped
        definitions has one (encode.video). So while the last limited claim took none of those
        jobs, claims leave the limited definitions out and run as one statement, until
        LIMITED_RECHECK_SECONDS pass or such a claim comes back empty (then the limited claim
        runs at once: the NOTIFY or poll that woke the loop may have been for a limited job).
        A job of a limited definition therefore waits at most LIMITED_RECHECK_SECONDS while
        the worker is busy with other jobs, and one claim more when it is idle. A short claim
        does not look at once: at 5 ms of round-trip time the limited claim's 20 ms delayed
        each next job behind it. Owner quotas need the locks anyway: no shortcut then."""
        quotas = self._owner_quotas or self._owner_default is not None
        limited = bool(self._limits) and not quotas
        if limited and self._plain_refs and now < self._plain_until:
            rows = await self._claim_of(conn, want, self._plain_refs, {})
            if rows:
                return rows
        if self._limits or quotas:
            self.limited_calls += 1
        rows = await self._claim_of(conn, want, self._refs, self._limits)
        if limited and not any(r["definition_key"] in self._limits for r in rows):
            self._plain_until = now + LIMITED_RECHECK_SECONDS
        else:
            self._plain_until = 0.0
        return rows

    async def _claim(self, want: int) -> Sequence[Any]:
        conn = await self._connection()
        now = time.monotonic()
        if now - self._quotas_checked >= QUOTA_CHECK_SECONDS:
            self._owner_quotas = await token_quotas_exist(conn)
            self._quotas_checked = now
        rows = await self._claim_ordinary(conn, want, now)
        if self._rated and len(rows) < want and (now >= self._rated_due or self._rated_at_wake):
            rated = await self._claim_rated(conn, want - len(rows), now)
            if rated:
                return [*rows, *rated]
        return rows

    async def _claim_rated(self, conn: asyncpg.Connection, want: int, now: float) -> Sequence[Any]:
        """Rate-limited jobs of ours within their limits; sets when to look again: when the
        answer says a skipped job's slot opens, else a poll later (or at a NOTIFY)."""
        gate = self._gate
        self.rated_calls += 1
        metrics.RATED_CLAIMS.inc()
        rows, next_in, capped = await job_runs.job_claim_rated(
            conn,
            self._worker_id,
            want,
            self._rated,
            self._queues if gate is None else gate.claim_queues,
            self._settings.lease_duration_seconds,
            self._limits,
            owner_default=self._owner_default,
            cursor=self._rated_cursor,
            skip_queues=None if gate is None else gate.skip_queues,
        )
        self._rated_cursor = job_runs.next_owner_cursor(self._rated_cursor, rows)
        self._rated_waiting = next_in is not None
        # held back by a concurrency limit or an owner's quota: a slot frees when a held job
        # ends, so look again at the next round (the doorbell rings when one of ours ends)
        self._rated_at_wake = capped
        if next_in is not None:
            self._rated_due = now + next_in
        elif rows:  # more may be ready within the limits: look again at the next round
            self._rated_due = now
        else:
            self._rated_due = now + self._bell.poll
        return rows

    def _sleep_for(self) -> float:
        """How long the loop may sleep: the poll, or less when a rated slot opens sooner."""
        if not self._rated:
            return self._bell.poll
        return max(0.0, min(self._bell.poll, self._rated_due - time.monotonic()))

    async def _rounds(self) -> None:
        slots = self._slots
        ready = slots.ready
        bell = self._bell
        backlog_limit = max(1000, 4 * slots.concurrency)
        error_delay = 0.1
        deep = False  # the last claim came back full
        gate = self._gate
        while not self._stopping:
            if gate is not None and not gate.open:
                if bell.burst and gate.loaded and not gate.paused and not (slots.running or ready):
                    return  # every queue of ours is paused: nothing to drain
                bell.event.clear()
                await self._wait(bell.poll)
                continue
            prefetch = self._prefetch() if deep else 0
            want = slots.concurrency + prefetch - slots.running - len(ready)
            if want <= 0 or len(ready) > prefetch // 2 or self._acks.backlog() > backlog_limit:
                bell.refill_at = prefetch // 2
                bell.event.clear()
                await self._wait(bell.poll)
                continue
            bell.event.clear()
            bell.more = False
            acks = bell.acks
            self.claim_calls += 1
            try:
                rows = await self._claim(want)
                error_delay = 0.1
            except Exception as e:
                await self._drop_connection()
                metrics.DB_ERRORS.labels("claim").inc()
                log.warning("claim failed (%s); retrying in %.1f s", e, error_delay)
                await self._wait(error_delay)
                error_delay = min(error_delay * 2, 5.0)
                continue
            if rows:
                slots.take(rows)
                await asyncio.sleep(0)  # the woken slots start their jobs before the bookkeeping
                metrics.CLAIMS.inc()
                metrics.JOBS_CLAIMED.inc(len(rows))
                metrics.CLAIM_BATCH.observe(len(rows))
                metrics.RUNNING.set(slots.running)
            deep = len(rows) == want
            if deep:
                bell.more = True
                continue
            bell.refill_at = 0
            if (rows or self._rated_at_wake) and (
                self._limits or self._owner_quotas or self._owner_default or self._rated
            ):
                # short, perhaps only because a limited definition or an owner is at its cap:
                # look again when one of ours ends (not a busy loop: once per job at most)
                bell.more = True
                if bell.acks != acks:
                    # one ended while the claim ran (`more` was off): its slot may be free now
                    bell.event.set()
            if bell.burst:
                if rows or slots.running or ready:
                    bell.more = True  # claim again when one of these ends
                    await self._wait(self._sleep_for())
                    continue
                if self._rated_waiting:  # rate-limited jobs wait for their slot: not drained
                    await self._wait(self._sleep_for())
                    continue
                before = slots.processed
                await self._acks.flush()  # a retry due at once becomes visible: look again
                if slots.processed != before:
                    continue
                return
            await self._wait(self._sleep_for())
