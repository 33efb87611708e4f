"""Pruner (leader only): deletes finished jobs past their retention so the hot table stays small.

Retention per status (settings, seconds): succeeded RETENTION_SUCCEEDED_SECONDS (7 days),
cancelled and expired RETENTION_CANCELLED_SECONDS (7 days), failed RETENTION_FAILED_SECONDS
(7 days) counted only once the job left the DLQ (redriven or discarded): a failed job whose DLQ
row still waits is kept. Events and attempts go with their job (ON DELETE CASCADE). Audit log
rows (`log.message`) go after LOG_RETENTION_DAYS (30; 0 keeps them forever). Runner commands
of the control channel and their replies go after `commands_seconds` (a day). Rate-limit
starts (`rate_limit_starts`) go once their period passed (no window counts them any more).

Blobs (jobserver/blobs): those attached to a pruned job go with it (cascade; the trigger frees
their bytes). After the jobs, blobs no job took within BLOB_UNATTACHED_SECONDS (3600) are
deleted, and the files of deleted directory blobs (`blob_garbage`) are removed: only by a
scheduler that has BLOB_DIR (`blob_dir`); a queued file already gone just drops its row.
Files a process that died mid-write left with no row (jobserver/blobs/leftovers.py: a
directory blob's temporary name `.<uuid>.tmp` under BLOB_DIR, an upload's spool file
`jobserver-upload-<uuid>` in `spool_dir`, VIDEO_UPLOAD_DIR or the system's temp directory)
are removed once their mtime is older than `leftovers.bound(blob_unattached_seconds)` (at
least 15 minutes; see there why), at most once per quarter of that bound (a listing of
BLOB_DIR is not free) and only on this host: a spool file on an API host with no scheduler
stays.

Each run deletes batches of `batch` rows (PRUNE_BATCH_SIZE, 1000), oldest `finished_at` first
on `jobs_finished_idx`, until a batch comes back short or `max_batches` (100) ran, so one run
never holds locks for long; audit rows the same way, oldest `created_at` first on
`audit_log_created_idx`. A run that stopped at `max_batches` with its last batch full is
followed by the next one at once, not after `interval`: at the defaults a run may delete
100,000 jobs, and one a minute (1,667 jobs/s) is less than one worker finishes
(bench/growth.py), so a busy system's backlog would otherwise only grow.

Options: `interval` (PRUNE_INTERVAL_SECONDS, 60 s), the retentions (`audit_days` for the audit
log, `blob_unattached_seconds`, `commands_seconds` for runner commands), `blob_dir` (None: no
file sweep), `spool_dir` (None: no spool sweep), `batch`, `max_batches`.
Emits: `jobserver_scheduler_jobs_pruned_total{status}`,
`jobserver_scheduler_audit_rows_pruned_total` and one log line per run (its figures add
`audit_log`, `blobs_unattached`, `blob_files`, `blob_temp_files`, `spool_files`,
`runner_commands` and `rate_limit_starts` when such rows or files went).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg

from jobserver.blobs import BlobStore, leftovers
from jobserver.db.audit_log import audit_log_prune
from jobserver.db.maintenance import job_prune_finished
from jobserver.db.rate_limit_starts import rate_limit_starts_prune
from jobserver.db.runner_commands import runner_commands_prune
from jobserver.scheduler import metrics
from jobserver.scheduler.base import BaseService, LeaderCheck

DAY = 86400.0


class Pruner(BaseService):
    name = "pruner"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval: float = 60.0,
        leader: LeaderCheck | None = None,
        succeeded_seconds: float = 7 * DAY,
        cancelled_seconds: float = 7 * DAY,
        failed_seconds: float = 7 * DAY,
        audit_days: int = 30,
        blob_unattached_seconds: float = 3600.0,
        blob_dir: Path | str | None = None,
        spool_dir: Path | str | None = None,
        batch: int = 1000,
        max_batches: int = 100,
        commands_seconds: float = DAY,
    ) -> None:
        super().__init__(pool, interval=interval, leader=leader)
        self.succeeded_seconds = succeeded_seconds
        self.cancelled_seconds = cancelled_seconds
        self.failed_seconds = failed_seconds
        self.audit_days = audit_days  # 0: audit rows are kept forever
        self.blob_unattached_seconds = blob_unattached_seconds
        self.blobs = BlobStore(pool, directory=blob_dir)  # no directory: no file sweep
        self.spool_dir = Path(spool_dir) if spool_dir else None
        self.leftover_seconds = leftovers.bound(blob_unattached_seconds)
        self._leftovers_due = 0.0  # time.monotonic() of the next leftover sweep
        self.batch = batch
        self.max_batches = max_batches
        self.commands_seconds = commands_seconds
        self._behind = False

    def behind(self) -> bool:
        return self._behind

    async def run_once(self) -> dict[str, int]:
        totals: dict[str, int] = {"pruned": 0}
        self._behind = behind = False  # set once this run got to its end without an error
        for _ in range(self.max_batches):
            async with self.pool.acquire() as conn:
                counts = await job_prune_finished(
                    conn,
                    succeeded_seconds=self.succeeded_seconds,
                    cancelled_seconds=self.cancelled_seconds,
                    failed_seconds=self.failed_seconds,
                    limit=self.batch,
                )
            n = sum(counts.values())
            totals["pruned"] += n
            for status, c in counts.items():
                totals[status] = totals.get(status, 0) + c
                metrics.PRUNED.labels(status).inc(c)
            if n < self.batch:
                break
        else:
            behind = True  # every batch came back full: more is due now
        audit = await self._prune_audit_log()
        if audit:  # like the status counts: present only when rows went
            totals["audit_log"] = audit
        unattached = await self.blobs.delete_unattached(
            self.blob_unattached_seconds, batch=self.batch, max_batches=self.max_batches
        )
        if unattached:
            totals["blobs_unattached"] = unattached
        files = await self.blobs.sweep_garbage(batch=self.batch, max_batches=self.max_batches)
        if files:
            totals["blob_files"] = files
        temps, spools = await self._sweep_leftovers()
        if temps:
            totals["blob_temp_files"] = temps
        if spools:
            totals["spool_files"] = spools
        commands = await self._prune_commands()
        if commands:
            totals["runner_commands"] = commands
        starts = await self._prune_rate_starts()
        if starts:
            totals["rate_limit_starts"] = starts
        self._behind = behind
        return totals

    async def _prune_rate_starts(self) -> int:
        """Rate-limit starts older than their period (no window counts them), in batches."""
        total = 0
        for _ in range(self.max_batches):
            async with self.pool.acquire() as conn:
                n = await rate_limit_starts_prune(conn, self.batch)
            total += n
            if n < self.batch:
                break
        return total

    async def _sweep_leftovers(self) -> tuple[int, int]:
        """(temporary names under BLOB_DIR, spool files) a dead writer left, removed once old;
        at most once per quarter of the bound."""
        now = time.monotonic()
        if now < self._leftovers_due:
            return 0, 0
        self._leftovers_due = now + self.leftover_seconds / 4
        temps = spools = 0
        if self.blobs.directory is not None:
            temps = await asyncio.to_thread(
                leftovers.sweep_blob_temps, self.blobs.directory, self.leftover_seconds
            )
        if self.spool_dir is not None:
            spools = await asyncio.to_thread(
                leftovers.sweep_spool_files, self.spool_dir, self.leftover_seconds
            )
        return temps, spools

    async def _prune_commands(self) -> int:
        """Runner commands (and their replies) past their retention, in batches."""
        total = 0
        for _ in range(self.max_batches):
            n = await runner_commands_prune(
                self.pool, older_than_seconds=self.commands_seconds, limit=self.batch
            )
            total += n
            if n < self.batch:
                break
        return total

    async def _prune_audit_log(self) -> int:
        """Audit rows past their retention, in batches (none when kept forever)."""
        if self.audit_days <= 0:
            return 0
        total = 0
        for _ in range(self.max_batches):
            n = await audit_log_prune(self.pool, older_than_days=self.audit_days, limit=self.batch)
            total += n
            metrics.AUDIT_PRUNED.inc(n)
            if n < self.batch:
                break
        return total
