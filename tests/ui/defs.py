"""Definitions the dashboard tests run (workers load them with `--module tests.ui.defs`).

`ui.steps` reports progress in `steps` steps and, before each one, waits for the test to open
its gate: a row in `ui_gate` (created by the tests, `GATE_DDL`) whose `opened` reaches that
step. So the test decides when the job moves on, never a clock. It stops early when cancelled.
`ui.fail` fails at once (one attempt): it lands in the dead-letter queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from jobserver.registry import definition

GATE_DDL = """
CREATE TABLE IF NOT EXISTS ui_gate (job_id uuid PRIMARY KEY, opened int NOT NULL DEFAULT 0)
"""
PARAMS = {
    "type": "object",
    "properties": {"steps": {"type": "integer", "minimum": 1, "maximum": 100}},
    "additionalProperties": False,
}


async def _gate(ctx: Any, step: int) -> bool:
    """Wait until the test opened `step` (True) or the job was cancelled (False)."""
    while not ctx.cancelled.is_set():
        opened = await ctx.pool.fetchval("SELECT opened FROM ui_gate WHERE job_id = $1", ctx.job_id)
        if opened is not None and opened >= step:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.cancelled.wait(), 0.05)
    return False


@definition("ui.steps", 1, params_schema=PARAMS, default_max_attempts=1, timeout_seconds=300)
async def steps(params: Any, ctx: Any) -> dict[str, Any]:
    """Report progress step by step, each step released by the test's gate."""
    total = int((params or {}).get("steps", 4))
    await ctx.pool.execute(
        "INSERT INTO ui_gate (job_id) VALUES ($1) ON CONFLICT DO NOTHING", ctx.job_id
    )
    for step in range(1, total + 1):
        if not await _gate(ctx, step):
            return {"stoppedAt": step}
        await ctx.progress(step, total, f"step {step} of {total}")
    return {"steps": total}


@definition("ui.fail", 1, default_max_attempts=1, timeout_seconds=60)
async def fail(params: Any, ctx: Any) -> None:
    """Fail at once with a traceback (one attempt: straight to the dead-letter queue)."""
    raise RuntimeError("ui.fail failed on purpose")
