"""The webhook job system (`janaah-webhook-jobs.md`): its `/jobs` and `/simulate` requests,
translated into `/v1` calls.

A `once` job is a job of `http.request` (`POST /v1/jobs`); its runs are the job's attempts
(`GET /v1/jobs/{id}/attempts`, the payload each one sent from its record: the result of a
successful attempt, the `http_exchange` event of a failed one). A `recurrent` job is a schedule
of `http.request` named `janaah-<id>` (`POST /v1/schedules`: `every` -> `everySeconds`,
`scheduled_at` -> `startAt`, `expires_at` -> `expiresAt`, at most 3 failed runs in a row); a
recurrent job without `scheduled_at` runs at once (`POST /v1/schedules/{name}/trigger`), then
every `every` seconds. Its runs are the jobs the schedule fired (`GET /v1/schedules/{name}/runs`),
each run a job of one attempt (recurring runs are not retried). Cancelling one disables the
schedule (`PATCH /v1/schedules/{name}`).

Statuses: queued/waiting -> `pending`, running/cancelling -> `running`, terminal -> `finished`
with `finish_reason` succeeded, failed, canceled or expired. A recurrent job is `pending` until
its first fire, `running` while enabled, `finished` once disabled: `failed` when its failures
disabled it, `expired` when its `expires_at` ended it, else `canceled`.

A once job may be retried MAX_RETRIES times (the setting, default 2: `maxAttempts` 3).
Failures answer
`{"error": ..., "code": ..., "field"?: ...}`, every `/v1` field name worded as the document's
(`request.use_sources`, `scheduled_at`, `expires_at`, `every`); an id that is no job (malformed,
unknown, another owner's) is a 404 `{"error": "Job not found"}`. Recurrent jobs are schedules:
creating, reading and cancelling them needs `manage_jobs` (a lesser token gets 403 creating one
and 404 reading one).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from typing import Any

from aiohttp import web

from jobserver.api.errors import ApiError
from jobserver.api.jsonio import json_response
from jobserver.api.keys import BODY_KEY, QUERY_KEY, SETTINGS_KEY
from jobserver.api.paging import MAX_PAGE_OFFSET
from jobserver.api.routing import Route
from jobserver.api.schemas import DATETIME_INPUT, EVENT_NAME
from jobserver.compat.dispatch import call_v1
from jobserver.compat.words import ours_for
from jobserver.outbound.schema import TOKEN

UTC = dt.UTC
DEFINITION = "http.request"
CONSECUTIVE_FAILURES = 3  # a recurrent job stops after this many failed runs in a row
SCHEDULE_PREFIX = "janaah-"
MAX_RUNS = 100  # runs shown per job (a recurrent job's newest ones)

# -- vocabulary ----------------------------------------------------------------------------

STATUS_OF = {
    "queued": "pending",
    "waiting": "pending",
    "running": "running",
    "cancelling": "running",
    "succeeded": "finished",
    "failed": "finished",
    "cancelled": "finished",
    "expired": "finished",
}
V1_STATUSES = ours_for(STATUS_OF)
REASON_OF = {
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "canceled",
    "expired": "expired",
}
RUN_STATUS_OF = {
    "running": "running",
    "succeeded": "completed",
    "cancelled": "canceled",
    "handed_back": "interrupted",
    "queued": "pending",
    "waiting": "pending",
    "cancelling": "running",
    "expired": "expired",
}
SORT_BY = {"created_at": "createdAt", "status": "status", "event": "event"}

# /v1 names -> the document's, in messages and `field` (whole words)
_NAMES = [
    (re.compile(r"\bparams\.useSources\b"), "request.use_sources"),
    (re.compile(r"\bparams\b"), "request"),
    (re.compile(r"\bexpiresAt\b"), "expires_at"),
    (re.compile(r"\bexpiresIn\b"), "expires_at"),
    (re.compile(r"\b(runAt|startAt)\b"), "scheduled_at"),
    (re.compile(r"\beverySeconds\b"), "every"),
    (re.compile(r"\bdefinitionKey\b"), "type"),
]


def _words(text: str) -> str:
    for pattern, name in _NAMES:
        text = pattern.sub(name, text)
    return text


def render_error(err: ApiError) -> dict[str, Any]:
    """`{"error": ..., "code": ..., "field"?: ...}` in the document's field names."""
    out: dict[str, Any] = {"error": _words(err.message), "code": err.code}
    if err.field:
        out["field"] = _words(err.field)
    for key in ("capability", "jobStatus"):
        if key in err.extra:
            out[key] = err.extra[key]
    return out


