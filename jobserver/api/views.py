"""Rows as clients see them: one function per resource, camelCase, matching `schemas.py`.

Datetimes and UUIDs are left as they are: the answer encoder (`jobserver.codec.dumps_answer`)
writes them itself (ISO 8601, canonical text), which is cheaper than formatting them here.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import asyncpg

from jobserver.core.rate_limits import shown_rate
from jobserver.core.retry_delays import shown_delays
from jobserver.db.jobs import NewJob
from jobserver.registry import registry
from jobserver.statuses import RETRIABLE_STATUSES, TERMINAL_STATUSES

log = logging.getLogger(__name__)
UTC = dt.UTC
Row = Mapping[str, Any] | asyncpg.Record
# `redact_params` hooks of the definitions in code, by (key, version): only those that have one
_REDACTORS = registry.redactors


def shown_params(key: str, version: int | None, params: Any) -> Any:
    """A job's params as answers show them: through its definition's `redact_params` hook, if
    it has one (a dict miss for the others); version None (a schedule's "latest") takes the
    latest version in code."""
    if not _REDACTORS:
        return params
    if version is None:
        latest = registry.latest(key)
        version = latest.version if latest is not None else 0
    redact = _REDACTORS.get((key, version))
    if redact is None:
        return params
    try:
        return redact(params)
    except Exception:  # a broken hook hides the params rather than failing the answer
        log.exception("redact_params of %s@%s failed", key, version)
        return "***"


def _ms(a: dt.datetime | None, b: dt.datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return round(max(0.0, (b - a).total_seconds() * 1000), 3)


def job_json(r: Row, now: dt.datetime | None = None) -> dict[str, Any]:
    """A job. queueTimeMs: creation to (latest) start, or to now/finish when it never
    started; processingTimeMs: start to finish, or to now while it runs.

    isScheduled: submitted to run later (more than a second after submission: its
    `scheduled_for` is then the run time asked for, kept when a retry moves run_at) or fired by
    a schedule (`scheduled_for` = the fire time); isRecurring: fired by a schedule.
    finishReason: the terminal status, null before; isRetriable: POST .../retry may run it
    again (failed, cancelled, expired)."""
    now = now or dt.datetime.now(UTC)
    status = r["status"]
    created, started, finished = r["created_at"], r["started_at"], r["finished_at"]
    if started is not None:
        queue_ms = _ms(created, started)
        processing_ms = _ms(started, finished or now)
    else:
        queue_ms = _ms(created, finished or (now if status == "queued" else None))
        processing_ms = None
    job_id = r["id"]
    schedule, scheduled_for = r["schedule_name"], r["scheduled_for"]
    return {
        "jobId": job_id,
        "id": job_id,
        "definitionKey": r["definition_key"],
        "definitionVersion": r["definition_version"],
        "queue": r["queue"],
        "status": status,
        "priority": r["priority"],
        "attempt": r["attempt"],
        "maxAttempts": r["max_attempts"],
        "params": shown_params(r["definition_key"], r["definition_version"], r["params"]),
        "result": r["result"],
        "lastError": r["last_error"],
        "progress": r["progress"],
        "workerId": r["worker_id"],
        "owner": r["owner"],
        "idempotencyKey": r["idempotency_key"],
        "timeoutSeconds": r["timeout_seconds"],
        "runAt": r["run_at"],
        "expiresAt": r["expires_at"],
        "createdAt": created,
        "startedAt": started,
        "finishedAt": finished,
        "cancelRequestedAt": r["cancel_requested_at"],
        "queueTimeMs": queue_ms,
        "processingTimeMs": processing_ms,
        "event": r["event"],
        "tags": r["tags"],
        "scheduleName": schedule,
        "scheduledFor": scheduled_for,
        "isScheduled": scheduled_for is not None or schedule is not None,
        "isRecurring": schedule is not None,
        "finishReason": status if status in TERMINAL_STATUSES else None,
        "isTerminal": status in TERMINAL_STATUSES,
        "isRetriable": status in RETRIABLE_STATUSES,
        "retryDelays": shown_delays(r["retry_delays"]),
        "savedJobId": r["saved_job_id"],
        "retryOf": r["retry_of"],
        "metadata": r["metadata"],
        "retriedFrom": r["retried_from"],
        "retriedAs": r["retried_as"],
        "clonedFrom": r["cloned_from"],
        "dependsOn": r.get("depends_on"),
        "onParentFailure": r.get("on_parent_failure"),
        "name": r.get("name"),
        "broadcast": bool(r.get("broadcast")),
        "broadcastChildren": None,
        "rateLimit": shown_rate(r["rate_bucket"], r["rate_limit"], r["rate_period"]),
    }


def job_detail_json(r: Row, position: tuple[int, bool] | None) -> dict[str, Any]:
    """`job_json` with the queue position of a queued job (`position`: (jobs ahead, capped)
    from `jobserver.db.job_counts.job_queue_position`; None when it is not queued)."""
    out = job_json(r)
    out["queuePosition"] = position[0] if position is not None else None
    out["queuePositionCapped"] = position[1] if position is not None else False
    return out


def new_job_json(job: NewJob, created_at: dt.datetime, run_at: dt.datetime) -> dict[str, Any]:
    """`job_json` of a job just inserted, from what was inserted (no read back)."""
    return job_json(
        {
            "id": job.id,
            "definition_key": job.definition_key,
            "definition_version": job.definition_version,
            "queue": job.queue,
            "status": job.status or "queued",
            "priority": job.priority,
            "attempt": 0,
            "max_attempts": job.max_attempts,
            "params": job.params,
            "result": None,
            "last_error": None,
            "progress": None,
            "worker_id": None,
            "owner": job.owner,
            "idempotency_key": job.idempotency_key,
            "timeout_seconds": job.timeout_seconds,
            "run_at": run_at,
            "expires_at": _utc(job.expires_at),
            "created_at": created_at,
            "started_at": None,
            "finished_at": None,
            "cancel_requested_at": None,
            "event": job.event,
            "tags": job.tags,
            "schedule_name": job.schedule_name,
            "scheduled_for": _utc(job.scheduled_for),
            "retry_delays": job.retry_delays,
            "saved_job_id": job.saved_job_id,
            "retry_of": job.retry_of,
            "metadata": None,
            "retried_from": job.retried_from,
            "retried_as": None,
            "cloned_from": job.cloned_from,
            "depends_on": job.depends_on,
            "on_parent_failure": job.on_parent_failure,
            "name": job.name,
            "broadcast": job.broadcast,
            "rate_bucket": job.rate_bucket,
            "rate_limit": job.rate_limit,
            "rate_period": job.rate_period,
        }
    )


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return value.astimezone(UTC) if value is not None else None


def event_json(e: Row) -> dict[str, Any]:
    return {
        "id": e["id"],
        "event": e["event"],
        "at": e["at"],
        "workerId": e["worker_id"],
        "attempt": e["attempt"],
        "details": e["details"],
    }


def attempt_json(a: Row) -> dict[str, Any]:
    return {
        "attempt": a["attempt"],
        "workerId": a["worker_id"],
        "startedAt": a["started_at"],
        "finishedAt": a["finished_at"],
        "outcome": a["outcome"],
        "error": a["error"],
        "traceback": a["traceback"],
        "result": a["result"],
        "durationMs": a["duration_ms"],
    }


def definition_json(r: Row, latest: bool) -> dict[str, Any]:
    return {
        "key": r["key"],
        "version": r["version"],
        "ref": f"{r['key']}@{r['version']}",
        "latest": latest,
        "defaultMaxAttempts": r["default_max_attempts"],
        "timeoutSeconds": r["timeout_seconds"],
        "concurrencyLimit": r["concurrency_limit"],
        "paramsSchema": r["params_schema"],
        "description": r["description"],
        "backoff": r["backoff"],
        "outbound": r["outbound"],
        "rateLimit": r["rate_limit"],
        "registeredAt": r["registered_at"],
        "updatedAt": r["updated_at"],
    }


# Schedule fields a client sets -> their columns.
SCHEDULE_COLUMNS = {
    "cron": "cron",
    "everySeconds": "every_seconds",
    "timezone": "timezone",
    "definitionKey": "definition_key",
    "definitionVersion": "definition_version",
    "params": "params",
    "queue": "queue",
    "priority": "priority",
    "maxAttempts": "max_attempts",
    "enabled": "enabled",
    "startAt": "start_at",
    "expiresAt": "expires_at",
    "overlapPolicy": "overlap_policy",
    "catchupPolicy": "catchup_policy",
    "catchupLimit": "catchup_limit",
}


def schedule_json(r: Row) -> dict[str, Any]:
    out: dict[str, Any] = {"name": r["name"]}
    out.update({api: r[col] for api, col in SCHEDULE_COLUMNS.items()})
    out["params"] = shown_params(r["definition_key"], r["definition_version"], r["params"])
    out.update(
        {
            "source": r["source"],
            "nextFireAt": r["next_fire_at"],
            "lastFireAt": r["last_fire_at"],
            "lastJobId": r["last_job_id"],
            "createdAt": r["created_at"],
            "updatedAt": r["updated_at"],
        }
    )
    return out


def dlq_json(r: Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "jobId": r["id"],
        "definitionKey": r["definition_key"],
        "definitionVersion": r["definition_version"],
        "queue": r["queue"],
        "params": shown_params(r["definition_key"], r["definition_version"], r["params"]),
        "owner": r["owner"],
        "priority": r["priority"],
        "attempts": r["attempts"],
        "maxAttempts": r["max_attempts"],
        "lastError": r["last_error"],
        "history": r["history"],
        "createdAt": r["created_at"],
        "failedAt": r["failed_at"],
        "redrivenAt": r["redriven_at"],
        "redrivenJobId": r["redriven_job_id"],
    }


def runner_json(r: Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "host": r["host"],
        "pid": r["pid"],
        "status": r["status"],
        "queues": r["queues"],
        "definitions": r["definitions"],
        "maxConcurrency": r["max_concurrency"],
        "running": r["running"],
        "held": r["held"],
        "startedAt": r["started_at"],
        "lastSeenAt": r["last_seen_at"],
        "stoppedAt": r["stopped_at"],
    }
