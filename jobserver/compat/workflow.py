"""The workflow engine's jobs API (`shared/reference/workflow-jobs-api.md`), served as written.

A "job" of that document is one execution of a workflow: here a stored workflow's run
(`/v1/workflows/.../runs`), and its id is the run's id. Default prefix: none.

Routes (scope; the /v1 routes that do the work):
- `GET /api/v1/jobs?status=&limit=` (view_jobs): `GET /v1/workflows`, `GET
  /v1/workflows/{id}/runs`, `GET /v1/workflows/runs/{runId}`, `GET /v1/jobs/{id}` (step jobs).
- `GET /api/v1/jobs/stats` (view_jobs): the same reads, and `GET /v1/stats` (workers).
- `GET /api/v1/jobs/{id}` (view_jobs): `GET /v1/workflows/runs/{runId}`, `GET /v1/jobs/{id}`.
- `POST /api/v1/workflows/{id}/execute-async` (manage_jobs): `POST /v1/workflows/{id}/runs`.
- `GET /api/v1/executions/{id}` (view_jobs): as `GET /api/v1/jobs/{id}`, with every step.

Statuses: a run's `pending`, `running`, `completed`, `failed` are the document's; a cancelled
run (cancelled through `/v1`) is `failed` with the error `cancelled`. `retryCount` and
`maxRetries` are those of the run's most retried step job (attempt - 1, maxAttempts - 1).
Every run started by `execute-async` retries its steps' jobs after 0, 10 and 60 seconds (the
run's `retryDelays`). Errors are `{"error": ..., "code": "NOT_FOUND"}` (the code upper-case);
a malformed id is the not-found answer.

The list and the stats read every run the caller sees (the runs of deleted workflows are not
listed): they are meant for moving clients over, not for millions of runs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from aiohttp import web

from jobserver.api.errors import ApiError
from jobserver.api.jsonio import json_response
from jobserver.api.keys import BODY_KEY, QUERY_KEY
from jobserver.api.routing import Route
from jobserver.compat.dispatch import call_v1

# The document's retry delays: the 1st retry at once, the 2nd after 10 s, the 3rd after 60 s.
RETRY_DELAYS = [0, 10, 60]
STATUSES = ["pending", "running", "completed", "failed"]
PAGE = 1000  # the most a /v1 list page holds
_JOB_STATUS = {  # a step job's status in the document's words
    "waiting": "pending",
    "queued": "pending",
    "running": "running",
    "cancelling": "running",
    "succeeded": "completed",
    "failed": "failed",
    "expired": "failed",
    "cancelled": "failed",
}


def _job_not_found() -> ApiError:
    return ApiError(404, "not_found", "Job not found")


def _workflow_not_found() -> ApiError:
    return ApiError(404, "not_found", "Workflow not found")


def render_error(err: ApiError) -> dict[str, Any]:
    """`{"error", "code"}`: our message (which names the field of a 4xx), the code upper-case."""
    message = err.message
    if err.field and err.field not in message:
        message = f"{err.field}: {message}"
    return {"error": message, "code": err.code.upper()}


def _uuid(text: str, missing: ApiError) -> str:
    try:
        if len(text) > 64:
            raise ValueError
        return str(uuid.UUID(text))
    except ValueError:
        raise missing from None


def _time(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


def _ms(start: str | None, end: str | None) -> int | None:
    a, b = _time(start), _time(end)
    return None if a is None or b is None else max(0, round((b - a).total_seconds() * 1000))


def _run_status(status: str) -> str:
    return "failed" if status == "cancelled" else status


# -- reads through /v1 ----------------------------------------------------------------------


async def _run(request: web.Request, run_id: str) -> dict[str, Any]:
    """The run's /v1 answer with its steps; a run not found is the document's 404."""
    try:
        answer = await call_v1(request, "GET", f"/v1/workflows/runs/{run_id}")
    except ApiError as e:
        if e.status == 404:
            raise _job_not_found() from None
        raise
    body: dict[str, Any] = answer.body
    return body


async def _step_jobs(request: web.Request, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The /v1 answers of the run's step jobs (a pruned one left out)."""
    ids: list[str] = []
    for step in run["steps"]:
        if step["forEach"] is not None:
            ids.extend(str(j["jobId"]) for j in step["forEach"]["jobs"])
        elif step["jobId"] is not None:
            ids.append(str(step["jobId"]))
    out = []
    for job_id in ids:
        try:
            out.append((await call_v1(request, "GET", f"/v1/jobs/{job_id}")).body)
        except ApiError as e:
            if e.status != 404:
                raise
    return out


