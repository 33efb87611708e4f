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
  `priority`, `delaySeconds`, `expiresIn`, `rateLimit`. A rate-limited job's own limit (a
  lowered one, too) is kept as the clone's `rateLimit`, within what its definition declares
  now (`declared`: the stricter of the two; none when the definition no longer has one), so
  a clone never runs faster than its template. The caller checks it as any submission
  (`build_job`, the submission schema, references, capability) and links it by `cloned_from`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from jobserver.core.rate_limits import RateLimit
from jobserver.core.saved_jobs import merge_params
from jobserver.core.submission import Row, job_timing, repeated_job
from jobserver.db.jobs import NewJob

# What a clone's body may change of its template (besides params, merged).
CLONE_OVERRIDES = ("queue", "priority", "delaySeconds", "expiresIn", "rateLimit")


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


def clone_submission(
    row: Row, body: Mapping[str, Any], declared: RateLimit | None = None
) -> dict[str, Any]:
    """The submission a clone of `row` makes with `body`'s overrides (see the module doc);
    `declared` is the rate limit its definition declares."""
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
    kept = kept_rate(template.rate_limit, template.rate_period, declared)
    if kept is not None:
        item["rateLimit"] = kept
    if "params" in body:
        item["params"] = merge_params(template.params, body["params"])
    for api in CLONE_OVERRIDES:
        if api in body:
            item[api] = body[api]
    return item


def kept_rate(
    limit: int | None, period: float | None, declared: RateLimit | None
) -> dict[str, Any] | None:
    """A stored job's own rate limit as a submission's `rateLimit`, within `declared` (the
    stricter of the two); None when the job or its definition has none."""
    if limit is None or period is None or declared is None:
        return None
    return {
        "limit": min(limit, declared.limit),
        "periodSeconds": max(period, declared.period_seconds),
    }
