"""`JobContext`: what a definition's `run(params, ctx)` and hooks see of the worker.

- `job_id`, `attempt`, `max_attempts`, `params`, `worker_id`
- `logger`: a LoggerAdapter adding jobId/workerId to every record (made on first use)
- `await emit_event(name, data)`: a `custom` event with details {"name": name, "data": data}
- `await progress(done, total, message=None)`: stored in `jobs.progress` and as a `progress`
  event; both fenced, so a worker that lost the job writes nothing
- `cancelled`: an asyncio.Event set when the job is cancelled, its lease is lost or the worker
  hands it back; a job may await or poll it and stop early
- `await run_cpu(fn, *args)`: run a picklable function in the worker's process pool so CPU work
  never blocks the event loop (heartbeats keep flowing); when the job times out or is cancelled
  the call's process is terminated, so the work stops with the job
- `pool`: the worker's asyncpg pool, for definitions that need the database
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import asyncpg

from jobserver.db import job_runs
from jobserver.worker import metrics

if TYPE_CHECKING:
    from jobserver.worker.daemon import Worker

_job_logger = logging.getLogger("jobserver.job")
log = logging.getLogger("jobserver.worker")


def to_json(value: Any) -> str:
    """Strict JSON text (no NaN) that PostgreSQL's jsonb accepts."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class JobContext:
    __slots__ = ("_cancelled", "_logger", "_worker", "attempt", "job_id", "max_attempts", "params")

    def __init__(
        self, worker: Worker, job_id: uuid.UUID, attempt: int, max_attempts: int, params: Any
    ) -> None:
        self._worker = worker
        self.job_id = job_id
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.params = params
        self._cancelled: asyncio.Event | None = None  # made on first use: most jobs never look
        self._logger: logging.LoggerAdapter[logging.Logger] | None = None

    @property
    def cancelled(self) -> asyncio.Event:
        """Set when the job is cancelled, its lease is lost or the worker hands it back."""
        if self._cancelled is None:
            self._cancelled = asyncio.Event()
        return self._cancelled

    @property
    def worker_id(self) -> str:
        return self._worker.worker_id

    @property
    def pool(self) -> asyncpg.Pool:
        return self._worker.pool

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        if self._logger is None:
            self._logger = logging.LoggerAdapter(
                _job_logger,
                {"jobId": str(self.job_id), "workerId": self.worker_id, "attempt": self.attempt},
            )
        return self._logger

    async def emit_event(self, name: str, data: Any = None) -> bool:
        """Record a custom event; returns False when the write was fenced off."""
        details = to_json({"name": str(name), "data": data})
        return await self._write_event("custom", details)

    async def progress(
        self, done: float, total: float | None = None, message: str | None = None
    ) -> bool:
        """Report progress; returns False when the write was fenced off."""
        body: dict[str, Any] = {"done": done, "total": total}
        if total:
            body["percent"] = round(100.0 * done / total, 2)
        if message is not None:
            body["message"] = message
        async with self._worker.pool.acquire() as conn:
            ok = await job_runs.job_progress(
                conn, self.worker_id, self.job_id, self.attempt, to_json(body)
            )
        if not ok:
            self._fenced("progress")
        return ok

    async def run_cpu(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` in the worker's shared process pool and await its result.

        Cancelling the await (timeout, cancel, lost lease) cancels the pool's future, which
        terminates the process running it."""
        return await asyncio.wrap_future(self._worker.cpu_pool().schedule(fn, args=args))

    async def _write_event(self, event: str, details_json: str | None) -> bool:
        async with self._worker.pool.acquire() as conn:
            ok = await job_runs.job_event_emit(
                conn, self.worker_id, self.job_id, self.attempt, event, details_json
            )
        if not ok:
            self._fenced(event)
        return ok

    def _fenced(self, kind: str) -> None:
        metrics.FENCED.labels(kind).inc()
        log.warning(
            "write fenced off: job no longer held by this worker",
            extra={"jobId": str(self.job_id), "attempt": self.attempt, "write": kind},
        )
