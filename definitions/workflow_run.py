"""`workflow.run@1`: the job that stands for one run of a stored workflow.

It depends on the run's sink steps (those no step depends on) with policy 'continue', so it
runs once they have all ended, whatever their end; it succeeds with {"status": "completed",
"results": {sink: result}} when every sink step succeeded, and fails for good otherwise (one
attempt) naming the steps that did not (see `jobserver.core.workflow_runs.finish_run`).
Cancelling the run cancels it with the steps. Params: {runId}.
"""

from __future__ import annotations

import uuid
from typing import Any

from jobserver.core.workflow_runs import StepFailed, finish_run
from jobserver.registry import PermanentError, definition

SCHEMA = {
    "type": "object",
    "properties": {"runId": {"type": "string", "format": "uuid"}},
    "required": ["runId"],
    "additionalProperties": False,
}


@definition(
    "workflow.run",
    1,
    params_schema=SCHEMA,
    default_max_attempts=1,
    timeout_seconds=300,
    description="Ends a stored workflow's run once its last steps have ended",
)
async def workflow_run(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """The run's result, or a permanent failure naming the steps that did not succeed."""
    async with ctx.pool.acquire() as conn:
        try:
            return await finish_run(conn, uuid.UUID(params["runId"]))
        except StepFailed as e:
            raise PermanentError(str(e)) from None