def _job_not_found() -> ApiError:
    return ApiError(404, "not_found", "Job not found")


def _job_id(request: web.Request) -> uuid.UUID:
    """The job id of the path; a malformed one is the not-found answer."""
    raw = request.match_info["id"]
    try:
        if len(raw) > 64:
            raise ValueError
        return uuid.UUID(raw)
    except ValueError:
        raise _job_not_found() from None


# -- requests -> /v1 -----------------------------------------------------------------------


def _params(req: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"url": req["url"]}
    for ours, theirs in (
        ("method", "method"),
        ("headers", "headers"),
        ("payload", "payload"),
        ("use_sources", "useSources"),
        ("sources", "sources"),
    ):
        if ours in req:
            params[theirs] = req[ours]
    return params


def _request_of(params: Any) -> dict[str, Any]:
    """The document's `request` back from http.request params (secret headers shown ***)."""
    p = params if isinstance(params, dict) else {}
    out: dict[str, Any] = {}
    for ours, theirs in (
        ("url", "url"),
        ("method", "method"),
        ("headers", "headers"),
        ("payload", "payload"),
        ("use_sources", "useSources"),
        ("sources", "sources"),
    ):
        if theirs in p:
            out[ours] = p[theirs]
    return out


async def _v1_or_none(request: web.Request, method: str, path: str, **kw: Any) -> Any:
    """The answer's body, or None when the /v1 route says not found (or that the caller may not
    see schedules: a recurrent job is then no job of theirs)."""
    try:
        return (await call_v1(request, method, path, **kw)).body
    except ApiError as e:
        if e.status in (403, 404):
            return None
        raise


# -- runs ----------------------------------------------------------------------------------


def _sent(record: Any) -> Any:
    """The payload a request record shows it sent (parsed when JSON), or None."""
    if not isinstance(record, dict) or "body" not in record:
        return None
    body = record["body"]
    if isinstance(body, str) and not record.get("bodyTruncated"):
        try:
            return json.loads(body)
        except ValueError:
            return body
    return body


async def _attempt_runs(request: web.Request, job: dict[str, Any]) -> list[dict[str, Any]]:
    """One run per attempt of a /v1 job, first first, each with the payload it sent: the
    job's result records the successful attempt, an `http_exchange` event each failed one."""
    job_id = job["id"]
    attempts = (
        await call_v1(request, "GET", f"/v1/jobs/{job_id}/attempts", query={"limit": MAX_RUNS})
    ).body["items"]
    sent: dict[int, Any] = {}
    if any(a["outcome"] not in ("succeeded", "running") for a in attempts):
        events = (
            await call_v1(request, "GET", f"/v1/jobs/{job_id}/events", query={"limit": 1000})
        ).body["items"]
        for e in events:  # a failed attempt's record: ctx.emit_event("http_exchange", ...)
            details = e["details"] if isinstance(e["details"], dict) else {}
            data = details.get("data")
            exchange = e["event"] == "custom" and details.get("name") == "http_exchange"
            if exchange and isinstance(data, dict):
                sent[data.get("attempt", e["attempt"])] = _sent(data.get("request"))
    runs = []
    for a in attempts:
        record = a["result"]
        if record is None and a["outcome"] == "succeeded":
            record = job["result"]
        payload = (
            _sent(record.get("request")) if isinstance(record, dict) else sent.get(a["attempt"])
        )
        runs.append(
            {
                "run_id": f"{job_id}.{a['attempt']}",
                "status": RUN_STATUS_OF.get(a["outcome"], "failed"),
                "started_at": a["startedAt"],
                "completed_at": a["finishedAt"],
                "payload": payload,
                "error": a["error"],
            }
        )
    return runs


async def _schedule_runs(request: web.Request, name: str) -> list[dict[str, Any]]:
    """The jobs a recurrent job fired, oldest first (its newest MAX_RUNS), one run each (its
    runs are not retried)."""
    query: dict[str, Any] = {
        "scheduleName": name,
        "limit": MAX_RUNS,
        "sortBy": "createdAt",
        "sortOrder": "desc",
    }
    fired = (await call_v1(request, "GET", "/v1/jobs", query=query)).body["items"]
    runs = []
    for job in reversed(fired):
        attempts = await _attempt_runs(request, job)
        last = attempts[-1] if attempts else None
        runs.append(
            {
                "run_id": job["id"],
                "status": RUN_STATUS_OF.get(job["status"], "failed"),
                "started_at": job["startedAt"],
                "completed_at": job["finishedAt"],
                "payload": last["payload"] if last else None,
                "error": job["lastError"],
            }
        )
    return runs


