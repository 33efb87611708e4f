"""What a templated definition calls before each attempt: `render_job_params(ctx, params,
templated)` renders its templated params for the run, with `run_info_of(ctx)` (what a running
job's placeholders may name about it, `job.` and `schedule.`, read from its row only when a
placeholder names them; `parents.` reads the parents' names, statuses and results through
`ctx.parents()`) and the process's source driver.

A template error fails the attempt for good (`PermanentError` with the template's code: a
retry would render the same); a source that cannot be read, or a `single` source that finds
nothing, raises `SourceFailed`, retried (the data or the database may be back by then)."""

from __future__ import annotations

from typing import Any

from jobserver.registry import PermanentError
from jobserver.rendering.context import RunInfo
from jobserver.rendering.run import render_for_run
from jobserver.sources.shared import current_driver
from jobserver.sources.spec import SourceError
from jobserver.templating import TemplateError


class SourceFailed(RuntimeError):
    """A data source could not be read or found nothing for a `single` source: retried."""


async def render_job_params(
    ctx: Any, params: dict[str, Any], templated: tuple[str, ...]
) -> dict[str, Any]:
    """`params` with the `templated` ones rendered for this attempt of the job `ctx` runs."""
    try:
        return await render_for_run(
            params, templated, run=lambda: run_info_of(ctx), driver=current_driver
        )
    except TemplateError as e:
        raise PermanentError(str(e).removeprefix(f"{e.code}: "), code=e.code) from None
    except SourceError as e:
        raise SourceFailed(str(e)) from None


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
        parents=(await ctx.parents()).as_context() if row["has_parents"] else None,
    )