async def _all_runs(request: web.Request) -> list[dict[str, Any]]:
    """Every run the caller sees (/v1 summaries), newest first; a summary's `pending` of a
    run whose steps started already is made `running` from its detail."""
    runs: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await call_v1(
            request, "GET", "/v1/workflows", query={"limit": PAGE, "cursor": cursor}
        )
        for workflow in page.body["items"]:
            runs_cursor: str | None = None
            while True:
                got = await call_v1(
                    request,
                    "GET",
                    f"/v1/workflows/{workflow['id']}/runs",
                    query={"limit": PAGE, "cursor": runs_cursor},
                )
                runs.extend(got.body["items"])
                runs_cursor = got.body["nextCursor"]
                if runs_cursor is None:
                    break
        cursor = page.body["nextCursor"]
        if cursor is None:
            break
    for run in runs:
        if run["status"] in ("pending", "running"):
            try:
                run["status"] = (await _run(request, str(run["runId"])))["status"]
            except ApiError as e:  # deleted meanwhile
                if e.status != 404:
                    raise
    runs.sort(key=lambda r: (r["createdAt"], str(r["runId"])), reverse=True)
    return runs


# -- answers --------------------------------------------------------------------------------


def _result(run: dict[str, Any]) -> dict[str, Any]:
    """The run's result as the document's items: one `{"json": ...}` per last step."""
    results = (run["result"] or {}).get("results") or {}
    return {
        "data": [
            {"json": value if isinstance(value, dict) else {"value": value}}
            for value in results.values()
        ]
    }


def _error(run: dict[str, Any]) -> str:
    if run["status"] == "cancelled":
        return "cancelled"
    failed = [f"{s['name']}: {s['error']}" for s in run["steps"] if s["error"]]
    return "; ".join(failed) or run["error"] or "failed"


def _job(run: dict[str, Any], jobs: list[dict[str, Any]], *, detail: bool) -> dict[str, Any]:
    """A run with its steps (`run`) and its step jobs' answers as the document's job."""
    status = _run_status(run["status"])
    started = [s["startedAt"] for s in run["steps"] if s["startedAt"] is not None]
    out: dict[str, Any] = {
        "id": run["runId"],
        "workflowId": run["workflowId"],
        "workflowName": run["workflowName"],
        "status": status,
        "priority": run["priority"],
        "retryCount": max((max(0, j["attempt"] - 1) for j in jobs), default=0),
        "maxRetries": max((j["maxAttempts"] - 1 for j in jobs), default=0),
    }
    if detail:
        out["inputData"] = run["inputData"]
    out["createdAt"] = run["createdAt"]
    if started:
        out["startedAt"] = min(started, key=lambda t: _time(t) or dt.datetime.min)
    ended = run["finishedAt"] or run["cancelledAt"]
    if status in ("completed", "failed") and ended is not None:
        out["completedAt"] = ended
        duration = _ms(out.get("startedAt"), ended)
        if duration is not None:
            out["duration"] = duration
    if status == "completed":
        out["result"] = _result(run)
    if status == "failed":
        out["error"] = _error(run)
    if status == "running":
        workers = [j["workerId"] for j in jobs if j["status"] == "running" and j["workerId"]]
        if workers:
            out["workerId"] = workers[0]
    return out


async def _job_of(request: web.Request, run_id: str, *, detail: bool) -> dict[str, Any]:
    run = await _run(request, run_id)
    return _job(run, await _step_jobs(request, run), detail=detail)


# -- handlers -------------------------------------------------------------------------------


