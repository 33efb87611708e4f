"""The Django-style jobs API (`shared/reference/mojo-jobs-api.md`), served under `/api/jobs/`.

Every handler translates the documented request into the `/v1` routes that do the work
(`dispatch.call_v1`) and answers in the document's words: the envelope
`{"status": true, "data": ...}` (or its `message`/`job_id` answers for actions), snake_case
fields, the status vocabulary `pending`, `running`, `completed`, `failed`, `canceled`,
`expired`. Failures answer `{"status": false, "error": ..., "code": "NOT_FOUND", "field"?}`
with our statuses; a field named by a `/v1` route is renamed to the document's
(`definitionKey` -> `func`, `params` -> `payload`, ...).

Names: a channel is a queue, a runner a worker process, `func` a registered definition key
(no Python import path is ever imported), `max_retries` counts retries (`maxAttempts` =
`max_retries + 1`). The routes, their scopes and their `/v1` routes are listed in
docs/reference/mojo-jobs-api.md.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from jobserver.api.errors import ApiError, invalid
from jobserver.api.jsonio import json_response
from jobserver.api.keys import BODY_KEY, QUERY_KEY
from jobserver.api.routing import Handler, Route, Scope
from jobserver.api.schemas import DATETIME_INPUT, closed, query
from jobserver.compat.dispatch import QueryValue, V1Answer, call_v1
from jobserver.compat.words import ours_for
from jobserver.core import control
from jobserver.core.errors import RuleError
from jobserver.core.names import DEFINITION_KEY, QUEUE
from jobserver.core.timing import MAX_DURATION_SECONDS
from jobserver.db.workers import LIVE_STATUSES

Schema = dict[str, Any]

# ---------------------------------------------------------------- vocabulary

# our job status -> the document's
STATUS_WORDS: dict[str, str] = {
    "queued": "pending",
    "waiting": "pending",
    "running": "running",
    "cancelling": "running",  # with cancel_requested: true
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "canceled",
    "expired": "expired",
}
MOJO_STATUSES = ["pending", "running", "completed", "failed", "canceled", "expired"]
# the document's status filter -> ours
STATUS_FILTER = ours_for(STATUS_WORDS)
# our lifecycle event names -> the document's (the rest keep their names)
EVENT_WORDS = {
    "started": "running",
    "succeeded": "completed",
    "cancelled": "canceled",
    "retry_scheduled": "retry",
}
ACTIONS = ("cancel_request", "retry_request", "get_status", "publish_job")
RECENT_EVENTS = 10
# The expiry the document gives a job without expires_in/expires_at (seconds).
DEFAULT_EXPIRES_IN = 900

# /v1 field names -> the document's, for the failures a /v1 route names a field in
SUBMIT_FIELDS = {
    "definitionKey": "func",
    "definitionVersion": "func",
    "params": "payload",
    "queue": "channel",
    "delaySeconds": "delay",
    "runAt": "run_at",
    "maxAttempts": "max_retries",
    "expiresIn": "expires_in",
    "expiresAt": "expires_at",
    "timeoutSeconds": "max_exec_seconds",
    "idempotencyKey": "idempotency_key",
}
LIST_FIELDS = {"queue": "channel", "createdAfter": "since", "page": "start", "limit": "size"}
RUNNER_FIELDS = {"timeoutMs": "timeout", "mode": "graceful", "queue": "data.channel"}


def _renamed(field: str, names: Mapping[str, str]) -> str:
    """`field` (`params.to`, `status[0]`) with its first name in the document's words."""
    match = re.match(r"[^.\[]+", field)
    head = match.group(0) if match else field
    return names.get(head, head) + field[len(head) :]


def _translated(err: ApiError, names: Mapping[str, str], prefix: str = "") -> ApiError:
    """`err` with the field it names (and its message's leading field) in the document's
    words, under `prefix` (`publish_job.`)."""
    if err.field is None:
        return err
    field = prefix + _renamed(err.field, names)
    message = err.message
    if message.startswith(err.field):
        message = field + message[len(err.field) :]
    return ApiError(err.status, err.code, message, field)


async def _v1(
    request: web.Request,
    method: str,
    path: str,
    *,
    names: Mapping[str, str] | None = None,
    prefix: str = "",
    query: Mapping[str, QueryValue | None] | None = None,
    body: Any = None,
) -> V1Answer:
    try:
        return await call_v1(request, method, path, query=query, body=body)
    except ApiError as e:
        raise _translated(e, names or {}, prefix) from None
    except RuleError as e:  # a core rule a /v1 handler applies (a 422 naming its field)
        raise _translated(invalid(e.field, e.message, e.code), names or {}, prefix) from None


