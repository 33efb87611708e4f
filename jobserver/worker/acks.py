"""The batched completion buffer: outcomes wait a few ms and are written together.

Successes go in one `UPDATE … FROM unnest(...)` statement of `jobs` alone (events and the
attempt row are derived from it), failures in one transaction (retry or fail + DLQ),
cancellations in one statement, all fenced. The flusher keeps its own session (made by
`connect`, with the worker's write settings) for its whole life: no pool acquire/reset round
trips per flush; after an error it reconnects.
A flush starts when the buffer holds `max_batch` outcomes or `delay` seconds after the first one
arrived, or at once when `busy` says no other job is running or claimed (nothing could join the
batch: waiting would only delay the jobs that wait on these); while a flush is in flight new
outcomes accumulate for the next one.

Errors. A connection error (or a transient state of the server: deadlock, shutdown, out of
resources) keeps the batch and retries it with back-off (the fencing makes a late write
harmless). Any other database error means one of its rows is refused (the executor checks
results before they get here, so this is defence in depth): the part is written again row by
row, so one bad row fails only its own job: a refused success becomes a failed attempt with the
database's message (`result_not_storable: …`, via `refused`, fenced like any write); a refused
failure is written once more with a bare error text and no traceback; a row refused even so is
given up (logged; its lease expires and the rescuer ends it). Once the buffer is closing
(shutdown) a batch is retried at most CLOSE_RETRIES times, so SIGTERM stops a worker whose
writes keep failing; what is left is given up the same way.

Options: delay (default 0.005 s), max_batch (default 1000), refused (builds the failed attempt
of a refused success; the worker's gives it the definition's retry back-off), retry_due (called
with the delay of each retry whose delay came from the job's own `retryDelays`, which only the
write knows: the worker rings its doorbell then). Emits the ack
batch size histogram, `jobserver_worker_db_errors_total{where="ack"|"ack_refused"}`, and,
through the worker's `on_written` callback (kind succeeded | failed | cancelled | given_up),
the finished and fenced-write counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

import asyncpg

from jobserver.db import job_runs
from jobserver.worker import metrics
from jobserver.worker.held import HeldJob

log = logging.getLogger("jobserver.worker")

# on_written(kind, entries, written ids): the worker forgets the jobs and reports fenced ones
WrittenFn = Callable[[str, list[HeldJob], Collection[uuid.UUID]], None]
# refused(entry, error): the failed attempt to record for a success the database refused
RefusedFn = Callable[[HeldJob, str], job_runs.Failure]
# retry_due(delay): a retry the write scheduled by the job's own retryDelays falls due then
RetryDueFn = Callable[[float], None]

CLOSE_RETRIES = 3
# SQLSTATE classes worth retrying the whole batch for: connection exception, transaction
# rollback (deadlock, serialization), insufficient resources, operator intervention (shutdown,
# statement timeout), system error
_RETRY_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def refused_row(e: BaseException) -> bool:
    """Whether a batch failed because the database refused (one of) its rows, so writing it row
    by row isolates the bad one; False for connection errors, which retry the batch."""
    if isinstance(e, asyncpg.DataError):  # an argument asyncpg could not encode
        return True
    if isinstance(e, asyncpg.PostgresError):
        return (e.sqlstate or "")[:2] not in _RETRY_CLASSES
    return False


def db_message(e: BaseException) -> str:
    """The database's complaint as one bounded line of storable text."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    detail = getattr(e, "detail", None) if isinstance(e, asyncpg.PostgresError) else None
    if detail:
        text = f"{text} ({detail})"
    return text.replace("\x00", "").encode("utf-8", "backslashreplace").decode()[:500]


def _refused_failure(entry: HeldJob, error: str) -> job_runs.Failure:
    return job_runs.Failure(entry.id, entry.attempt, "failed", error, None, 0.0, 0.0)


@dataclass
class _Pending:
    successes: list[tuple[HeldJob, str]]
    failures: list[tuple[HeldJob, job_runs.Failure]]
    cancels: list[HeldJob]

    def __len__(self) -> int:
        return len(self.successes) + len(self.failures) + len(self.cancels)

    def __bool__(self) -> bool:
        return bool(self.successes or self.failures or self.cancels)


def _empty() -> _Pending:
    return _Pending([], [], [])


