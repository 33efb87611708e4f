"""`workflow.expand@1`: makes the jobs of a workflow step once its parents have ended.

A stored workflow's step that reads its parents' results (`{{steps.<name>.result...}}` in its
params, or a forEach over a parent's result) cannot be inserted when its run starts; this job
stands for it, depending on the step's parents, and when it runs it renders the step and
inserts its jobs (one per forEach item), making the steps after it wait for them: see
`jobserver.core.workflow_runs.expand_step`. It is idempotent per run and step (a retried or
rescued expander adds nothing), and a step that cannot be rendered fails it for good, which
settles the steps after it by their policy. Params: {runId, step}. Returns {"jobs": n}.
"""

from __future__ import annotations

import uuid
from typing import Any

from jobserver.core.workflow_runs import expand_step
from jobserver.registry import PermanentError, definition

SCHEMA = {
    "type": "object",
    "properties": {
        "runId": {"type": "string", "format": "uuid"},
        "step": {"type": "string", "maxLength": 64},
    },
    "required": ["runId", "step"],
    "additionalProperties": False,
}


@definition(
    "workflow.expand",
    1,
    params_schema=SCHEMA,
    default_max_attempts=5,
    timeout_seconds=300,
    description="Makes the jobs of a stored workflow's step from its parents' results",
)
async def workflow_expand(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Insert the step's jobs (none when they are there already)."""
    async with ctx.pool.acquire() as conn:
        try:
            n = await expand_step(conn, uuid.UUID(params["runId"]), params["step"])
        except ValueError as e:
            raise PermanentError(str(e)) from None
    return {"jobs": n}