def render_error(err: ApiError) -> dict[str, Any]:
    """A failure in the document's envelope: `status: false`, the message, our code."""
    message = err.message
    if err.status == 404 and message:
        message = message[0].upper() + message[1:]
    out: dict[str, Any] = {"status": False, "error": message, "code": err.code.upper()}
    if err.field is not None:
        out["field"] = err.field
    return out


ERROR_SCHEMA: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["status", "error", "code"],
    "properties": {
        "status": {"const": False},
        "error": {"type": "string", "description": "what went wrong"},
        "code": {"type": "string", "description": "NOT_FOUND, VALIDATION_ERROR, FORBIDDEN, ..."},
        "field": {"type": "string", "description": "the request field at fault"},
    },
}

# ---------------------------------------------------------------- answers


def _job_id(request: web.Request) -> str:
    """The path's job id; anything that is no UUID names no job (the not-found answer)."""
    raw = request.match_info.get("job_id", "")
    try:
        if len(raw) > 64:
            raise ValueError
        return str(uuid.UUID(raw))
    except ValueError:
        raise ApiError(404, "not_found", "Job not found") from None


def job_data(j: Mapping[str, Any]) -> dict[str, Any]:
    """A /v1 job as the document shows a job."""
    attempts = j["maxAttempts"]
    return {
        "id": j["id"],
        "status": STATUS_WORDS[j["status"]],
        "channel": j["queue"],
        "func": j["definitionKey"],
        "payload": j["params"],
        "created": j["createdAt"],
        "run_at": j["runAt"],
        "started_at": j["startedAt"],
        "finished_at": j["finishedAt"],
        "expires_at": j["expiresAt"],
        "attempt": j["attempt"],
        "max_retries": max(attempts - 1, 0),
        "max_exec_seconds": j["timeoutSeconds"],
        "last_error": j["lastError"] or "",
        "metadata": j["metadata"] or {},
        "result": j["result"],
        "runner_id": j["workerId"],
        "cancel_requested": j["cancelRequestedAt"] is not None,
        "duration_ms": int(j["processingTimeMs"] or 0),
        "is_terminal": j["isTerminal"],
        "is_retriable": j["isRetriable"],
        "broadcast": j["broadcast"],
        "idempotency_key": j["idempotencyKey"],
        "retried_from": j["retriedFrom"],
        "retried_as": j["retriedAs"],
        "cloned_from": j["clonedFrom"],
    }


def event_data(e: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "event": EVENT_WORDS.get(e["event"], e["event"]),
        "at": e["at"],
        "runner_id": e["workerId"],
        "attempt": e["attempt"],
        "details": e["details"] if e["details"] is not None else {},
    }


def _ok(data: Any, **extra: Any) -> web.Response:
    return json_response({"status": True, **extra, "data": data})


# ---------------------------------------------------------------- jobs


def _submission(body: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"definitionKey": body["func"], "params": body["payload"]}
    for ours, theirs in [
        ("queue", "channel"),
        ("delaySeconds", "delay"),
        ("runAt", "run_at"),
        ("expiresIn", "expires_in"),
        ("expiresAt", "expires_at"),
        ("broadcast", "broadcast"),
        ("timeoutSeconds", "max_exec_seconds"),
        ("idempotencyKey", "idempotency_key"),
    ]:
        if theirs in body:
            out[ours] = body[theirs]
    if "max_retries" in body:
        out["maxAttempts"] = body["max_retries"] + 1
    if "expires_in" not in body and "expires_at" not in body:
        out["expiresIn"] = DEFAULT_EXPIRES_IN
    return out


async def publish(request: web.Request) -> web.Response:
    answer = await _v1(
        request, "POST", "/v1/jobs", names=SUBMIT_FIELDS, body=_submission(request[BODY_KEY])
    )
    job = answer.body
    return json_response(
        {
            "status": True,
            "message": "Job published successfully",
            "job_id": job["id"],
            "data": job_data(job),
        }
    )


def _list_query(q: Mapping[str, Any]) -> dict[str, QueryValue | None]:
    statuses: list[str] = []
    for word in q.get("status", []):
        statuses.extend(s for s in STATUS_FILTER[word] if s not in statuses)
    return {
        "queue": q.get("channel"),
        "status": statuses or None,
        "since": q.get("since"),
        "sortBy": "createdAt",
        "sortOrder": "desc",
    }


