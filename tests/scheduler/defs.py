"""Definitions for the scheduler tests (worker processes load them with `--module`)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from jobserver.registry import definition


@definition("sched.hangs_first", 1, default_max_attempts=2, timeout_seconds=120)
async def hangs_first(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Hangs on its first attempt (so the worker can be killed mid-run), then succeeds."""
    if ctx.attempt == 1:
        await asyncio.sleep(120)
    return {"pid": os.getpid(), "attempt": ctx.attempt}