async def list_jobs(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    runs = await _all_runs(request)
    statuses = [_run_status(r["status"]) for r in runs]
    wanted = q.get("status")
    chosen = [r for r, s in zip(runs, statuses, strict=True) if wanted in (None, s)]
    data = [
        await _job_of(request, str(r["runId"]), detail=False) for r in chosen[: q.get("limit", 100)]
    ]
    return json_response(
        {
            "data": data,
            "total": len(chosen),
            "pendingCount": statuses.count("pending"),
            "runningCount": statuses.count("running"),
        }
    )


async def stats(request: web.Request) -> web.Response:
    runs = await _all_runs(request)
    v1 = (await call_v1(request, "GET", "/v1/stats")).body
    now = dt.datetime.now(dt.UTC)
    ended = [
        (now - t, _ms(r["createdAt"], r["finishedAt"]))
        for r in runs
        if (t := _time(r["finishedAt"] or r["cancelledAt"])) is not None
    ]
    day = [ms for age, ms in ended if age <= dt.timedelta(days=1)]
    timed = [ms for ms in day if ms is not None]
    statuses = [_run_status(r["status"]) for r in runs]
    return json_response(
        {
            "pending": statuses.count("pending"),
            "running": statuses.count("running"),
            "completed": statuses.count("completed"),
            "failed": statuses.count("failed"),
            "workers": v1["workers"],
            "queueType": "postgresql",
            "avgProcessingTime": round(sum(timed) / len(timed)) if timed else 0,
            "throughput": {
                "lastMinute": sum(1 for age, _ in ended if age <= dt.timedelta(minutes=1)),
                "lastHour": sum(1 for age, _ in ended if age <= dt.timedelta(hours=1)),
                "lastDay": len(day),
            },
        }
    )


async def get_job(request: web.Request) -> web.Response:
    run_id = _uuid(request.match_info["id"], _job_not_found())
    return json_response(await _job_of(request, run_id, detail=True))


async def execute_async(request: web.Request) -> web.Response:
    workflow_id = _uuid(request.match_info["id"], _workflow_not_found())
    body: dict[str, Any] = request[BODY_KEY]
    run: dict[str, Any] = {"retryDelays": RETRY_DELAYS, "priority": body.get("priority", 0)}
    if "inputData" in body:
        run["inputData"] = body["inputData"]
    try:
        answer = await call_v1(request, "POST", f"/v1/workflows/{workflow_id}/runs", body=run)
    except ApiError as e:
        if e.status == 404:
            raise _workflow_not_found() from None
        raise
    return json_response({"jobId": answer.body["runId"], "status": "pending"}, status=202)


async def get_execution(request: web.Request) -> web.Response:
    run_id = _uuid(request.match_info["id"], ApiError(404, "not_found", "Execution not found"))
    try:
        run = await _run(request, run_id)
    except ApiError as e:
        if e.status == 404:
            raise ApiError(404, "not_found", "Execution not found") from None
        raise
    jobs = await _step_jobs(request, run)
    job = _job(run, jobs, detail=True)
    by_id = {str(j["id"]): j for j in jobs}
    steps = []
    for s in run["steps"]:
        own = by_id.get(str(s["jobId"])) if s["jobId"] is not None else None
        status = _JOB_STATUS.get(s["status"], job["status"])
        step: dict[str, Any] = {
            "name": s["name"],
            "jobType": s["jobType"],
            "status": status,
            "startedAt": s["startedAt"],
            "completedAt": s["finishedAt"],
            "retryCount": max(0, (s["attempt"] or 1) - 1),
            "maxRetries": None if own is None else own["maxAttempts"] - 1,
            "result": s["result"],
            "error": s["error"],
        }
        steps.append(step)
    return json_response(
        {
            "id": run["runId"],
            "jobId": run["runId"],
            "workflowId": run["workflowId"],
            "workflowName": run["workflowName"],
            "status": job["status"],
            "startedAt": job.get("startedAt"),
            "completedAt": job.get("completedAt"),
            "duration": job.get("duration"),
            "inputData": run["inputData"],
            "result": job.get("result"),
            "error": job.get("error"),
            "steps": steps,
        }
    )


# -- schemas --------------------------------------------------------------------------------

STATUS = {"type": "string", "enum": STATUSES}
TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
UUID = {"type": "string", "format": "uuid"}
ITEMS = {
    "type": "array",
    "items": {"type": "object"},
    "maxItems": 10_000,
    "description": 'the workflow\'s input items ({"json": {...}}); {{input...}} in its steps',
}
RESULT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["data"],
    "properties": {"data": {"type": "array", "items": {"type": "object"}}},
}
ERROR_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["error", "code"],
    "properties": {
        "error": {"type": "string", "description": "what went wrong (a 4xx names the field)"},
        "code": {"type": "string", "description": "NOT_FOUND, VALIDATION_ERROR, ..."},
    },
}
_JOB_FIELDS: dict[str, Any] = {
    "id": UUID,
    "workflowId": UUID,
    "workflowName": {"type": "string"},
    "status": STATUS,
    "priority": {"type": "integer"},
    "retryCount": {"type": "integer", "minimum": 0},
    "maxRetries": {"type": "integer", "minimum": 0},
    "createdAt": TIMESTAMP,
    "startedAt": TIMESTAMP,
    "completedAt": TIMESTAMP,
    "duration": {"type": "integer", "minimum": 0, "description": "milliseconds"},
    "result": RESULT,
    "error": {"type": "string"},
    "workerId": {"type": "string"},
}
_REQUIRED = [
    "id",
    "workflowId",
    "workflowName",
    "status",
    "priority",
    "retryCount",
    "maxRetries",
    "createdAt",
]
JOB_SUMMARY = {
    "type": "object",
    "additionalProperties": False,
    "required": _REQUIRED,
    "properties": _JOB_FIELDS,
}
JOB = {
    **JOB_SUMMARY,
    "properties": {**_JOB_FIELDS, "inputData": {"description": "the run's inputData"}},
    "required": [*_REQUIRED, "inputData"],
}
JOB_LIST = {
    "type": "object",
    "additionalProperties": False,
    "required": ["data", "total", "pendingCount", "runningCount"],
    "properties": {
        "data": {"type": "array", "items": JOB_SUMMARY},
        "total": {"type": "integer", "minimum": 0},
        "pendingCount": {"type": "integer", "minimum": 0},
        "runningCount": {"type": "integer", "minimum": 0},
    },
}
COUNT = {"type": "integer", "minimum": 0}
STATS = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "pending",
        "running",
        "completed",
        "failed",
        "workers",
        "queueType",
        "avgProcessingTime",
        "throughput",
    ],
    "properties": {
        "pending": COUNT,
        "running": COUNT,
        "completed": COUNT,
        "failed": COUNT,
        "workers": COUNT,
        "queueType": {"type": "string", "enum": ["postgresql"]},
        "avgProcessingTime": {**COUNT, "description": "ms, runs ended in the last 24 hours"},
        "throughput": {
            "type": "object",
            "additionalProperties": False,
            "required": ["lastMinute", "lastHour", "lastDay"],
            "properties": {"lastMinute": COUNT, "lastHour": COUNT, "lastDay": COUNT},
        },
    },
}
LIST_QUERY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "status": STATUS,
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    },
}
NO_QUERY = {"type": "object", "additionalProperties": False, "properties": {}}
EXECUTE_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "inputData": ITEMS,
        "priority": {
            "type": "integer",
            "minimum": -1000,
            "maximum": 1000,
            "default": 0,
            "description": "higher first: 1..5 high, -1..-5 low, 0 normal",
        },
    },
}
EXECUTE_ANSWER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["jobId", "status"],
    "properties": {"jobId": UUID, "status": {"const": "pending"}},
}
_STEP = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "name",
        "jobType",
        "status",
        "startedAt",
        "completedAt",
        "retryCount",
        "maxRetries",
        "result",
        "error",
    ],
    "properties": {
        "name": {"type": "string"},
        "jobType": {"type": "string"},
        "status": STATUS,
        "startedAt": NULLABLE_TIMESTAMP,
        "completedAt": NULLABLE_TIMESTAMP,
        "retryCount": COUNT,
        "maxRetries": {"type": ["integer", "null"], "minimum": 0},
        "result": {"description": "the step's result"},
        "error": {"type": ["string", "null"]},
    },
}
EXECUTION = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "id",
        "jobId",
        "workflowId",
        "workflowName",
        "status",
        "startedAt",
        "completedAt",
        "duration",
        "inputData",
        "result",
        "error",
        "steps",
    ],
    "properties": {
        "id": UUID,
        "jobId": UUID,
        "workflowId": UUID,
        "workflowName": {"type": "string"},
        "status": STATUS,
        "startedAt": NULLABLE_TIMESTAMP,
        "completedAt": NULLABLE_TIMESTAMP,
        "duration": {"type": ["integer", "null"], "minimum": 0},
        "inputData": {"description": "the run's inputData"},
        "result": {"anyOf": [RESULT, {"type": "null"}]},
        "error": {"type": ["string", "null"]},
        "steps": {"type": "array", "items": _STEP},
    },
}


