"""The batched completion buffer: outcomes wait a few ms and are written together.

Successes go in one `UPDATE … FROM unnest(...)` statement of `jobs` alone (events and the
attempt row are derived from it), failures in one transaction (retry or fail + DLQ),
cancellations in one statement, all fenced. The flusher keeps its own session (made by
`connect`, with the worker's write settings) for its whole life: no pool acquire/reset round
trips per flush; after an error it reconnects.
A flush starts when the buffer holds `max_batch` outcomes or `delay` seconds after the first one
arrived; while a flush is in flight new outcomes accumulate for the next one. Database errors
keep the batch and retry it with back-off (the fencing makes a late write harmless).

Options: delay (default 0.005 s), max_batch (default 1000). Emits the ack batch size histogram
and fenced-write counters through the `on_written` callback of the worker.
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
        delay: float = 0.005,
        max_batch: int = 1000,
    ) -> None:
        self._connect = connect
        self._worker_id = worker_id
        self._on_written = on_written
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
        """Flush what is left and stop the flusher (safe to call twice)."""
        await self.flush()
        self._closing = True
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
        while True:
            await self._kick.wait()
            self._kick.clear()
            if not self._pending:
                if self._closing:
                    return
                continue
            if len(self._pending) < self._max_batch and not self._closing:
                # buffer a few ms so concurrent completions share one round trip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._delay)
            self._full.clear()
            batch, self._pending = self._pending, _empty()
            self._in_flight = len(batch)
            try:
                await self._write(batch)
                retry = 0.05
            except Exception:
                await self._release()
                metrics.DB_ERRORS.labels("ack").inc()
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
            written = await job_runs.job_complete_many(
                conn,
                self._worker_id,
                [e.id for e in entries],
                [e.attempt for e in entries],
                [r for _, r in part],
                [e.waited for e in entries],
            )
            del batch.successes[: len(part)]
            self._on_written("succeeded", entries, written)
        if batch.failures:
            part_f = batch.failures
            rows = await job_runs.job_fail_many(
                conn,
                self._worker_id,
                [dataclasses.replace(f, waited_seconds=e.waited) for e, f in part_f],
            )
            batch.failures = []
            self._on_written("failed", [e for e, _ in part_f], {r[0] for r in rows})
        if batch.cancels:
            part_c = batch.cancels
            now = time.monotonic()
            written = await job_runs.job_cancel_ack_many(
                conn,
                self._worker_id,
                [e.id for e in part_c],
                [e.attempt for e in part_c],
                [e.ran_for(now) * 1000.0 for e in part_c],
                [e.waited for e in part_c],
                [e.ran_at is not None for e in part_c],
            )
            batch.cancels = []
            self._on_written("cancelled", part_c, set(written))
