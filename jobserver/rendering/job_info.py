"""`run_info_of(ctx)`: what a running job's placeholders may name about it (`job.`,
`schedule.`), read from its row. Shared by the templated definitions, for `render_for_run`'s
`run` loader (called only when a placeholder names `job` or `schedule`)."""

from __future__ import annotations

from typing import Any

from jobserver.rendering.context import RunInfo


async def run_info_of(ctx: Any) -> RunInfo:
    """The `RunInfo` of the job `ctx` runs (its id and attempt alone when its row is gone)."""
    from jobserver.db.run_info import job_run_info

    row = await job_run_info(ctx.pool, ctx.job_id)
    if row is None:
        return RunInfo(job_id=str(ctx.job_id), attempt=ctx.attempt)
    return RunInfo(
        job_id=str(ctx.job_id),
        attempt=ctx.attempt,
        max_attempts=row["max_attempts"],
        queue=row["queue"],
        event=row["event"],
        tags=tuple(row["tags"] or ()),
        created_at=row["created_at"],
        schedule_name=row["schedule_name"],
        scheduled_for=row["scheduled_for"],
    )
