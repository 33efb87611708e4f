"""`WorkerHost`: the worker's side of every job context (`JobHost`), over the database.

It holds the worker id, the job limits (`Limits`), the pool (given once the worker has one),
the blob store (`BlobStore` over that pool with the process's BLOB_DIR and BLOB_MAX_BYTES,
made on first use) and the CPU process pool (made on first use, stopped at shutdown). Its
writes are the fenced `job_runs` calls; a write that matched nothing (the job is no longer
held) bumps `jobserver_worker_fenced_writes_total{kind}` and logs a warning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from typing import TYPE_CHECKING

import asyncpg

from jobserver.codec import NotStorable
from jobserver.db import events, job_runs
from jobserver.worker import metrics
from jobserver.worker.writes import Limits

if TYPE_CHECKING:
    import pebble

    from jobserver.blobs import BlobOptions, BlobStore

log = logging.getLogger("jobserver.worker")


class WorkerHost:
    def __init__(
        self,
        worker_id: str,
        cpu_workers: int,
        limits: Limits | None = None,
        blob_options: BlobOptions | None = None,
    ) -> None:
        self._worker_id = worker_id
        self._limits = limits or Limits()
        self._cpu_workers = cpu_workers
        self._pool: asyncpg.Pool | None = None
        self._cpu: pebble.ProcessPool | None = None
        self._blob_options = blob_options
        self._blobs: BlobStore | None = None

    @property
    def worker_id(self) -> str:
        return self._worker_id

    @property
    def limits(self) -> Limits:
        return self._limits

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "worker not started"
        return self._pool

    def set_pool(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._blobs = None

    @property
    def blobs(self) -> BlobStore:
        """The blob store of this worker's jobs (made on first use: most never need it)."""
        if self._blobs is None:
            from jobserver.blobs import BlobOptions, BlobStore

            self._blobs = BlobStore.from_options(self.pool, self._blob_options or BlobOptions())
        return self._blobs

    def cpu_pool(self) -> pebble.ProcessPool:
        """One process pool per worker, created on first use (CPU-bound definitions).

        pebble's pool, not the standard library's: cancelling a running call terminates its
        process (the pool starts a new one), so work of a job that timed out or was cancelled
        stops with the job instead of holding a pool slot until it returns."""
        if self._cpu is None:
            import multiprocessing  # on first use: most workers never need it

            import pebble

            self._cpu = pebble.ProcessPool(
                max_workers=max(1, min(os.cpu_count() or 1, self._cpu_workers)),
                context=multiprocessing.get_context("forkserver"),
            )
        return self._cpu

    async def close_cpu_pool(self) -> None:
        """Stop the CPU pool, terminating what still runs in it."""
        cpu, self._cpu = self._cpu, None
        if cpu is not None:
            cpu.stop()  # type: ignore[no-untyped-call]
            await asyncio.to_thread(cpu.join)

    async def write_event(
        self, job_id: uuid.UUID, attempt: int, event: str, details_json: str | None
    ) -> bool:
        async with self.pool.acquire() as conn:
            ok = await job_runs.job_event_emit(
                conn, self._worker_id, job_id, attempt, event, details_json
            )
        if not ok:
            self._fenced(job_id, attempt, event)
        return ok

    async def write_progress(
        self, job_id: uuid.UUID, attempt: int, body_json: str, *, event: bool = True
    ) -> bool:
        async with self.pool.acquire() as conn:
            ok = await job_runs.job_progress(
                conn, self._worker_id, job_id, attempt, body_json, event=event
            )
        if not ok:
            self._fenced(job_id, attempt, "progress")
        return ok

    async def write_metadata(self, job_id: uuid.UUID, attempt: int, patch_json: str) -> bool:
        limit = self._limits.max_result_bytes
        async with self.pool.acquire() as conn:
            stored, size = await job_runs.job_metadata_merge(
                conn, self._worker_id, job_id, attempt, patch_json, limit
            )
        if stored:
            return True
        if size is not None and size > limit:
            raise NotStorable(
                "metadata", f"would be {size} bytes of JSON, over the limit of {limit}"
            )
        self._fenced(job_id, attempt, "metadata")
        return False

    async def events_stored(self, job_id: uuid.UUID) -> tuple[int, bool]:
        return await events.job_events_stored(self.pool, job_id)

    @staticmethod
    def _fenced(job_id: uuid.UUID, attempt: int, kind: str) -> None:
        metrics.FENCED.labels(kind).inc()
        log.warning(
            "write fenced off: job no longer held by this worker",
            extra={"jobId": str(job_id), "attempt": attempt, "write": kind},
        )
