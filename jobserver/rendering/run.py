"""Rendering templated params for a run (in the worker) and for a dry run (in the API)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from jobserver.rendering.context import RunInfo, context, source_specs, templated_part
from jobserver.sources.driver import SourceDriver
from jobserver.sources.fetch import fetch_all
from jobserver.templating import Limits, Macros, placeholders, render
from jobserver.templating.syntax import strings

RunInfoLoader = Callable[[], Awaitable[RunInfo]]


def _has_placeholders(part: Any) -> bool:
    return next(strings(part), None) is not None


def _needs_run_info(part: Any) -> bool:
    """Whether a placeholder names `job`, `schedule` or `parents` (a cheap text test before
    parsing)."""
    if not any(
        "job" in text or "schedule" in text or "parents" in text for text, _ in strings(part)
    ):
        return False
    return any(p.root in ("job", "schedule", "parents") for p in placeholders(part))


async def render_for_run(
    params: Mapping[str, Any],
    keys: Iterable[str],
    *,
    run: RunInfo | RunInfoLoader,
    driver: SourceDriver | Callable[[], SourceDriver],
    macros: Macros | None = None,
    limits: Limits = Limits(),
) -> dict[str, Any]:
    """`params` with its templated `keys` rendered: sources fetched afresh (when `useSources`),
    macros read once per render. Params without placeholders and sources come back unchanged,
    with nothing fetched. A `TemplateError` (missing path, bound) or `SourceError` (a bad or
    empty `single` source) for the caller to turn into a failed attempt. `run` and `driver`
    may be given as callables, called only when needed."""
    part = templated_part(params, keys)
    specs = source_specs(params)
    if not specs and not _has_placeholders(part):
        return dict(params)
    data: dict[str, Any] = {}
    if specs:
        data = await fetch_all(specs, driver() if callable(driver) else driver)
    if isinstance(run, RunInfo):
        info = run
    elif _needs_run_info(part):
        info = await run()
    else:
        info = RunInfo()
    rendered = render(part, context(params, info, data), macros=macros, limits=limits)
    return {**params, **rendered}


async def render_preview(
    params: Mapping[str, Any],
    keys: Iterable[str],
    *,
    driver: SourceDriver,
    queue: str = "default",
    event: str | None = None,
    tags: Iterable[str] = (),
    macros: Macros | None = None,
) -> dict[str, Any]:
    """The dry run: what a run of a job with these params would send now (no job id yet)."""
    info = RunInfo(queue=queue, event=event, tags=tuple(tags))
    return await render_for_run(params, keys, run=info, driver=driver, macros=macros)
