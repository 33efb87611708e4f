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

The context reaches the worker only through `JobHost` (the worker id, the pool, the CPU pool
and the two fenced writes), which `WorkerHost` implements over the database and unit tests
implement in memory.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg

from jobserver.codec import dumps_stored

if TYPE_CHECKING:
    import pebble

_job_logger = logging.getLogger("jobserver.job")


class JobHost(Protocol):
    """The worker's side of a job context."""

    @property
    def worker_id(self) -> str: ...

    @property
    def pool(self) -> asyncpg.Pool: ...

    def cpu_pool(self) -> pebble.ProcessPool: ...

    async def write_event(
        self, job_id: uuid.UUID, attempt: int, event: str, details_json: str | None
    ) -> bool:
        """Record a lifecycle event of the job, fenced; False when it was fenced off."""
        ...

    async def write_progress(self, job_id: uuid.UUID, attempt: int, body_json: str) -> bool:
        """Store the job's progress (and its event), fenced; False when it was fenced off."""
        ...


class JobContext:
    __slots__ = ("_cancelled", "_logger", "attempt", "host", "job_id", "max_attempts", "params")

    def __init__(
        self, host: JobHost, job_id: uuid.UUID, attempt: int, max_attempts: int, params: Any
    ) -> None:
        self.host = host
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
        return self.host.worker_id

    @property
    def pool(self) -> asyncpg.Pool:
        return self.host.pool

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
        details = dumps_stored({"name": str(name), "data": data})
        return await self.host.write_event(self.job_id, self.attempt, "custom", details)

    async def progress(
        self, done: float, total: float | None = None, message: str | None = None
    ) -> bool:
        """Report progress; returns False when the write was fenced off."""
        body: dict[str, Any] = {"done": done, "total": total}
        if total:
            body["percent"] = round(100.0 * done / total, 2)
        if message is not None:
            body["message"] = message
        return await self.host.write_progress(self.job_id, self.attempt, dumps_stored(body))

    async def run_cpu(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` in the worker's shared process pool and await its result.

        Cancelling the await (timeout, cancel, lost lease) cancels the pool's future, which
        terminates the process running it."""
        return await asyncio.wrap_future(self.host.cpu_pool().schedule(fn, args=args))
