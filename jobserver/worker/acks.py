"""The batched completion buffer: outcomes wait a few ms and are written together.

Successes go in one `UPDATE … FROM unnest(...)` statement (with their attempt rows and events),
failures in one transaction (retry or fail + DLQ), cancellations in one statement, all fenced.
A flush starts when the buffer holds `max_batch` outcomes or `delay` seconds after the first one
arrived; while a flush is in flight new outcomes accumulate for the next one. Database errors
keep the batch and retry it with back-off (the fencing makes a late write harmless).

Options: delay (default 0.005 s), max_batch (default 1000). Emits the ack batch size histogram
and fenced-write counters through the `on_written` callback of the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from jobserver.db import job_runs
from jobserver.worker import metrics

log = logging.getLogger("jobserver.worker")

# on_written(kind, entries, written ids): the worker forgets the jobs and reports fenced ones
WrittenFn = Callable[[str, list[Any], set[uuid.UUID]], None]


@dataclass
class _Pending:
    successes: list[tuple[Any, str, float]]
    failures: list[tuple[Any, job_runs.Failure]]
    cancels: list[tuple[Any, float]]

    def __len__(self) -> int:
        return len(self.successes) + len(self.failures) + len(self.cancels)


def _empty() -> _Pending:
    return _Pending([], [], [])


class AckBuffer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        worker_id: str,
        on_written: WrittenFn,
        *,
        delay: float = 0.005,
        max_batch: int = 1000,
    ) -> None:
        self._pool = pool
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

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="acks")

    def backlog(self) -> int:
        """Outcomes not yet written (buffered or in flight)."""
        return len(self._pending) + self._in_flight

    def add_success(self, entry: Any, result_json: str, duration_ms: float) -> None:
        self._pending.successes.append((entry, result_json, duration_ms))
        self._added()

    def add_failure(self, entry: Any, failure: job_runs.Failure) -> None:
        self._pending.failures.append((entry, failure))
        self._added()

    def add_cancel(self, entry: Any, duration_ms: float) -> None:
        self._pending.cancels.append((entry, duration_ms))
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
        async with self._pool.acquire() as conn:
            while batch.successes:
                part = batch.successes[: self._max_batch]
                written = await job_runs.job_complete_many(
                    conn,
                    self._worker_id,
                    [e.id for e, _, _ in part],
                    [e.attempt for e, _, _ in part],
                    [r for _, r, _ in part],
                    [ms for _, _, ms in part],
                )
                del batch.successes[: len(part)]
                self._on_written("succeeded", [e for e, _, _ in part], set(written))
            if batch.failures:
                part_f = batch.failures
                rows = await job_runs.job_fail_many(conn, self._worker_id, [f for _, f in part_f])
                batch.failures = []
                self._on_written("failed", [e for e, _ in part_f], {r[0] for r in rows})
            if batch.cancels:
                part_c = batch.cancels
                written = await job_runs.job_cancel_ack_many(
                    conn,
                    self._worker_id,
                    [e.id for e, _ in part_c],
                    [e.attempt for e, _ in part_c],
                    [ms for _, ms in part_c],
                )
                batch.cancels = []
                self._on_written("cancelled", [e for e, _ in part_c], set(written))