async def list_jobs(request: web.Request) -> web.Response:
    """GET /api/jobs/list: the newest `limit` jobs of the filter."""
    q = request[QUERY_KEY]
    limit = q.get("limit", 100)
    answer = await _v1(
        request,
        "GET",
        "/v1/jobs",
        names={**LIST_FIELDS, "limit": "limit"},
        query={**_list_query(q), "limit": limit},
    )
    items = [job_data(j) for j in answer.body["items"]]
    return _ok(items, count=len(items))


async def crud_list(request: web.Request) -> web.Response:
    """GET /api/jobs/job: the standard list, `start` (an offset) and `size`."""
    q = request[QUERY_KEY]
    size = q.get("size", 10)
    start = q.get("start", 0)
    if start % size:
        raise invalid("start", f"must be a multiple of size ({size})")
    answer = await _v1(
        request,
        "GET",
        "/v1/jobs",
        names=LIST_FIELDS,
        query={**_list_query(q), "limit": size, "page": start // size + 1},
    )
    b = answer.body
    total = b["total"] if b["total"] is not None else b["totalAtLeast"]
    return _ok([job_data(j) for j in b["items"]], count=total, start=start, size=size)


async def get_job(request: web.Request) -> web.Response:
    answer = await _v1(request, "GET", f"/v1/jobs/{_job_id(request)}")
    return _ok(job_data(answer.body))


async def delete_job(request: web.Request) -> web.Response:
    job_id = _job_id(request)
    await _v1(request, "DELETE", f"/v1/jobs/{job_id}")
    return json_response({"status": True, "message": f"Job {job_id} deleted", "job_id": job_id})


async def job_events(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    answer = await _v1(
        request,
        "GET",
        f"/v1/jobs/{_job_id(request)}/events",
        query={"limit": q.get("limit", 100)},
    )
    events = [event_data(e) for e in answer.body["items"]]
    return _ok(events, count=len(events))


async def job_action(request: web.Request) -> web.Response:
    """POST /api/jobs/job/<id>: exactly one of the document's actions."""
    job_id = _job_id(request)
    body: dict[str, Any] = request[BODY_KEY]
    given = [a for a in ACTIONS if a in body]
    if len(given) != 1:
        named = " and ".join(given) if given else "none"
        raise invalid(
            given[1] if given else "cancel_request",
            f"give exactly one action of {', '.join(ACTIONS)} (given: {named})",
        )
    action = given[0]
    if action == "cancel_request":
        await _v1(request, "POST", f"/v1/jobs/{job_id}/cancel")
        return json_response(
            {
                "status": True,
                "message": f"Job {job_id} cancellation requested",
                "job_id": job_id,
            }
        )
    if action == "retry_request":
        value = body["retry_request"]
        delay = value.get("delay", 0) if isinstance(value, dict) else 0
        answer = await _v1(
            request,
            "POST",
            f"/v1/jobs/{job_id}/retry",
            names={"delaySeconds": "delay"},
            prefix="retry_request.",
            body={"delaySeconds": delay} if delay else {},
        )
        return json_response(
            {
                "status": True,
                "message": "Job retry scheduled",
                "original_job_id": job_id,
                "new_job_id": answer.body["id"],
                "delayed": delay > 0,
            }
        )
    if action == "get_status":
        job = (await _v1(request, "GET", f"/v1/jobs/{job_id}")).body
        events = await _v1(request, "GET", f"/v1/jobs/{job_id}/events", query={"limit": 1000})
        data = job_data(job)
        data["recent_events"] = [event_data(e) for e in events.body["items"][-RECENT_EVENTS:]]
        data["queue_position"] = job["queuePosition"]
        return _ok(data)
    template: dict[str, Any] = body["publish_job"]
    clone: dict[str, Any] = {}
    for ours, theirs in [
        ("params", "payload"),
        ("delaySeconds", "delay"),
        ("queue", "channel"),
        ("expiresIn", "expires_in"),
    ]:
        if theirs in template:
            clone[ours] = template[theirs]
    answer = await _v1(
        request,
        "POST",
        f"/v1/jobs/{job_id}/clone",
        names=SUBMIT_FIELDS,
        prefix="publish_job.",
        body=clone,
    )
    return json_response(
        {
            "status": True,
            "message": "Job published successfully",
            "job_id": answer.body["id"],
            "template_job_id": job_id,
        }
    )


# ---------------------------------------------------------------- health


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else round(fraction * 100, 2)


async def channel_health(request: web.Request) -> web.Response:
    channel = request.match_info["channel"]
    if not QUEUE.matches(channel):  # no queue can have that name: none has health
        raise ApiError(404, "not_found", "Channel not found")
    h = (await _v1(request, "GET", f"/v1/queues/{channel}/health")).body
    c, m = h["counts"], h["metrics"]
    return _ok(
        {
            "channel": h["queue"],
            "status": h["status"],
            "messages": {
                "total": c["total"],
                "unclaimed": c["unclaimed"],
                "pending": c["pending"],
                "scheduled": c["scheduled"],
                "stuck": c["stuck"],
                "running": c["running"],
                "waiting": c["waiting"],
            },
            "runners": {"active": h["runners"]["active"], "total": h["runners"]["total"]},
            "stuck_jobs": [
                {
                    "job_id": s["id"],
                    "runner_id": s["workerId"],
                    "since": s["since"],
                    "reason": s["reason"],
                }
                for s in h["stuckJobs"]
            ],
            "alerts": h["alerts"],
            "metrics": {
                "jobs_per_minute": m["jobsPerMinute"],
                "success_rate": _percent(m["successRate"]),
                "avg_duration_ms": m["avgDurationMs"],
                "window_minutes": m["windowMinutes"],
            },
            "paused": h["paused"] is not None,
            "checked_at": h["checkedAt"],
        }
    )


async def system_health(request: web.Request) -> web.Response:
    h = (await _v1(request, "GET", "/v1/health")).body
    s = h["scheduler"]
    return _ok(
        {
            "status": h["status"],
            "database": {"ok": h["database"]["ok"], "latency_ms": h["database"]["latencyMs"]},
            "scheduler": {
                "ok": s["ok"],
                "leader": s["leader"],
                "acquired_at": s["acquiredAt"],
                "lease_expires_at": s["leaseExpiresAt"],
            },
            "runners": h["workers"],
            "channels": [
                {"channel": q["name"], "status": q["status"], "alerts": q["alerts"]}
                for q in h["queues"]
            ],
            "channels_truncated": h["queuesTruncated"],
            "checked_at": h["checkedAt"],
        }
    )


async def stats(request: web.Request) -> web.Response:
    s = (await _v1(request, "GET", "/v1/stats")).body
    t = s["throughput"]
    return _ok(
        {
            "pending": s["pending"],
            "waiting": s["waiting"],
            "running": s["running"],
            "completed": s["completed"],
            "failed": s["failed"],
            "runners": s["workers"],
            "avg_duration_ms": s["avgProcessingTime"],
            "throughput": {
                "last_minute": t["lastMinute"],
                "last_hour": t["lastHour"],
                "last_day": t["lastDay"],
            },
            "window_minutes": s["windowMinutes"],
            "checked_at": s["checkedAt"],
        }
    )


# ---------------------------------------------------------------- runners


def runner_data(r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "runner_id": r["id"],
        "host": r["host"],
        "pid": r["pid"],
        "status": r["status"],
        "alive": r["status"] in LIVE_STATUSES,
        "channels": r["queues"],
        "definitions": r["definitions"],
        "max_concurrency": r["maxConcurrency"],
        "running": r["running"],
        "held": r["held"],
        "started_at": r["startedAt"],
        "last_heartbeat": r["lastSeenAt"],
        "stopped_at": r["stoppedAt"],
    }


def _timeout_ms(body: Mapping[str, Any]) -> int:
    seconds = float(body.get("timeout", control.DEFAULT_TIMEOUT_MS / 1000))
    return min(max(round(seconds * 1000), control.MIN_TIMEOUT_MS), control.MAX_TIMEOUT_MS)


def _runner_path(body: Mapping[str, Any], command: str) -> str:
    runner_id = body["runner_id"]
    if "/" in runner_id:  # names no runner (ids have no slash): the not-found answer
        raise ApiError(404, "not_found", "Runner not found")
    return f"/v1/runners/{runner_id}/{command}"


async def list_runners(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    answer = await _v1(
        request,
        "GET",
        "/v1/runners",
        names={"queue": "channel"},
        query={"queue": q.get("channel"), "limit": q.get("limit", 100)},
    )
    runners = [runner_data(r) for r in answer.body["items"]]
    return _ok(runners, count=len(runners))


async def ping_runner(request: web.Request) -> web.Response:
    body = request[BODY_KEY]
    a = await _v1(
        request,
        "POST",
        _runner_path(body, "ping"),
        names=RUNNER_FIELDS,
        body={"timeoutMs": _timeout_ms(body)},
    )
    return _ok(
        {
            "runner_id": a.body["runnerId"],
            "responsive": a.body["answered"],
            "response_time_ms": a.body["ms"],
            "timeout": a.body["timeoutMs"] / 1000,
        }
    )


async def shutdown_runner(request: web.Request) -> web.Response:
    body = request[BODY_KEY]
    graceful = body.get("graceful", True)
    a = await _v1(
        request,
        "POST",
        _runner_path(body, "shutdown"),
        names=RUNNER_FIELDS,
        body={"mode": "graceful" if graceful else "immediate", "timeoutMs": _timeout_ms(body)},
    )
    runner_id = a.body["runnerId"]
    return json_response(
        {
            "status": True,
            "message": f"Shutdown command sent to runner {runner_id}",
            "data": {
                "runner_id": runner_id,
                "graceful": graceful,
                "acknowledged": a.body["answered"],
                "response_time_ms": a.body["ms"],
            },
        }
    )


async def broadcast(request: web.Request) -> web.Response:
    body = request[BODY_KEY]
    data: dict[str, Any] = body.get("data", {})
    command: str = body["command"]
    v1_body: dict[str, Any] = {"command": command, "timeoutMs": _timeout_ms(body)}
    if "channel" in data:
        v1_body["queue"] = data["channel"]
    if command == control.SHUTDOWN:
        v1_body["mode"] = "graceful" if data.get("graceful", True) else "immediate"
    a = (
        await _v1(request, "POST", "/v1/runners/broadcast", names=RUNNER_FIELDS, body=v1_body)
    ).body
    return _ok(
        {
            "command": command,
            "channel": a["queue"],
            "sent_to": a["expected"],
            "answered": a["answered"],
            "responses": [
                {
                    "runner_id": r["runnerId"],
                    "response_time_ms": r["ms"],
                    "answered_at": r["answeredAt"],
                    "reply": r["reply"],
                }
                for r in a["replies"]
            ],
            "not_answered": a["notAnswered"],
        }
    )


# ---------------------------------------------------------------- schemas

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
TIMESTAMP: Schema = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP: Schema = {"type": ["string", "null"], "format": "date-time"}
NULLABLE_STRING: Schema = {"type": ["string", "null"]}
NULLABLE_NUMBER: Schema = {"type": ["number", "null"]}
NULLABLE_UUID: Schema = {"type": ["string", "null"], "format": "uuid"}
UUID_: Schema = {"type": "string", "format": "uuid"}
COUNT: Schema = {"type": "integer", "minimum": 0}
STATUS_WORD: Schema = {"type": "string", "enum": MOJO_STATUSES}
DELAY: Schema = {
    "type": "integer",
    "minimum": 0,
    "maximum": 31536000,
    "description": "seconds before it runs",
}
CHANNEL: Schema = QUEUE.schema(description="the channel (a queue)")
PAYLOAD: Schema = {"type": "object", "description": "checked against the func's params schema"}
EXPIRES_IN: Schema = {"type": "integer", "minimum": 1, "maximum": int(MAX_DURATION_SECONDS)}
TIMEOUT: Schema = {
    "type": "number",
    "exclusiveMinimum": 0,
    "maximum": control.MAX_TIMEOUT_MS / 1000,
    "description": "seconds to wait for the runners' replies (default 5)",
}
RUNNER_ID: Schema = {"type": "string", "minLength": 1, "maxLength": 300}


def _answer(data: Schema, **extra: Schema) -> Schema:
    return closed({"status": {"const": True}, **extra, "data": data})


def _message(**fields: Schema) -> Schema:
    return closed({"status": {"const": True}, "message": STRING, **fields})


PUBLISH_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["func", "payload"],
    "properties": {
        "func": DEFINITION_KEY.schema(description="a registered definition key"),
        "payload": PAYLOAD,
        "channel": CHANNEL,
        "delay": DELAY,
        "run_at": {**DATETIME_INPUT, "description": "when to run it (not with delay)"},
        "max_retries": {"type": "integer", "minimum": 0, "maximum": 99},
        "expires_in": {**EXPIRES_IN, "description": f"default {DEFAULT_EXPIRES_IN}"},
        "expires_at": {**DATETIME_INPUT, "description": "not with expires_in"},
        "broadcast": BOOLEAN,
        "max_exec_seconds": {"type": "integer", "minimum": 1, "maximum": 604800},
        "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200},
    },
}
ACTION_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "description": "exactly one action",
    "properties": {
        "cancel_request": {"const": True},
        "retry_request": {
            "oneOf": [
                {"const": True},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"retry": {"const": True}, "delay": DELAY},
                },
            ]
        },
        "get_status": {"const": True},
        "publish_job": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "payload": {**PAYLOAD, "description": "deep-merged over the template's"},
                "delay": DELAY,
                "channel": CHANNEL,
                "expires_in": EXPIRES_IN,
            },
        },
    },
}
LIST_FILTERS: Schema = {
    "channel": {"type": "string", "maxLength": 100},
    "status": {
        "type": "array",
        "items": STATUS_WORD,
        "maxItems": 6,
        "description": "repeatable and/or comma-separated",
    },
    "since": {**DATETIME_INPUT, "description": "jobs created after this time"},
}
LIST_QUERY: Schema = query(
    {**LIST_FILTERS, "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 100}}
)
CRUD_QUERY: Schema = query(
    {
        **LIST_FILTERS,
        "size": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
        "start": {
            "type": "integer",
            "minimum": 0,
            "maximum": 9999,
            "default": 0,
            "description": "offset: a multiple of size",
        },
    }
)
EVENTS_QUERY: Schema = query(
    {"limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}
)
RUNNERS_QUERY: Schema = query(
    {
        "channel": QUEUE.schema(description="only the runners that take jobs of this channel"),
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    }
)
PING_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["runner_id"],
    "properties": {"runner_id": RUNNER_ID, "timeout": TIMEOUT},
}
SHUTDOWN_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["runner_id"],
    "properties": {"runner_id": RUNNER_ID, "graceful": BOOLEAN, "timeout": TIMEOUT},
}
BROADCAST_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["command"],
    "properties": {
        "command": {"type": "string", "enum": list(control.BROADCAST_COMMANDS)},
        "data": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "channel": CHANNEL,
                "graceful": {**BOOLEAN, "description": "shutdown only (default true)"},
            },
        },
        "timeout": TIMEOUT,
    },
}

