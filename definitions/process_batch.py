"""`process.batch@1`: process `items` in batches of `batchSize`, with progress after each batch.

Each item is processed by hashing its canonical JSON (SHA-256); the result carries how many
items were processed and a checksum over their digests. Between batches the job checks
`ctx.cancelled` and stops there (a cancelled job ends `cancelled`); `delayMs` (default 0) waits
after each batch to stand in for slow downstream work.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from jobserver.codec import canonical
from jobserver.registry import definition

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {"type": "array", "maxItems": 1_000_000},
        "batchSize": {"type": "integer", "minimum": 1, "maximum": 100_000, "default": 100},
        "delayMs": {"type": "integer", "minimum": 0, "maximum": 600_000, "default": 0},
    },
    "additionalProperties": False,
}


def digest(item: Any) -> str:
    return hashlib.sha256(canonical(item).encode()).hexdigest()


@definition(
    "process.batch",
    1,
    params_schema=SCHEMA,
    default_max_attempts=3,
    timeout_seconds=3600,
)
async def process_batch(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Process items batch by batch; stops between batches when cancelled."""
    items = list(params.get("items") or [])
    size = int(params.get("batchSize", 100))
    delay = int(params.get("delayMs", 0)) / 1000
    total = len(items)
    checksum = hashlib.sha256()
    done = batches = 0
    stopped = False
    while done < total:
        if ctx.cancelled.is_set():
            stopped = True
            ctx.logger.info("cancelled after %d of %d items", done, total)
            break
        for item in items[done : done + size]:
            checksum.update(digest(item).encode())
        done = min(total, done + size)
        batches += 1
        await ctx.progress(done, total, f"batch {batches}")
        if delay:
            await asyncio.sleep(delay)
    return {
        "processed": done,
        "total": total,
        "batches": batches,
        "stoppedEarly": stopped,
        "checksum": checksum.hexdigest(),
    }
