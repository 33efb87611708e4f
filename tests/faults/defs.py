"""Definitions the fault scenarios run (workers load them with `--module tests.faults.defs`).

Every run writes one row to `fault_ledger` (created by the tests, `LEDGER_DDL`) before doing
anything else, and stamps `ended_at` when its work is done: the ledger is the jobs' own account
of how many times each one ran, by which worker and process, independent of the server's tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from jobserver.registry import Backoff, definition

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS fault_ledger (
    job_id uuid NOT NULL, attempt int NOT NULL, worker_id text NOT NULL, pid int NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(), ended_at timestamptz
);
CREATE INDEX IF NOT EXISTS fault_ledger_job_idx ON fault_ledger (job_id, attempt)
"""

QUICK_RETRY = Backoff(base_seconds=0.1, max_seconds=0.5, jitter_percent=0.1)


async def ledger_start(ctx: Any) -> None:
    await ctx.pool.execute(
        "INSERT INTO fault_ledger (job_id, attempt, worker_id, pid) VALUES ($1, $2, $3, $4)",
        ctx.job_id,
        ctx.attempt,
        ctx.worker_id,
        os.getpid(),
    )


async def ledger_end(ctx: Any) -> None:
    await ctx.pool.execute(
        "UPDATE fault_ledger SET ended_at = clock_timestamp()"
        " WHERE job_id = $1 AND attempt = $2 AND worker_id = $3 AND ended_at IS NULL",
        ctx.job_id,
        ctx.attempt,
        ctx.worker_id,
    )


@definition("faults.work", 1, default_max_attempts=5, timeout_seconds=120, backoff=QUICK_RETRY)
async def work(params: Any, ctx: Any) -> dict[str, Any]:
    """Record the run, sleep `ms` milliseconds (default 20), record the end (unless `end` is
    false: then the run touches the database only when it starts)."""
    params = params or {}
    await ledger_start(ctx)
    await asyncio.sleep(float(params.get("ms", 20)) / 1000)
    if params.get("end", True):
        await ledger_end(ctx)
    return {"pid": os.getpid()}


@definition("faults.exit", 1, default_max_attempts=2, timeout_seconds=60, backoff=QUICK_RETRY)
async def exit_worker(params: Any, ctx: Any) -> None:
    """Poison: kill the whole worker process the moment it runs."""
    await ledger_start(ctx)
    os._exit(3)


@definition("faults.hang", 1, default_max_attempts=2, timeout_seconds=1, backoff=QUICK_RETRY)
async def hang(params: Any, ctx: Any) -> None:
    """Poison: never return and swallow every cancellation (timeout, cancel, shutdown)."""
    await ledger_start(ctx)
    while True:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)


@definition("faults.poison", 1, default_max_attempts=2, timeout_seconds=60, backoff=QUICK_RETRY)
async def poison_result(params: Any, ctx: Any) -> Any:
    """Poison: hand the worker what PostgreSQL cannot store, by `kind` (a result with NUL, a
    key with NUL, a lone surrogate, a result over MAX_RESULT_BYTES, an event or a progress
    message with NUL). Writes no ledger row: it never succeeds."""
    kind = params["kind"]
    if kind == "event":
        await ctx.emit_event("bad", {"x": "a\x00b"})
    elif kind == "progress":
        await ctx.progress(1, 2, "half\x00way")
    return {
        "nul": {"x": "a\x00b"},
        "key": {"a\x00b": 1},
        "surrogate": {"x": "\ud800"},
        "big": {"x": "y" * int(params.get("bytes", 2 * 1024 * 1024))},
    }.get(kind)