JOB_DATA_FIELDS: Schema = {
    "id": UUID_,
    "status": STATUS_WORD,
    "channel": STRING,
    "func": STRING,
    "payload": {"description": "the job's params"},
    "created": TIMESTAMP,
    "run_at": TIMESTAMP,
    "started_at": NULLABLE_TIMESTAMP,
    "finished_at": NULLABLE_TIMESTAMP,
    "expires_at": NULLABLE_TIMESTAMP,
    "attempt": INTEGER,
    "max_retries": INTEGER,
    "max_exec_seconds": NULLABLE_NUMBER,
    "last_error": STRING,
    "metadata": {"type": "object"},
    "result": {"description": "what the job returned, null until then"},
    "runner_id": NULLABLE_STRING,
    "cancel_requested": BOOLEAN,
    "duration_ms": INTEGER,
    "is_terminal": BOOLEAN,
    "is_retriable": BOOLEAN,
    "broadcast": BOOLEAN,
    "idempotency_key": NULLABLE_STRING,
    "retried_from": NULLABLE_UUID,
    "retried_as": NULLABLE_UUID,
    "cloned_from": NULLABLE_UUID,
}
JOB_DATA: Schema = closed(JOB_DATA_FIELDS)
EVENT_DATA: Schema = closed(
    {
        "event": STRING,
        "at": TIMESTAMP,
        "runner_id": NULLABLE_STRING,
        "attempt": {"type": ["integer", "null"]},
        "details": {"type": "object"},
    }
)
STATUS_DATA: Schema = closed(
    {
        **JOB_DATA_FIELDS,
        "recent_events": {"type": "array", "items": EVENT_DATA},
        "queue_position": {"type": ["integer", "null"], "minimum": 0},
    }
)
ACTION_ANSWER: Schema = {
    "oneOf": [
        _message(job_id=UUID_),  # cancel_request
        _message(original_job_id=UUID_, new_job_id=UUID_, delayed=BOOLEAN),  # retry_request
        _answer(STATUS_DATA),  # get_status
        _message(job_id=UUID_, template_job_id=UUID_),  # publish_job
    ]
}
HEALTH_STATUS: Schema = {"type": "string", "enum": ["healthy", "degraded", "unhealthy"]}
CHANNEL_HEALTH: Schema = closed(
    {
        "channel": STRING,
        "status": HEALTH_STATUS,
        "messages": closed(
            {
                k: COUNT
                for k in (
                    "total",
                    "unclaimed",
                    "pending",
                    "scheduled",
                    "stuck",
                    "running",
                    "waiting",
                )
            }
        ),
        "runners": closed({"active": COUNT, "total": COUNT}),
        "stuck_jobs": {
            "type": "array",
            "items": closed(
                {
                    "job_id": UUID_,
                    "runner_id": NULLABLE_STRING,
                    "since": TIMESTAMP,
                    "reason": STRING,
                }
            ),
        },
        "alerts": {"type": "array", "items": {"type": "object"}},
        "metrics": closed(
            {
                "jobs_per_minute": {"type": "number"},
                "success_rate": {**NULLABLE_NUMBER, "description": "percent"},
                "avg_duration_ms": NULLABLE_NUMBER,
                "window_minutes": INTEGER,
            }
        ),
        "paused": BOOLEAN,
        "checked_at": TIMESTAMP,
    }
)
SYSTEM_HEALTH: Schema = closed(
    {
        "status": HEALTH_STATUS,
        "database": closed({"ok": BOOLEAN, "latency_ms": {"type": "number"}}),
        "scheduler": closed(
            {
                "ok": BOOLEAN,
                "leader": NULLABLE_STRING,
                "acquired_at": NULLABLE_TIMESTAMP,
                "lease_expires_at": NULLABLE_TIMESTAMP,
            }
        ),
        "runners": {"type": "object", "additionalProperties": COUNT},
        "channels": {
            "type": "array",
            "items": closed({"channel": STRING, "status": HEALTH_STATUS, "alerts": COUNT}),
        },
        "channels_truncated": BOOLEAN,
        "checked_at": TIMESTAMP,
    }
)
STATS: Schema = closed(
    {
        "pending": COUNT,
        "waiting": COUNT,
        "running": COUNT,
        "completed": COUNT,
        "failed": COUNT,
        "runners": COUNT,
        "avg_duration_ms": NULLABLE_NUMBER,
        "throughput": closed({"last_minute": COUNT, "last_hour": COUNT, "last_day": COUNT}),
        "window_minutes": INTEGER,
        "checked_at": TIMESTAMP,
    }
)
RUNNER_DATA: Schema = closed(
    {
        "runner_id": STRING,
        "host": STRING,
        "pid": INTEGER,
        "status": STRING,
        "alive": BOOLEAN,
        "channels": {"type": ["array", "null"], "items": STRING},
        "definitions": {"type": "array", "items": STRING},
        "max_concurrency": INTEGER,
        "running": INTEGER,
        "held": INTEGER,
        "started_at": TIMESTAMP,
        "last_heartbeat": TIMESTAMP,
        "stopped_at": NULLABLE_TIMESTAMP,
    }
)
PING_ANSWER: Schema = _answer(
    closed(
        {
            "runner_id": STRING,
            "responsive": BOOLEAN,
            "response_time_ms": NULLABLE_NUMBER,
            "timeout": {"type": "number"},
        }
    )
)
SHUTDOWN_ANSWER: Schema = closed(
    {
        "status": {"const": True},
        "message": STRING,
        "data": closed(
            {
                "runner_id": STRING,
                "graceful": BOOLEAN,
                "acknowledged": BOOLEAN,
                "response_time_ms": NULLABLE_NUMBER,
            }
        ),
    }
)
BROADCAST_ANSWER: Schema = _answer(
    closed(
        {
            "command": STRING,
            "channel": NULLABLE_STRING,
            "sent_to": COUNT,
            "answered": COUNT,
            "responses": {
                "type": "array",
                "items": closed(
                    {
                        "runner_id": STRING,
                        "response_time_ms": {"type": "number"},
                        "answered_at": TIMESTAMP,
                        "reply": {"type": "object"},
                    }
                ),
            },
            "not_answered": {"type": "array", "items": STRING},
        }
    )
)

