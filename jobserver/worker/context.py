"""`JobContext`: what a definition's `run(params, ctx)` and hooks see of the worker.

- `job_id`, `attempt`, `max_attempts`, `params`, `worker_id`
- `logger`: a LoggerAdapter adding jobId/workerId to every record (made on first use)
- `await emit_event(name, data)`: a `custom` event with details {"name": name, "data": data};
  returns False when it was fenced off or dropped: a job stores at most MAX_EVENTS_PER_JOB
  custom and progress events, then one `events_truncated` (see writes.py)
- `await progress(done, total, message=None)`: stored in `jobs.progress` and as a `progress`
  event; both fenced, so a worker that lost the job writes nothing. At most one write per
  PROGRESS_MIN_INTERVAL_MS: a report inside the interval is kept and written when it ends (or
  when the code ends), replaced by any newer one
- `await set_metadata({...})`: merge an object into the job's `metadata` (shown in its
  answer), shallowly: its keys replace the stored ones, the others stay. Fenced like progress
  (False once the job is no longer held) and written at once, one statement per call (call it
  at milestones, not per item); the merged object is bounded by MAX_RESULT_BYTES
- an event or progress report that cannot be stored (NUL, lone surrogate, over
  MAX_RESULT_BYTES) raises `NotStorable` (a ValueError) in the job's code, so it fails that
  attempt with `result_not_storable: …` unless the code catches it
- `cancelled`: an asyncio.Event set when the job is cancelled, its lease is lost or the worker
  hands it back; a job may await or poll it and stop early
- `await run_cpu(fn, *args)`: run a picklable function in the worker's process pool so CPU work
  never blocks the event loop (heartbeats keep flowing); when the job times out or is cancelled
  the call's process is terminated, so the work stops with the job
- `await parents()`: the job's parents (`dependsOn`) in the order given, also by name or id,
  with their status and result (`jobserver.worker.parents.Parents`); read once per attempt
- `pool`: the worker's asyncpg pool, for definitions that need the database
- `blobs`: the blob store bound to the job (`jobserver.blobs.JobBlobs`, made on first use):
  read the job's inputs and its owner's uploads, save outputs attached to the job (fenced
  like the other writes: a worker that lost the job keeps nothing)

The context reaches the worker only through `JobHost` (the worker id, the pool, the CPU pool,
the limits, the blob store and the fenced writes), which `WorkerHost` implements over the
database and unit tests implement in memory.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg

from jobserver.codec import dumps_storable
from jobserver.worker.parents import Parents
from jobserver.worker.writes import JobWrites, Limits

if TYPE_CHECKING:
    import pebble

    from jobserver.blobs import BlobStore, JobBlobs

_job_logger = logging.getLogger("jobserver.job")


class JobHost(Protocol):
    """The worker's side of a job context."""

    @property
    def worker_id(self) -> str: ...

    @property
    def pool(self) -> asyncpg.Pool: ...

    def cpu_pool(self) -> pebble.ProcessPool: ...

    @property
    def limits(self) -> Limits: ...

    @property
    def blobs(self) -> BlobStore: ...

    async def write_event(
        self, job_id: uuid.UUID, attempt: int, event: str, details_json: str | None
    ) -> bool:
        """Record a lifecycle event of the job, fenced; False when it was fenced off."""
        ...

    async def write_progress(
        self, job_id: uuid.UUID, attempt: int, body_json: str, *, event: bool = True
    ) -> bool:
        """Store the job's progress (and, with `event`, its event), fenced; False when fenced."""
        ...

    async def events_stored(self, job_id: uuid.UUID) -> tuple[int, bool]:
        """(custom and progress events stored for the job, whether one `events_truncated` is)."""
        ...

    async def write_metadata(self, job_id: uuid.UUID, attempt: int, patch_json: str) -> bool:
        """Merge the object into the job's metadata, fenced; False when fenced; `NotStorable`
        when the merged object would pass the limit."""
        ...


class JobContext:
    __slots__ = (
        "_blobs",
        "_cancelled",
        "_logger",
        "_parents",
        "attempt",
        "host",
        "job_id",
        "max_attempts",
        "params",
        "writes",
    )

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
        self.writes: JobWrites | None = None  # made on the first event or progress report
        self._blobs: JobBlobs | None = None
        self._parents: Parents | None = None

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
    def blobs(self) -> JobBlobs:
        """The blob store bound to this job (its inputs, its owner's uploads, its outputs)."""
        if self._blobs is None:
            from jobserver.blobs import JobBlobs  # on first use: most jobs never need it

            self._blobs = JobBlobs(
                self.host.blobs, self.job_id, worker_id=self.worker_id, attempt=self.attempt
            )
        return self._blobs

    async def parents(self) -> Parents:
        """The job's parents with their status and result (read on first use)."""
        if self._parents is None:
            from jobserver.db.dependencies import parent_results

            self._parents = Parents.of_rows(await parent_results(self.pool, self.job_id))
        return self._parents

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        if self._logger is None:
            self._logger = logging.LoggerAdapter(
                _job_logger,
                {"jobId": str(self.job_id), "workerId": self.worker_id, "attempt": self.attempt},
            )
        return self._logger

    def _writes(self) -> JobWrites:
        if self.writes is None:
            self.writes = JobWrites(self.host, self.job_id, self.attempt)
        return self.writes

    async def emit_event(self, name: str, data: Any = None) -> bool:
        """Record a custom event; False when fenced off or dropped (the job's event cap)."""
        limit = self.host.limits.max_result_bytes
        details = dumps_storable({"name": str(name), "data": data}, limit, "event")
        return await self._writes().event(details)

    async def progress(
        self, done: float, total: float | None = None, message: str | None = None
    ) -> bool:
        """Report progress (paced, see the module docstring); False once fenced off."""
        body: dict[str, Any] = {"done": done, "total": total}
        if total:
            body["percent"] = round(100.0 * done / total, 2)
        if message is not None:
            body["message"] = message
        body_json = dumps_storable(body, self.host.limits.max_result_bytes, "progress")
        return await self._writes().progress(body_json)

    async def set_metadata(self, values: dict[str, Any]) -> bool:
        """Merge `values` into the job's metadata (see the module docstring); False once
        fenced off."""
        if not isinstance(values, dict):
            raise TypeError(f"metadata must be a dict, not {type(values).__name__}")
        patch = dumps_storable(values, self.host.limits.max_result_bytes, "metadata")
        return await self.host.write_metadata(self.job_id, self.attempt, patch)

    async def run_cpu(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` in the worker's shared process pool and await its result.

        Cancelling the await (timeout, cancel, lost lease) cancels the pool's future, which
        terminates the process running it."""
        return await asyncio.wrap_future(self.host.cpu_pool().schedule(fn, args=args))