class AckBuffer:
    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        worker_id: str,
        on_written: WrittenFn,
        *,
        refused: RefusedFn = _refused_failure,
        delay: float = 0.005,
        max_batch: int = 1000,
        retry_due: RetryDueFn | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self._connect = connect
        self._busy = busy
        self._worker_id = worker_id
        self._on_written = on_written
        self._refused = refused
        self._retry_due = retry_due
        self._delay = delay
        self._max_batch = max_batch
        self._pending = _empty()
        self._in_flight = 0
        self._kick = asyncio.Event()
        self._full = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None

    async def connect(self) -> None:
        """Open the flusher's session ahead of the first flush (errors: the flush retries)."""
        if self._conn is None:
            try:
                self._conn = await self._connect()
            except Exception as e:
                log.warning("acknowledgement session not ready yet (%s)", e)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="acks")

    def backlog(self) -> int:
        """Outcomes not yet written (buffered or in flight)."""
        return len(self._pending) + self._in_flight

    def add_success(self, entry: HeldJob, result_json: str) -> None:
        """Buffer a success; the flusher reads the entry's id, attempt, waited and ran_for."""
        successes = self._pending.successes
        successes.append((entry, result_json))
        if len(successes) == 1 or len(successes) >= self._max_batch:
            self._added()

    def add_failure(self, entry: HeldJob, failure: job_runs.Failure) -> None:
        self._pending.failures.append((entry, failure))
        self._added()

    def add_cancel(self, entry: HeldJob) -> None:
        self._pending.cancels.append(entry)
        self._added()

    def _added(self) -> None:
        self._idle.clear()
        self._kick.set()
        if len(self._pending) >= self._max_batch:
            self._full.set()

    async def flush(self) -> None:
        """Wait until everything added so far is written (or the buffer is closed)."""
        if self.backlog() == 0:
            return
        self._full.set()
        self._kick.set()
        await self._idle.wait()

    async def close(self) -> None:
        """Flush what is left and stop the flusher (safe to call twice). Failing writes are
        retried CLOSE_RETRIES times, then given up: closing always ends."""
        self._closing = True
        await self.flush()
        self._kick.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self._release()

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception as e:
                log.warning("closing the acknowledgement session failed (%s)", e)

    async def _run(self) -> None:
        retry = 0.05
        tries = 0
        while True:
            await self._kick.wait()
            self._kick.clear()
            if not self._pending:
                if self._closing:
                    return
                continue
            if (
                len(self._pending) < self._max_batch
                and not self._closing
                and (self._busy is None or self._busy())
            ):
                # buffer a few ms so concurrent completions share one round trip (with no
                # other job running or claimed nothing could join: write at once, so a job
                # waiting on this one, or a caller waiting for the result, is not held back)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._delay)
            self._full.clear()
            batch, self._pending = self._pending, _empty()
            self._in_flight = len(batch)
            try:
                await self._write(batch)
                retry = 0.05
                tries = 0
            except Exception:
                await self._release()
                metrics.DB_ERRORS.labels("ack").inc()
                tries += 1
                if self._closing and tries >= CLOSE_RETRIES:
                    log.exception(
                        "acknowledging %d outcomes failed %d times while closing; giving up"
                        " (their leases expire and the rescuer ends them)",
                        len(batch),
                        tries,
                    )
                    self._give_up(batch)
                    continue
                log.exception("acknowledging %d outcomes failed; retrying", len(batch))
                self._pending.successes[:0] = batch.successes
                self._pending.failures[:0] = batch.failures
                self._pending.cancels[:0] = batch.cancels
                self._in_flight = 0
                self._kick.set()
                await asyncio.sleep(retry)
                retry = min(retry * 2, 5.0)
                continue
            self._in_flight = 0
            if self._pending:
                self._kick.set()
            else:
                self._idle.set()

    def _give_up(self, batch: _Pending) -> None:
        """Drop outcomes that cannot be written (shutdown): the jobs are forgotten unwritten."""
        entries = [e for e, _ in batch.successes] + [e for e, _ in batch.failures]
        entries += batch.cancels
        self._in_flight = 0
        if entries:
            self._on_written("given_up", entries, ())
        if self._pending:
            self._kick.set()
        else:
            self._idle.set()

    async def _write(self, batch: _Pending) -> None:
        """Write a batch; each part written is removed from it, so a retry never repeats it."""
        metrics.ACK_BATCH.observe(len(batch))
        if self._conn is None or self._conn.is_closed():
            await self._release()
            self._conn = await self._connect()
        conn = self._conn
        while batch.successes:
            part = batch.successes[: self._max_batch]
            entries = [e for e, _ in part]
            try:
                written = await self._complete(conn, part)
            except Exception as e:
                if not refused_row(e):
                    raise
                self._log_refused("successes", len(part), e)
                await self._complete_each(conn, batch, len(part))
                continue
            del batch.successes[: len(part)]
            self._on_written("succeeded", entries, written)
        if batch.failures:
            part_f = batch.failures
            try:
                rows = await self._fail(conn, [f for _, f in part_f], [e for e, _ in part_f])
            except Exception as e:
                if not refused_row(e):
                    raise
                self._log_refused("failures", len(part_f), e)
                await self._fail_each(conn, batch)
            else:
                batch.failures = []
                self._on_written("failed", [e for e, _ in part_f], rows)
        if batch.cancels:
            part_c = batch.cancels
            try:
                cancelled = await self._cancel(conn, part_c)
            except Exception as e:
                if not refused_row(e):
                    raise
                self._log_refused("cancellations", len(part_c), e)
                await self._cancel_each(conn, batch)
            else:
                batch.cancels = []
                self._on_written("cancelled", part_c, cancelled)

    # -- the statements ------------------------------------------------------------------------

    async def _complete(
        self, conn: asyncpg.Connection, part: list[tuple[HeldJob, str]]
    ) -> list[uuid.UUID]:
        entries = [e for e, _ in part]
        return await job_runs.job_complete_many(
            conn,
            self._worker_id,
            [e.id for e in entries],
            [e.attempt for e in entries],
            [r for _, r in part],
            [e.waited for e in entries],
        )

    async def _fail(
        self, conn: asyncpg.Connection, failures: list[job_runs.Failure], entries: list[HeldJob]
    ) -> set[uuid.UUID]:
        rows = await job_runs.job_fail_many(
            conn,
            self._worker_id,
            [
                dataclasses.replace(f, waited_seconds=e.waited)
                for e, f in zip(entries, failures, strict=True)
            ],
        )
        if self._retry_due is not None:
            for r in rows:
                if r["listed"] and r["status"] == "queued":
                    self._retry_due(r["delay"])
        return {r[0] for r in rows}

    async def _cancel(self, conn: asyncpg.Connection, part: list[HeldJob]) -> set[uuid.UUID]:
        now = time.monotonic()
        written = await job_runs.job_cancel_ack_many(
            conn,
            self._worker_id,
            [e.id for e in part],
            [e.attempt for e in part],
            [e.ran_for(now) * 1000.0 for e in part],
            [e.waited for e in part],
            [e.ran_at is not None for e in part],
        )
        return set(written)

    # -- row by row, after the database refused a batch ----------------------------------------

    @staticmethod
    def _log_refused(what: str, n: int, e: BaseException) -> None:
        metrics.DB_ERRORS.labels("ack_refused").inc()
        log.warning(
            "the database refused a batch of %d %s (%s); writing them one by one",
            n,
            what,
            db_message(e),
        )

    async def _complete_each(self, conn: asyncpg.Connection, batch: _Pending, n: int) -> None:
        """The first `n` successes one by one; one refused becomes a failed attempt (added to
        the batch's failures). Each is removed from the batch once settled."""
        done: list[HeldJob] = []
        written: list[uuid.UUID] = []
        try:
            for _ in range(n):
                entry, result = batch.successes[0]
                try:
                    written += await self._complete(conn, [(entry, result)])
                except Exception as e:
                    if not refused_row(e):
                        raise
                    error = f"result_not_storable: the database refused the result: {db_message(e)}"
                    log.warning(
                        "%s", error, extra={"jobId": str(entry.id), "attempt": entry.attempt}
                    )
                    batch.failures.append((entry, self._refused(entry, error)))
                else:
                    done.append(entry)
                del batch.successes[0]
        finally:
            if done:
                self._on_written("succeeded", done, written)

    async def _fail_each(self, conn: asyncpg.Connection, batch: _Pending) -> None:
        """Failures one by one; one refused is written again with a bare error, else dropped."""
        while batch.failures:
            entry, failure = batch.failures[0]
            try:
                written = await self._fail(conn, [failure], [entry])
            except Exception as e:
                if not refused_row(e):
                    raise
                bare = dataclasses.replace(
                    failure,
                    error=f"result_not_storable: the database refused the failure: {db_message(e)}",
                    traceback=None,
                )
                try:
                    written = await self._fail(conn, [bare], [entry])
                except Exception as e2:
                    if not refused_row(e2):
                        raise
                    log.error(
                        "the database refused the failure of a job (%s); giving it up",
                        db_message(e2),
                        extra={"jobId": str(entry.id), "attempt": entry.attempt},
                    )
                    del batch.failures[0]
                    self._on_written("given_up", [entry], ())
                    continue
            del batch.failures[0]
            self._on_written("failed", [entry], written)

    async def _cancel_each(self, conn: asyncpg.Connection, batch: _Pending) -> None:
        """Cancellations one by one; one refused is given up."""
        while batch.cancels:
            entry = batch.cancels[0]
            try:
                written = await self._cancel(conn, [entry])
            except Exception as e:
                if not refused_row(e):
                    raise
                log.error(
                    "the database refused the cancellation of a job (%s); giving it up",
                    db_message(e),
                    extra={"jobId": str(entry.id), "attempt": entry.attempt},
                )
                del batch.cancels[0]
                self._on_written("given_up", [entry], ())
                continue
            del batch.cancels[0]
            self._on_written("cancelled", [entry], written)