def routes(prefix: str) -> list[Route]:
    tags = ("compat-workflow",)
    common: dict[str, Any] = {"render_error": render_error, "error_schema": ERROR_SCHEMA}
    return [
        Route(
            "GET",
            f"{prefix}/api/v1/jobs",
            list_jobs,
            "view_jobs",
            "Workflow engine: jobs (workflow runs), newest first, with pending/running counts",
            query_schema=LIST_QUERY,
            response_schema=JOB_LIST,
            tags=tags,
            **common,
        ),
        Route(
            "GET",
            f"{prefix}/api/v1/jobs/stats",
            stats,
            "view_jobs",
            "Workflow engine: queue statistics of the workflow runs",
            query_schema=NO_QUERY,
            response_schema=STATS,
            tags=tags,
            **common,
        ),
        Route(
            "GET",
            prefix + "/api/v1/jobs/{id:(?!stats$)[^/]+}",
            get_job,
            "view_jobs",
            "Workflow engine: one job (a workflow run)",
            query_schema=NO_QUERY,
            response_schema=JOB,
            errors=(404,),
            tags=tags,
            **common,
        ),
        Route(
            "POST",
            prefix + "/api/v1/workflows/{id}/execute-async",
            execute_async,
            "manage_jobs",
            "Workflow engine: queue a run of a stored workflow (inputData, priority); retries"
            " after 0, 10 and 60 s",
            body_schema=EXECUTE_BODY,
            body_required=False,
            query_schema=NO_QUERY,
            response_schema=EXECUTE_ANSWER,
            success_status=202,
            errors=(404,),
            tags=tags,
            **common,
        ),
        Route(
            "GET",
            prefix + "/api/v1/executions/{id}",
            get_execution,
            "view_jobs",
            "Workflow engine: the execution of a job (a run's steps)",
            query_schema=NO_QUERY,
            response_schema=EXECUTION,
            errors=(404,),
            tags=tags,
            **common,
        ),
    ]
