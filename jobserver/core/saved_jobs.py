"""Saved jobs: what one stands for as a submission, as a schedule, and as a retry.

A saved job is a named, reusable job configuration of one owner (the admin console's "job"):
definition, params, tags, maxAttempts, timeoutSeconds, retryDelays, rateLimit (lowers the
definition's, for its executions and its trigger's fires alike), and an optional trigger
(`cron` + `timezone`, or `everySeconds`). Every producer turns it into jobs through the core
rules of `jobserver.core.submission`, so a saved job is checked exactly like a submission:

- `submission_of(saved, params)` is the `POST /v1/jobs` body it stands for; `build_job` then
  checks it (params schema, `check_params` with its templating check, attempts and timeout
  within the definition's) when it is created, changed and executed.
- `merge_params(saved, override)` is what an execute's `params` override makes of the saved
  params: a deep merge (objects merge key by key, recursively; anything else, arrays and null
  included, replaces the saved value), so `{"headers": {"X-Run": "7"}}` keeps the saved headers.
- A trigger is a schedule the saved job owns (not a second kind of schedule): one row of
  `schedules` named `schedule_name_for(id)`, linked by `saved_job_id`, whose job fields are
  `owned_schedule_columns(...)` of the saved job (rewritten with every change of it, in the same
  transaction) and whose jobs belong to the saved job's owner. The leader-elected scheduler
  fires it as any schedule (MIN_EVERY/MAX_EVERY, catch-up, failure streaks, exactly once per
  fire time), stamping `saved_job_id`, `timeout_seconds`, `retry_delays`, the tags and the
  rate limit (the saved job's own, within the definition's) on each job; as for every
  schedule, its runs are not retried unless `maxAttempts` is set.
- `retried_job(execution)` repeats one execution: same definition version, params, attempts,
  timeout, retry delays and labels, linked to it by `retry_of`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from jobserver.core.retry_delays import stored_delays
from jobserver.core.submission import repeated_job
from jobserver.db.jobs import NewJob

Row = Mapping[str, Any] | asyncpg.Record  # a saved job's columns (a stored row or checked input)

SCHEDULE_PREFIX = "saved-job:"

# The fields of a saved job a client sets -> their columns (saved_jobs).
FIELDS = {
    "name": "name",
    "description": "description",
    "definitionKey": "definition_key",
    "definitionVersion": "definition_version",
    "params": "params",
    "enabled": "enabled",
    "tags": "tags",
    "maxAttempts": "max_attempts",
    "timeoutSeconds": "timeout_seconds",
    "retryDelays": "retry_delays",
    "rateLimit": "rate_limit",
    "cron": "cron",
    "everySeconds": "every_seconds",
    "timezone": "timezone",
}
# What a field left out of a create (or a PUT, which replaces) becomes.
DEFAULTS: dict[str, Any] = {
    "description": "",
    "definitionVersion": None,
    "params": {},
    "enabled": True,
    "tags": None,
    "maxAttempts": None,
    "timeoutSeconds": None,
    "retryDelays": None,
    "rateLimit": None,
    "cron": None,
    "everySeconds": None,
    "timezone": "UTC",
}
TRIGGER_FIELDS = ("cron", "everySeconds", "timezone")


def schedule_name_for(saved_job_id: uuid.UUID) -> str:
    """The name of the schedule a saved job's trigger owns (a valid, unique schedule name)."""
    return f"{SCHEDULE_PREFIX}{saved_job_id}"


def has_trigger(cols: Row) -> bool:
    return cols.get("cron") is not None or cols.get("every_seconds") is not None


def merge_params(saved: Any, override: Any) -> Any:
    """`override` deep-merged over `saved` (see the module doc). Neither is modified."""
    if not isinstance(saved, dict) or not isinstance(override, dict):
        return override
    merged = dict(saved)
    for key, value in override.items():
        merged[key] = merge_params(saved[key], value) if key in saved else value
    return merged


def submission_of(cols: Row, params: Any) -> dict[str, Any]:
    """The job submission (API field names) a saved job's columns stand for, with `params`."""
    item: dict[str, Any] = {"definitionKey": cols["definition_key"], "params": params}
    for api, col in (
        ("definitionVersion", "definition_version"),
        ("maxAttempts", "max_attempts"),
        ("timeoutSeconds", "timeout_seconds"),
        ("retryDelays", "retry_delays"),
        ("rateLimit", "rate_limit"),
        ("tags", "tags"),
    ):
        if cols.get(col) is not None:
            item[api] = cols[col]
    return item


def owned_schedule_columns(cols: Row, saved_job_id: uuid.UUID, owner: str) -> dict[str, Any]:
    """The job fields of the schedule a saved job with a trigger owns (enabled and
    next_fire_at are the caller's: they depend on the schedule's own state)."""
    return {
        "cron": cols.get("cron"),
        "every_seconds": cols.get("every_seconds"),
        "timezone": cols.get("timezone") or "UTC",
        "definition_key": cols["definition_key"],
        "definition_version": cols.get("definition_version"),
        "params": cols.get("params", {}),
        "max_attempts": cols.get("max_attempts"),
        "tags": cols.get("tags"),
        "timeout_seconds": cols.get("timeout_seconds"),
        "retry_delays": stored_delays(cols.get("retry_delays")),
        "rate_limit": cols.get("rate_limit"),
        "saved_job_id": saved_job_id,
        "job_owner": owner,
    }


def retried_job(execution: Row) -> NewJob:
    """A new job repeating one execution of a saved job (a `jobs` row), linked by retry_of.
    It is no fire of a schedule: it carries no schedule name or fire time."""
    return repeated_job(execution, saved_job_id=execution["saved_job_id"], retry_of=execution["id"])
