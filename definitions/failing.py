"""`failing@1`: always raises; exercises retries, back-off and the dead-letter queue."""

from __future__ import annotations

from typing import Any

from jobserver.registry import definition

SCHEMA = {
    "type": "object",
    "properties": {"reason": {"type": "string", "maxLength": 10000}},
    "additionalProperties": True,
}


class DeliberateFailure(RuntimeError):
    """The error `failing@1` raises on every attempt."""


@definition("failing", 1, params_schema=SCHEMA, default_max_attempts=3, timeout_seconds=60)
async def failing(params: dict[str, Any], ctx: Any) -> None:
    """Always fail with the given reason."""
    raise DeliberateFailure(params.get("reason") or "failing@1 always fails")