# -- answers -------------------------------------------------------------------------------


def _job_fields(job: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": job["id"],
        "event": job["event"],
        "status": STATUS_OF[job["status"]],
        "finish_reason": REASON_OF.get(job["status"]),
        "created_at": job["createdAt"],
        "is_scheduled": job["isScheduled"],
        "is_recurrent": job["isRecurring"],
    }


def _job_request(job: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"event": job["event"], "type": "once"}
    if job["isScheduled"] and not job["isRecurring"]:
        out["scheduled_at"] = job["scheduledFor"]
    if job["expiresAt"] is not None:
        out["expires_at"] = job["expiresAt"]
    out["request"] = _request_of(job["params"])
    return out


def _parse(ts: str | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _recurrent_state(s: dict[str, Any], ran: bool = False) -> tuple[str, str | None]:
    """(status, finish_reason) of a recurrent job's schedule (`ran`: it has runs)."""
    expires = _parse(s["expiresAt"])
    now = dt.datetime.now(UTC)
    if s["enabled"] and (expires is None or now < expires):
        started = ran or s["lastFireAt"] is not None or s["lastJobId"] is not None
        return ("running" if started else "pending"), None
    if s["disabledReason"]:
        return "finished", "failed"
    disabled = _parse(s["disabledAt"])
    if expires is not None and now >= expires and (disabled is None or disabled >= expires):
        return "finished", "expired"
    return "finished", "canceled"


def _recurrent_answer(job_id: str, s: dict[str, Any], runs: list[Any]) -> dict[str, Any]:
    status, reason = _recurrent_state(s, bool(runs))
    job_request: dict[str, Any] = {
        "event": s["event"],
        "type": "recurrent",
        "every": s["everySeconds"],
    }
    if s["startAt"] is not None:
        job_request["scheduled_at"] = s["startAt"]
    if s["expiresAt"] is not None:
        job_request["expires_at"] = s["expiresAt"]
    job_request["request"] = _request_of(s["params"])
    return {
        "id": job_id,
        "job_request": job_request,
        "status": status,
        "finish_reason": reason,
        "created_at": s["createdAt"],
        "is_scheduled": s["startAt"] is not None,
        "is_recurrent": True,
        "consecutive_failures": s["consecutiveFailures"],
        "runs": runs,
    }


# -- handlers ------------------------------------------------------------------------------


async def create_job(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]
    params = _params(body["request"])
    if body["type"] == "once":
        if "every" in body:
            raise ApiError(422, "validation_error", "every: only a recurrent job has one", "every")
        submission: dict[str, Any] = {
            "definitionKey": DEFINITION,
            "params": params,
            "maxAttempts": 1 + request.app[SETTINGS_KEY].max_retries,
        }
        if "event" in body:
            submission["event"] = body["event"]
        if "scheduled_at" in body:
            submission["runAt"] = body["scheduled_at"]
        if "expires_at" in body:
            submission["expiresAt"] = body["expires_at"]
        answer = await call_v1(request, "POST", "/v1/jobs", body=submission)
        job = answer.body
        message = (
            f"Job scheduled for {job['scheduledFor']}"
            if job["isScheduled"]
            else "Job created and will run immediately"
        )
        return json_response({"job_id": job["id"], "message": message}, status=answer.status)
    if "every" not in body:
        raise ApiError(
            422, "validation_error", "every: a recurrent job needs one (seconds)", "every"
        )
    job_id = str(uuid.uuid4())
    name = SCHEDULE_PREFIX + job_id
    schedule: dict[str, Any] = {
        "name": name,
        "everySeconds": body["every"],
        "definitionKey": DEFINITION,
        "params": params,
        "maxConsecutiveFailures": CONSECUTIVE_FAILURES,
    }
    if "event" in body:
        schedule["event"] = body["event"]
    if "scheduled_at" in body:
        schedule["startAt"] = body["scheduled_at"]
    if "expires_at" in body:
        schedule["expiresAt"] = body["expires_at"]
    answer = await call_v1(request, "POST", "/v1/schedules", body=schedule)
    expires = _parse(answer.body["expiresAt"])
    if expires is not None and expires <= dt.datetime.now(UTC):
        message = f"Recurrent job created, but its expires_at ({body['expires_at']}) has passed:"
        message += " it will not run, although every"
    elif "scheduled_at" in body:
        message = f"Recurrent job created: first run at {answer.body['nextFireAt']}, then every"
    else:
        await call_v1(request, "POST", f"/v1/schedules/{name}/trigger")
        message = "Recurrent job created and will run immediately, then every"
    message += f" {body['every']} seconds"
    return json_response({"job_id": job_id, "message": message}, status=answer.status)


async def list_jobs(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    limit = q.get("limit", 10)
    page = q.get("page", 1)
    query: dict[str, Any] = {"page": page, "limit": limit, "definitionKey": DEFINITION}
    if "status" in q:
        query["status"] = V1_STATUSES[q["status"]]
    if "event" in q:
        query["event"] = q["event"]
    if "sort_by" in q:
        query["sortBy"] = SORT_BY[q["sort_by"]]
    if "sort_order" in q:
        query["sortOrder"] = q["sort_order"]
    answer = (await call_v1(request, "GET", "/v1/jobs", query=query)).body
    jobs = [{**_job_fields(j), "runs": await _attempt_runs(request, j)} for j in answer["items"]]
    total = answer["total"] if answer["total"] is not None else answer["totalAtLeast"]
    return json_response(
        {
            "jobs": jobs,
            "total": total,
            "page": page,
            "limit": limit,
            "total_pages": math.ceil(total / limit),
        }
    )


async def get_job(request: web.Request) -> web.Response:
    job_id = str(_job_id(request))
    job = await _v1_or_none(request, "GET", f"/v1/jobs/{job_id}")
    if job is not None:
        fields = _job_fields(job)
        return json_response(
            {
                "id": fields.pop("id"),
                "job_request": _job_request(job),
                **{k: v for k, v in fields.items() if k != "event"},
                "runs": await _attempt_runs(request, job),
            }
        )
    name = SCHEDULE_PREFIX + job_id
    schedule = await _v1_or_none(request, "GET", f"/v1/schedules/{name}")
    if schedule is None:
        raise _job_not_found()
    runs = await _schedule_runs(request, name)
    return json_response(_recurrent_answer(job_id, schedule, runs))


async def cancel_job(request: web.Request) -> web.Response:
    job_id = str(_job_id(request))
    try:
        await call_v1(request, "POST", f"/v1/jobs/{job_id}/cancel")
    except ApiError as e:
        if e.status != 404:
            raise
        name = SCHEDULE_PREFIX + job_id
        schedule = await _v1_or_none(request, "GET", f"/v1/schedules/{name}")
        if schedule is None:
            raise _job_not_found() from None
        if _recurrent_state(schedule)[0] == "finished":
            raise ApiError(
                409, "invalid_state", f"Job {job_id} has already finished: nothing to cancel"
            ) from None
        await call_v1(request, "PATCH", f"/v1/schedules/{name}", body={"enabled": False})
    return json_response({"message": f"Job {job_id} has been canceled"})


async def simulate(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]
    submission = {"definitionKey": DEFINITION, "params": _params(body["request"])}
    answer = await call_v1(request, "POST", "/v1/simulate", body=submission)
    return json_response(answer.body["payload"])


# -- schemas -------------------------------------------------------------------------------

REQUEST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": {
            "type": "string",
            "pattern": "^[hH][tT][tT][pP][sS]?://[^\\s]+$",
            "maxLength": 8192,
        },
        "method": {"type": "string", "pattern": f"^{TOKEN}{{1,64}}$"},
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "maxProperties": 100,
        },
        "payload": {"description": "any JSON value: templates and macros rendered per run"},
        "use_sources": {"type": "boolean"},
        "sources": {
            "type": "object",
            "description": "name -> {collection, match, fields, single, sort, limit}: rows of a"
            " PostgreSQL table of SOURCES_DATABASE_URL",
        },
    },
}
CREATE_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "request"],
    "properties": {
        "event": EVENT_NAME,
        "type": {"type": "string", "enum": ["once", "recurrent"]},
        "every": {
            "type": "integer",
            "minimum": 1,
            "maximum": 31_536_000,
            "description": "seconds between runs of a recurrent job (MIN_EVERY..MAX_EVERY)",
        },
        "scheduled_at": DATETIME_INPUT,
        "expires_at": DATETIME_INPUT,
        "request": REQUEST,
    },
}
SIMULATE_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["request"],
    "properties": {"request": REQUEST},
}
LIST_QUERY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "status": {"type": "string", "enum": list(V1_STATUSES)},
        "event": EVENT_NAME,
        "sort_by": {"type": "string", "enum": list(SORT_BY)},
        "sort_order": {"type": "string", "enum": ["asc", "desc"]},
        "page": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_OFFSET // 100},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100},
    },
}
NO_QUERY: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
TIMESTAMP: dict[str, Any] = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
RUN: dict[str, Any] = {
    "type": "object",
    "required": ["run_id", "status", "started_at", "completed_at", "payload"],
    "properties": {
        "run_id": {"type": "string"},
        "status": {"type": "string", "enum": sorted(set(RUN_STATUS_OF.values()) | {"failed"})},
        "started_at": NULLABLE_TIMESTAMP,
        "completed_at": NULLABLE_TIMESTAMP,
        "payload": {"description": "what the run sent (null if it sent nothing)"},
        "error": {"type": ["string", "null"]},
    },
}
JOB_STATE: dict[str, Any] = {
    "status": {"type": "string", "enum": list(V1_STATUSES)},
    "finish_reason": {
        "type": ["string", "null"],
        "enum": ["succeeded", "failed", "canceled", "expired", None],
    },
    "created_at": TIMESTAMP,
    "is_scheduled": {"type": "boolean"},
    "is_recurrent": {"type": "boolean"},
    "runs": {"type": "array", "items": RUN},
}
LIST_ITEM: dict[str, Any] = {
    "type": "object",
    "required": ["id", "status", "finish_reason", "created_at", "runs"],
    "properties": {"id": {"type": "string", "format": "uuid"}, **JOB_STATE},
}
JOB_LIST: dict[str, Any] = {
    "type": "object",
    "required": ["jobs", "total", "page", "limit", "total_pages"],
    "properties": {
        "jobs": {"type": "array", "items": LIST_ITEM},
        "total": {"type": "integer", "minimum": 0},
        "page": {"type": "integer", "minimum": 1},
        "limit": {"type": "integer", "minimum": 1},
        "total_pages": {"type": "integer", "minimum": 0},
    },
}
JOB_ANSWER: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "job_request",
        "status",
        "finish_reason",
        "created_at",
        "is_scheduled",
        "is_recurrent",
        "runs",
    ],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "job_request": {
            "type": "object",
            "required": ["type", "request"],
            "properties": {
                "event": {"type": ["string", "null"]},
                "type": {"type": "string", "enum": ["once", "recurrent"]},
                "every": {"type": "integer"},
                "scheduled_at": TIMESTAMP,
                "expires_at": TIMESTAMP,
                "request": {"type": "object"},
            },
        },
        **JOB_STATE,
    },
}
CREATED: dict[str, Any] = {
    "type": "object",
    "required": ["job_id", "message"],
    "properties": {"job_id": {"type": "string", "format": "uuid"}, "message": {"type": "string"}},
}
MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["message"],
    "properties": {"message": {"type": "string"}},
}
ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what went wrong, naming the field"},
        "code": {"type": "string"},
        "field": {"type": "string", "description": "the field at fault, in the document's names"},
    },
}

