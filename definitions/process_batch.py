"""`process.batch@1`: process `items` in batches of `batchSize`, with progress after each batch.

Each item is processed by hashing its canonical JSON (SHA-256); the result carries how many
items were processed and a checksum over their digests. Between batches the job checks
`ctx.cancelled` and stops there (a cancelled job ends `cancelled`); `delayMs` (default 0) waits
after each batch to stand in for slow downstream work.

Cost: at most 1,000,000 items, at most `MAX_BATCHES` (10,000) batches and at most
`MAX_TOTAL_DELAY_MS` (600,000: ten minutes) of waiting over the whole job (batches times delayMs);
these two are a `check_params` bound refused at submission with a 422 (JSON Schema cannot
multiply). A batch of more than `LIGHT_ITEMS` items is hashed in the worker's process pool
(`ctx.run_cpu`); smaller ones on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from jobserver.codec import canonical
from jobserver.registry import ParamsProblem, definition

MAX_BATCHES = 10_000
MAX_TOTAL_DELAY_MS = 600_000
LIGHT_ITEMS = 1_000

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


def digests(items: list[Any]) -> bytes:
    """The hex digests of `items`, concatenated (fed to the checksum as one update, which
    equals feeding them one by one); a pure function for the process pool."""
    return "".join(digest(item) for item in items).encode()


def check_params(params: dict[str, Any]) -> list[ParamsProblem]:
    """Batches and total waiting bounded (see the module docstring)."""
    total = len(params.get("items") or [])
    size = int(params.get("batchSize", 100))
    delay = int(params.get("delayMs", 0))
    batches = -(-total // size)
    if batches > MAX_BATCHES:
        return [
            (
                ("batchSize",),
                f"must be at least {-(-total // MAX_BATCHES)} for {total} items: at most"
                f" {MAX_BATCHES} batches (this is {batches})",
            )
        ]
    if batches * delay > MAX_TOTAL_DELAY_MS:
        return [
            (
                ("delayMs",),
                f"must be at most {MAX_TOTAL_DELAY_MS // batches} for {batches} batches: at"
                f" most {MAX_TOTAL_DELAY_MS} ms of delay in all (this is {batches * delay})",
            )
        ]
    return []


@definition(
    "process.batch",
    1,
    params_schema=SCHEMA,
    default_max_attempts=3,
    timeout_seconds=3600,
    check_params=check_params,
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
        batch = items[done : done + size]
        if len(batch) <= LIGHT_ITEMS:
            checksum.update(digests(batch))
        else:
            checksum.update(await ctx.run_cpu(digests, batch))
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