# ---------------------------------------------------------------- the route table

JOB_PATH = "/api/jobs/job/{job_id}"


def routes(prefix: str) -> list[Route]:
    def route(
        method: str,
        path: str,
        handler: Handler,
        scope: Scope,
        summary: str,
        **kw: Any,
    ) -> Route:
        return Route(
            method,
            prefix + path,
            handler,
            scope,
            summary,
            tags=("compat: mojo",),
            render_error=render_error,
            error_schema=ERROR_SCHEMA,
            **kw,
        )

    no_query = query({})
    return [
        route(
            "GET",
            "/api/jobs/job",
            crud_list,
            "submit",
            "Jobs, newest first (start, size; channel, status, since): GET /v1/jobs",
            query_schema=CRUD_QUERY,
            response_schema=_answer(
                {"type": "array", "items": JOB_DATA}, count=COUNT, start=COUNT, size=COUNT
            ),
        ),
        route(
            "GET",
            JOB_PATH,
            get_job,
            "submit",
            "One job: GET /v1/jobs/{id}",
            query_schema=no_query,
            response_schema=_answer(JOB_DATA),
        ),
        route(
            "POST",
            JOB_PATH,
            job_action,
            "submit",
            "One action on a job: cancel_request, retry_request (a new job), get_status,"
            " publish_job (a new job from it as a template): /v1/jobs/{id}/cancel, /retry,"
            " GET /v1/jobs/{id} and its events, /clone",
            body_schema=ACTION_BODY,
            query_schema=no_query,
            response_schema=ACTION_ANSWER,
        ),
        route(
            "DELETE",
            JOB_PATH,
            delete_job,
            "submit",
            "Delete a finished job: DELETE /v1/jobs/{id}",
            query_schema=no_query,
            response_schema=_message(job_id=UUID_),
            errors=(409,),
        ),
        route(
            "GET",
            JOB_PATH + "/events",
            job_events,
            "submit",
            "A job's events, oldest first: GET /v1/jobs/{id}/events",
            query_schema=EVENTS_QUERY,
            response_schema=_answer({"type": "array", "items": EVENT_DATA}, count=COUNT),
        ),
        route(
            "POST",
            "/api/jobs/publish",
            publish,
            "submit",
            "Publish a job (func: a registered definition key): POST /v1/jobs",
            body_schema=PUBLISH_BODY,
            query_schema=no_query,
            response_schema=_message(job_id=UUID_, data=JOB_DATA),
        ),
        route(
            "GET",
            "/api/jobs/list",
            list_jobs,
            "submit",
            "The newest jobs of a channel and status: GET /v1/jobs",
            query_schema=LIST_QUERY,
            response_schema=_answer({"type": "array", "items": JOB_DATA}, count=COUNT),
        ),
        route(
            "GET",
            "/api/jobs/health/{channel}",
            channel_health,
            "view_jobs",
            "One channel's health: GET /v1/queues/{name}/health",
            query_schema=no_query,
            response_schema=_answer(CHANNEL_HEALTH),
            path_schemas={"channel": CHANNEL},
        ),
        route(
            "GET",
            "/api/jobs/health",
            system_health,
            "view_jobs",
            "System health: GET /v1/health",
            query_schema=no_query,
            response_schema=_answer(SYSTEM_HEALTH),
        ),
        route(
            "GET",
            "/api/jobs/stats",
            stats,
            "view_jobs",
            "System statistics: GET /v1/stats",
            query_schema=no_query,
            response_schema=_answer(STATS),
        ),
        route(
            "GET",
            "/api/jobs/runners",
            list_runners,
            "view_jobs",
            "Runners, live first (channel): GET /v1/runners",
            query_schema=RUNNERS_QUERY,
            response_schema=_answer({"type": "array", "items": RUNNER_DATA}, count=COUNT),
        ),
        route(
            "POST",
            "/api/jobs/runners/ping",
            ping_runner,
            "manage_jobs",
            "Ping one runner: POST /v1/runners/{id}/ping",
            body_schema=PING_BODY,
            query_schema=no_query,
            response_schema=PING_ANSWER,
            errors=(404, 409),
        ),
        route(
            "POST",
            "/api/jobs/runners/shutdown",
            shutdown_runner,
            "manage_jobs",
            "Shut one runner down: POST /v1/runners/{id}/shutdown",
            body_schema=SHUTDOWN_BODY,
            query_schema=no_query,
            response_schema=SHUTDOWN_ANSWER,
            errors=(404, 409),
        ),
        route(
            "POST",
            "/api/jobs/runners/broadcast",
            broadcast,
            "manage_jobs",
            "A command to every live runner: POST /v1/runners/broadcast",
            body_schema=BROADCAST_BODY,
            query_schema=no_query,
            response_schema=BROADCAST_ANSWER,
        ),
    ]
