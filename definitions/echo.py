"""`echo@1`: returns its message. The smallest useful definition; used by smoke tests."""

from __future__ import annotations

from typing import Any

from jobserver.registry import definition

SCHEMA = {
    "type": "object",
    "properties": {"message": {"type": "string", "maxLength": 100000}},
    "additionalProperties": True,
}


@definition("echo", 1, params_schema=SCHEMA, default_max_attempts=3, timeout_seconds=60)
async def echo(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Return the message it was given."""
    return {"message": params.get("message")}
