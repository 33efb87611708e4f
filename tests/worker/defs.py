"""Definitions used only by the worker tests (loaded with `--module tests.worker.defs`).

Jobs that prove what happened write to a `ledger` table the test creates (`LEDGER_DDL`): one row
per run with the job id, attempt, worker id and database-clock start/end times.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from jobserver.registry import Backoff, definition

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS ledger (
    job_id uuid NOT NULL, attempt int NOT NULL, worker_id text NOT NULL, tag text,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(), ended_at timestamptz
);
CREATE INDEX IF NOT EXISTS ledger_job_idx ON ledger (job_id, attempt)
"""

# In-process hook tests look at this list.
HOOK_CALLS: list[tuple[str, Any]] = []


async def _ledger_start(ctx: Any, tag: str | None = None) -> None:
    await ctx.pool.execute(
        "INSERT INTO ledger (job_id, attempt, worker_id, tag) VALUES ($1, $2, $3, $4)",
        ctx.job_id,
        ctx.attempt,
        ctx.worker_id,
        tag,
    )


async def _ledger_end(ctx: Any) -> None:
    await ctx.pool.execute(
        "UPDATE ledger SET ended_at = clock_timestamp() WHERE job_id = $1 AND attempt = $2",
        ctx.job_id,
        ctx.attempt,
    )


@definition("test.ledger", 1, default_max_attempts=1, timeout_seconds=60)
async def ledger(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Record the run in the ledger, optionally sleep, record the end."""
    await _ledger_start(ctx, params.get("tag"))
    if params.get("sleep"):
        await asyncio.sleep(float(params["sleep"]))
    await _ledger_end(ctx)
    return {"pid": os.getpid()}


@definition("test.limited", 1, default_max_attempts=1, timeout_seconds=60, concurrency_limit=2)
async def limited(params: dict[str, Any], ctx: Any) -> None:
    """Concurrency-limited: the ledger intervals show how many ran at once."""
    await _ledger_start(ctx)
    await asyncio.sleep(float(params.get("sleep", 0.05)))
    await _ledger_end(ctx)


@definition("test.sleep", 1, default_max_attempts=1, timeout_seconds=60)
async def sleep(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Sleep `seconds`, recording the start first (ignores ctx.cancelled: only the task cancel
    after CANCEL_GRACE_MS stops it)."""
    await _ledger_start(ctx, params.get("tag"))
    await asyncio.sleep(float(params.get("seconds", 1)))
    await _ledger_end(ctx)
    return {"slept": params.get("seconds", 1)}


@definition("test.brief", 1, default_max_attempts=1, timeout_seconds=0.3)
async def brief(params: dict[str, Any], ctx: Any) -> None:
    """Sleep `seconds` under a definition timeout of 0.3 s."""
    await asyncio.sleep(float(params.get("seconds", 30)))


def _spin_writing_pid(pid_file: str, seconds: float) -> None:
    """CPU work for the process pool: record this process, then burn CPU for `seconds`."""
    import time

    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@definition("test.cpu_spin", 1, default_max_attempts=1, timeout_seconds=60)
async def cpu_spin(params: dict[str, Any], ctx: Any) -> None:
    """Spin in the worker's process pool (`ctx.run_cpu`) for `seconds`."""
    await ctx.run_cpu(_spin_writing_pid, params["pidFile"], float(params.get("seconds", 60)))


@definition(
    "test.flaky",
    1,
    default_max_attempts=3,
    timeout_seconds=60,
    backoff=Backoff(base_seconds=0.4, max_seconds=10, jitter_percent=0.25),
)
async def flaky(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Fail until attempt `succeedOn` (never, when absent)."""
    await _ledger_start(ctx)
    if ctx.attempt < int(params.get("succeedOn", 10**9)):
        raise ValueError(f"flaky failure on attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}


def _mk(name: str) -> Any:
    async def hook(params: dict[str, Any], ctx: Any, *args: Any) -> None:
        HOOK_CALLS.append((name, args[0] if args else None))
        if params.get("failHooks"):
            raise RuntimeError(f"{name} exploded")

    return hook


@definition(
    "test.hooks",
    1,
    default_max_attempts=1,
    timeout_seconds=60,
    on_start=_mk("on_start"),
    on_success=_mk("on_success"),
    on_fail=_mk("on_fail"),
    on_end=_mk("on_end"),
)
async def hooks(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Succeed or fail on demand; every hook records its call (and raises with failHooks)."""
    if params.get("fail"):
        raise RuntimeError("job failed on purpose")
    return {"ok": True}


@definition("test.events", 1, default_max_attempts=1, timeout_seconds=60)
async def events(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Emit a custom event and progress; check the context."""
    ctx.logger.info("hello from the job")
    await ctx.emit_event("checkpoint", {"step": 1})
    await ctx.progress(1, 2, "half way")
    await ctx.progress(2, 2)
    return {"jobId": str(ctx.job_id), "attempt": ctx.attempt}


@definition("test.badresult", 1, default_max_attempts=1, timeout_seconds=60)
async def badresult(params: dict[str, Any], ctx: Any) -> Any:
    """Return something JSON cannot hold."""
    return {"values": {1, 2, 3}, "nan": float("nan")}


POISON_BIG = 128 * 1024  # bytes of result a `big` poison returns (tests cap MAX_RESULT_BYTES)


@definition("test.poison", 1, default_max_attempts=1, timeout_seconds=60)
async def poison(params: dict[str, Any], ctx: Any) -> Any:
    """Hand the worker something PostgreSQL cannot store, by `kind` (or a fine result: `ok`)."""
    kind = params["kind"]
    if kind == "nul":
        return {"x": "a\x00b"}
    if kind == "surrogate":
        return {"x": "\ud800"}
    if kind == "big":
        return {"x": "y" * POISON_BIG}
    if kind == "amplified":  # a few bytes each, 309 digits each once PostgreSQL prints them
        return {"x": [1e308] * int(params.get("n", 1))}
    if kind == "event":
        await ctx.emit_event("bad", {"x": "\x00"})
    elif kind == "progress":
        await ctx.progress(1, 2, "half\x00")
    elif kind == "error":
        raise ValueError("bad \ud800 text\x00")
    return {"ok": params.get("n")}


@definition("test.chatty", 1, default_max_attempts=1, timeout_seconds=60)
async def chatty(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Emit `n` custom events (and a progress report after each); say how many were stored.
    With `fail_first`, the first attempt then fails (so the next one starts from its events)."""
    stored = 0
    for i in range(int(params["n"])):
        stored += bool(await ctx.emit_event("step", {"i": i}))
        await ctx.progress(i + 1, params["n"])
    if params.get("fail_first") and ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return {"stored": stored}


@definition("test.step", 1, default_max_attempts=3, timeout_seconds=60)
async def step(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """A step of a dependency graph: records the run in the ledger, sleeps `sleepFirst` on its
    first attempt, fails for good with `fail`, and answers its tag with what its parents
    (`ctx.parents()`) answered, in dependsOn order."""
    from jobserver.registry import PermanentError

    await _ledger_start(ctx, params.get("tag"))
    if params.get("sleepFirst") and ctx.attempt == 1:
        await asyncio.sleep(float(params["sleepFirst"]))
    parents = await ctx.parents()
    if params.get("fail"):
        raise PermanentError("asked to fail")
    await _ledger_end(ctx)
    return {
        "tag": params.get("tag"),
        "parents": [
            {"name": p.name, "status": p.status, "tag": (p.result or {}).get("tag")}
            for p in parents
        ],
    }
