"""A stored job run again: retried (`POST /v1/jobs/{id}/retry`) or cloned (`.../clone`).

- `retry_of_job(row, body, now, default_expires)`: the job that retries a failed, cancelled or
  expired one. It is the same job again (`jobserver.core.submission.repeated_job`: definition
  version, params, queue, priority, attempts, timeout, retry delays, labels and owner), linked
  by `retried_from`; a saved job's execution stays one (its `saved_job_id`, and `retry_of` as
  a saved job's own retry sets it). It runs now or `delaySeconds` from now, and gets the
  DEFAULT_EXPIRES_DURATION expiry like a submission (the old expiry, likely past, is not
  kept). Its params are not rebuilt: the caller re-checks them against the definition.
- `clone_submission(row, body)`: the submission (API field names) a clone makes, the stored
  job as its template: its definition version, params, queue, priority, attempts, timeout,
  retry delays and labels, with the body's overrides: `params` deep-merged over the stored
  ones (`jobserver.core.saved_jobs.merge_params`, as a saved job's execute), `queue`,
  `priority`, `delaySeconds`, `expiresIn`. The caller checks it as any submission
  (`build_job`, the submission schema, references, capability) and links it by `cloned_from`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from jobserver.core.saved_jobs import merge_params
from jobserver.core.submission import Row, job_timing, repeated_job
from jobserver.db.jobs import NewJob

# What a clone's body may change of its template (besides params, merged).
CLONE_OVERRIDES = ("queue", "priority", "delaySeconds", "expiresIn")


def retry_of_job(
    row: Row,
    body: Mapping[str, Any],
    now: dt.datetime,
    default_expires: dt.timedelta | None = None,
) -> NewJob:
    """The retry of the stored job `row` (see the module doc); `body` may hold delaySeconds."""
    timing = {"delaySeconds": body["delaySeconds"]} if "delaySeconds" in body else {}
    run_at, expires_at, scheduled_for = job_timing(timing, "", now, default_expires)
    saved_job_id = row["saved_job_id"]
    return repeated_job(
        row,
        run_at=run_at,
        expires_at=expires_at,
        scheduled_for=scheduled_for,
        retried_from=row["id"],
        saved_job_id=saved_job_id,
        retry_of=row["id"] if saved_job_id is not None else None,
    )


def clone_submission(row: Row, body: Mapping[str, Any]) -> dict[str, Any]:
    """The submission a clone of `row` makes with `body`'s overrides (see the module doc)."""
    template = repeated_job(row)
    item: dict[str, Any] = {
        "definitionKey": template.definition_key,
        "definitionVersion": template.definition_version,
        "params": template.params,
        "queue": template.queue,
        "priority": template.priority,
        "maxAttempts": template.max_attempts,
    }
    for api, value in (
        ("timeoutSeconds", template.timeout_seconds),
        ("retryDelays", template.retry_delays),
        ("event", template.event),
        ("tags", template.tags),
        ("name", template.name),
        ("onParentFailure", template.on_parent_failure),
        ("dependsOn", None if template.depends_on is None else list(map(str, template.depends_on))),
    ):
        if value is not None:
            item[api] = value
    if "params" in body:
        item["params"] = merge_params(template.params, body["params"])
    for api in CLONE_OVERRIDES:
        if api in body:
            item[api] = body[api]
    return item
