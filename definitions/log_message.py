"""`log.message@1`: one structured entry in the audit log, and the same entry in the process log.

Params:
- `level`: `debug`, `info` (the default), `warn` or `error`; `warning` is accepted as `warn`
  and stored as `warn`;
- `message`: 1..8,192 characters (required);
- `metadata`: a JSON object of at most 100 keys and 16 KiB of JSON (default `{}`);
- `category`: 1..100 of `A-Z a-z 0-9 . _ : -` (default `general`), e.g. `authentication`;
- `useSources` and `sources`: data sources read before each run (`jobserver.sources`), as for
  `http.request`.

Templating (`jobserver.rendering`): `message`, `metadata` and `category` may hold `{{paths}}`
into the sources, `params`, `job` and `schedule`, and `{{$macros}}`, rendered before every
attempt. What submission can know is a 422 naming the field; the rendered values are held to
the same bounds (a message past 8,192 characters, metadata past 16 KiB, a category that is no
longer a simple name fail the attempt for good, naming the field).

Outcome: one row in `audit_log` (`jobserver.db.audit_log`: level, category, message, metadata,
the job's id, owner and definition), then one line in the process log through
`jobserver.logs` (logger `jobserver.audit`) at the matching level (debug -> DEBUG, info ->
INFO, warn -> WARNING, error -> ERROR; below LOG_LEVEL it is not printed, but the row is
stored) with `category`, `logId`, `owner` and `metadata` as structured fields (and
`earlierAttempt: true` when the row is one an earlier attempt wrote). The result is
`{"logId", "createdAt", "level", "category"}`. The row is written under the worker's fence and
once per job: an attempt retried after its row was written (the worker died before its ack)
finds that row and answers its id, so the audit log never holds a job's entry twice; a worker
that lost the job writes nothing. Not outbound: it reaches no network.
"""

from __future__ import annotations

import logging
from typing import Any

from jobserver.audit import (
    ACCEPTED_LEVELS,
    CATEGORY,
    DEFAULT_CATEGORY,
    DEFAULT_LEVEL,
    MESSAGE_MAX_CHARS,
    METADATA_MAX_BYTES,
    METADATA_MAX_KEYS,
    normalize_level,
    python_level,
)
from jobserver.codec import NotStorable, dumps_answer_text, dumps_storable
from jobserver.registry import ParamsProblem, PermanentError, definition
from jobserver.rendering import check_submission
from jobserver.rendering.job_info import render_job_params

TEMPLATED = ("message", "metadata", "category")

audit_logger = logging.getLogger("jobserver.audit")

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["message"],
    "properties": {
        "level": {"enum": list(ACCEPTED_LEVELS), "default": DEFAULT_LEVEL},
        "message": {"type": "string", "minLength": 1, "maxLength": MESSAGE_MAX_CHARS},
        "metadata": {"type": "object", "maxProperties": METADATA_MAX_KEYS, "default": {}},
        "category": {
            "type": "string",
            "minLength": 1,
            "maxLength": 1000,
            "default": DEFAULT_CATEGORY,
            "description": f"{CATEGORY.description}, or a {{{{placeholder}}}} rendering to one",
        },
        "useSources": {"type": "boolean"},
        "sources": {"type": "object"},
    },
    "additionalProperties": False,
}


class NotHeld(RuntimeError):
    """The worker lost the job before its row was written: nothing was written (the attempt's
    outcome is fenced off too)."""


def _category_problem(value: Any) -> str | None:
    if CATEGORY.matches(value):
        return None
    return f"{str(value)[:120]!r} is not a category: expected {CATEGORY.description}"


def _metadata_problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be an object"
    if len(value) > METADATA_MAX_KEYS:
        return f"has {len(value)} keys, more than {METADATA_MAX_KEYS}"
    try:
        dumps_storable(value, METADATA_MAX_BYTES, "metadata")
    except NotStorable as e:
        return str(e).removeprefix(f"{NotStorable.code}: metadata ")
    return None


def check_params(params: Any) -> list[ParamsProblem]:
    """The category rule (unless it holds a placeholder: checked once rendered), the size of
    the metadata, then what submission can know of the templates and sources."""
    if not isinstance(params, dict):
        return []
    category = params.get("category")
    if isinstance(category, str) and "{{" not in category:
        problem = _category_problem(category)
        if problem is not None:
            return [(("category",), problem)]
    if "metadata" in params:
        problem = _metadata_problem(params["metadata"])
        if problem is not None:
            return [(("metadata",), problem)]
    return check_submission(params, TEMPLATED)


def entry(rendered: dict[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
    """(level, category, message, metadata) of rendered params, held to the submission's
    bounds again (rendering can lengthen a message or change a category)."""
    try:
        level = normalize_level(rendered.get("level", DEFAULT_LEVEL))
    except ValueError as e:  # the schema refuses it at submission; a job stored otherwise
        raise PermanentError(f"level: {e}", "bad_level") from None
    category = rendered.get("category", DEFAULT_CATEGORY)
    problem = _category_problem(category)
    if problem is not None:
        raise PermanentError(f"category: rendered to {problem}", "bad_category")
    message = rendered["message"]
    if not isinstance(message, str):  # a message that is one placeholder keeps its type
        message = dumps_answer_text(message)
    if not message or len(message) > MESSAGE_MAX_CHARS:
        raise PermanentError(
            f"message: rendered to {len(message)} characters, expected 1..{MESSAGE_MAX_CHARS}",
            "bad_message",
        )
    if "\x00" in message:
        raise PermanentError("message: rendered to text holding a NUL character", "bad_message")
    metadata = rendered.get("metadata", {})
    problem = _metadata_problem(metadata)
    if problem is not None:
        raise PermanentError(f"metadata: rendered value {problem}", "bad_metadata")
    return level, category, message, metadata


async def _rendered(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    return await render_job_params(ctx, params, TEMPLATED)


@definition(
    "log.message",
    1,
    params_schema=SCHEMA,
    default_max_attempts=3,
    timeout_seconds=60,
    check_params=check_params,
    templated=TEMPLATED,
)
async def log_message(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Write a structured entry to the audit log and the process log."""
    from jobserver.db.audit_log import audit_log_write

    level, category, message, metadata = entry(await _rendered(ctx, params))
    row = await audit_log_write(
        ctx.pool,
        job_id=ctx.job_id,
        worker_id=ctx.worker_id,
        attempt=ctx.attempt,
        level=level,
        category=category,
        message=message,
        metadata=metadata,
    )
    if row is None:
        raise NotHeld("the job is no longer held by this worker: no audit row written")
    extra: dict[str, Any] = {
        "jobId": str(ctx.job_id),
        "workerId": ctx.worker_id,
        "attempt": ctx.attempt,
        "category": category,
        "logId": row["id"],
        "owner": row["owner"],
        "metadata": metadata,
    }
    if not row["written"]:
        extra["earlierAttempt"] = True  # the row of an attempt that died before its ack
    audit_logger.log(python_level(level), "%s", message, extra=extra)
    return {
        "logId": row["id"],
        "createdAt": row["created_at"].isoformat(),
        "level": level,
        "category": category,
    }
