"""Templated job params: what a job type that opts in gets rendered before each run.

A definition names the params it templates (`http.request`: url, headers, payload, body). Those
are rendered with `jobserver.templating.render` against the job's context:

- each source's data under its own name (`{{user.email}}`), fetched afresh for every run when
  the params say `useSources: true` (`sources` is parsed by `jobserver.sources.spec`);
- `params`: the job's own params as submitted (`{{params.payload.id}}`);
- `job`: `id`, `attempt`, `maxAttempts`, `queue`, `event`, `tags`, `createdAt`;
- `schedule`: `name` and `scheduledFor` of the schedule that fired the job, or null.

`check_submission` finds at submission what can be known then (bad syntax, an unknown macro, a
root that is no source and no reserved name, a missing `params.`/`job.` path, a bad source) as
problems naming the field, for a 422; `render_for_run` renders in the worker, where a missing
path fails the attempt naming the placeholder (never an empty string). `render_preview` is the
dry run of `POST /v1/simulate`: the same rendering, with no job.
"""

from jobserver.rendering.check import check_submission
from jobserver.rendering.context import RESERVED_ROOTS, RunInfo
from jobserver.rendering.run import render_for_run, render_preview

__all__ = ["RESERVED_ROOTS", "RunInfo", "check_submission", "render_for_run", "render_preview"]