JOB_ID = "{id:[^/]+}"


def routes(prefix: str) -> list[Route]:
    def route(method: str, path: str, handler: Any, summary: str, **kw: Any) -> Route:
        return Route(
            method,
            prefix + path,
            handler,
            "submit",
            summary,
            tags=("compat-janaah",),
            render_error=render_error,
            error_schema=ERROR,
            **kw,
        )

    return [
        route(
            "POST",
            "/jobs",
            create_job,
            "Webhook jobs: create a once job (a job of http.request, at most 1 + MAX_RETRIES"
            " runs) or a recurrent one (a schedule of it; needs manage_jobs)",
            body_schema=CREATE_BODY,
            query_schema=NO_QUERY,
            response_schema=CREATED,
            success_status=201,
        ),
        route(
            "GET",
            "/jobs",
            list_jobs,
            "Webhook jobs: list jobs (status pending|running|finished, event, sort_by,"
            " sort_order, page, limit) with their runs",
            query_schema=LIST_QUERY,
            response_schema=JOB_LIST,
        ),
        route(
            "GET",
            f"/jobs/{JOB_ID}",
            get_job,
            "Webhook jobs: one job with its request, status, finish_reason and runs",
            query_schema=NO_QUERY,
            response_schema=JOB_ANSWER,
        ),
        route(
            "POST",
            f"/jobs/cancel/{JOB_ID}",
            cancel_job,
            "Webhook jobs: cancel a job (a recurrent one: no more runs)",
            query_schema=NO_QUERY,
            response_schema=MESSAGE,
            errors=(409,),
        ),
        route(
            "POST",
            "/simulate",
            simulate,
            "Webhook jobs: the payload a run would send now (templates, macros, sources);"
            " nothing sent, nothing written",
            body_schema=SIMULATE_BODY,
            query_schema=NO_QUERY,
            response_schema={"description": "the rendered payload (any JSON value)"},
        ),
    ]
