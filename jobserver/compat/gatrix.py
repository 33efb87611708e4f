"""The admin console's job management (`gatrix-job-management.md`), served as documented.

Its "jobs" are our saved jobs, its "executions" the jobs a saved job made, its job types four
of our definitions. Every handler translates the documented request into `/v1` calls
(`dispatch.call_v1`) and the answer back:

| route (under the prefix, `/gatrix` by default) | scope | `/v1` routes |
| --- | --- | --- |
| `GET /api/v1/jobs` | submit | `GET /v1/saved-jobs?page&limit` |
| `POST /api/v1/jobs` | submit | `POST /v1/saved-jobs` |
| `GET /api/v1/jobs/{id}` | submit | `GET /v1/saved-jobs/{id}` |
| `PUT /api/v1/jobs/{id}` | submit | `GET` (for its type), `PATCH /v1/saved-jobs/{id}` |
| `DELETE /api/v1/jobs/{id}` | submit | `DELETE /v1/saved-jobs/{id}` |
| `POST /api/v1/jobs/{id}/execute` (and `/api/jobs/{id}/execute`) | submit |
  `POST /v1/saved-jobs/{id}/execute` |
| `GET /api/v1/jobs/{id}/executions` | submit | `GET /v1/saved-jobs/{id}/executions` |
| `GET /api/v1/job-executions/{id}` | submit | `GET /v1/jobs/{id}` |
| `POST /api/v1/job-executions/{id}/retry` | submit | `GET /v1/jobs/{id}`,
  `POST /v1/saved-jobs/{sid}/executions/{id}/retry` |
| `GET /api/v1/job-types`, `/api/v1/job-types/{id}` | view_jobs | `GET /v1/definitions/{key}` |

Answers use the console's envelope, `{"success": true, "data": ..., "message"?}`; failures
`{"success": false, "error": {"code", "message", "details"?: {"field"}}}` with our status.
Job types: 1 `mailsend` (`mail.send`), 2 `http_request` (`http.request`), 3 `ssh_command`
(`ssh.command`), 4 `log_message` (`log.message`); `timeout` in the job data is milliseconds
(our params take seconds); an `http_request` `body` that is not a string is our `payload`; an
`ssh_command` without `credential` uses the stored credential named by its `host`.
Placeholders: `{{timestamp}}` is our `{{$timestamp}}`; one whose root is none of ours
(`params`, `job`, `schedule`, `parents`, a source named in `sources`, a `$macro`) is kept as
literal text. Execution statuses: queued/waiting -> pending, running/cancelling -> running,
succeeded -> completed, failed/cancelled/expired -> failed.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

from aiohttp import web

from jobserver.api.errors import ApiError, invalid
from jobserver.api.jsonio import json_response
from jobserver.api.keys import BODY_KEY, DEFINITION_CACHE_KEY, POOL_KEY, QUERY_KEY
from jobserver.api.routing import Route, Scope
from jobserver.compat.dispatch import V1Answer, call_v1
from jobserver.compat.words import ours_for
from jobserver.core.errors import RuleError

Schema = dict[str, Any]

# -- job types -------------------------------------------------------------------------------


class JobType:
    def __init__(
        self,
        type_id: int,
        name: str,
        display: str,
        key: str,
        keys: tuple[str, ...],
        templated: tuple[str, ...],
        description: str,
    ) -> None:
        self.id = type_id
        self.name = name
        self.display = display
        self.key = key
        self.keys = keys  # the job data keys it takes
        self.templated = templated  # the keys our templating renders (the definition's)
        self.description = description


_SOURCES = ("useSources", "sources")
JOB_TYPES: tuple[JobType, ...] = (
    JobType(
        1,
        "mailsend",
        "Mail Send",
        "mail.send",
        ("to", "cc", "bcc", "from", "replyTo", "subject", "text", "html", "template",
         "variables", "attachments", "headers", "credential", *_SOURCES),
        ("to", "cc", "bcc", "subject", "text", "html", "variables", "replyTo", "headers"),
        "Send an email (SMTP relay; a stored mail template rendered with variables)",
    ),
    JobType(
        2,
        "http_request",
        "HTTP Request",
        "http.request",
        ("url", "method", "headers", "body", "timeout", "expectedStatus", "secretHeaders",
         *_SOURCES),
        ("url", "headers", "payload", "body"),
        "Execute an HTTP request (timeout in milliseconds)",
    ),
    JobType(
        3,
        "ssh_command",
        "SSH Command",
        "ssh.command",
        ("host", "port", "username", "command", "timeout", "workingDirectory", "env",
         "credential", *_SOURCES),
        ("command", "workingDirectory", "env"),
        "Run a command over SSH with a stored credential (timeout in milliseconds)",
    ),
    JobType(
        4,
        "log_message",
        "Log Message",
        "log.message",
        ("level", "message", "metadata", "category", *_SOURCES),
        ("message", "metadata", "category"),
        "Write a structured entry to the audit log",
    ),
)  # fmt: skip
BY_ID = {t.id: t for t in JOB_TYPES}
BY_NAME = {t.name: t for t in JOB_TYPES}
BY_KEY = {t.key: t for t in JOB_TYPES}
SECRET_KEYS = ("password", "privateKey", "passphrase", "apiKey")

# -- errors ------------------------------------------------------------------------------------


def render_error(err: ApiError) -> dict[str, Any]:
    """A failure as the console answers one."""
    error: dict[str, Any] = {"code": err.code.upper(), "message": err.message}
    if err.field is not None:
        error["details"] = {"field": err.field}
    return {"success": False, "error": error}


ERROR_SCHEMA: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["success", "error"],
    "properties": {
        "success": {"const": False},
        "error": {
            "type": "object",
            "additionalProperties": False,
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["field"],
                    "properties": {"field": {"type": "string"}},
                },
            },
        },
    },
}


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def _id(request: web.Request, what: str) -> str:
    """The path id: one of ours (a UUID), else the document's not-found answer."""
    raw = request.match_info["id"]
    try:
        if len(raw) > 64:
            raise ValueError(raw)
        return str(uuid.UUID(raw))
    except ValueError:
        raise _not_found(what) from None


async def _call(
    request: web.Request,
    method: str,
    path: str,
    *,
    what: str,
    data_field: str = "jobDataMap",
    query: dict[str, Any] | None = None,
    body: Any = None,
) -> V1Answer:
    """`call_v1`, its failures in this document's words: a 404 is `what` not found, a field
    of our params is named as the job data's."""
    try:
        return await call_v1(request, method, path, query=query, body=body)
    except ApiError as e:
        raise _reworded(e, what, data_field) from None
    except RuleError as e:  # a core rule the /v1 handler let through: its 422
        raise _reworded(invalid(e.field, e.message, e.code), what, data_field) from None


_V1_FIELDS = {
    "definitionKey": "jobTypeId",
    "enabled": "isEnabled",
    "cron": "schedule",
    "maxAttempts": "max_retry_count",
    "timeoutSeconds": "timeout_seconds",
    "description": "memo",
}


def _reworded(e: ApiError, what: str, data_field: str) -> ApiError:
    if e.status == 404:
        return _not_found(what)
    field = e.field
    message = e.message
    if field is not None:
        head, sep, rest = field.partition(".")
        if head == "params":
            new = data_field + sep + rest.replace("payload", "body", 1)
        else:
            new = _V1_FIELDS.get(head, head) + sep + rest
        if new != field:
            message = message.replace(field, new)
            field = new
    return ApiError(e.status, e.code, message, field, e.extra)


# -- placeholders ------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"(\\?)\{\{(\s*)([^{}]*?)(\s*)\}\}")
_OURS = {"params", "job", "schedule", "parents"}


def _to_ours(value: Any, roots: set[str]) -> Any:
    """A templated value as our templating reads it (see the module doc)."""
    if isinstance(value, dict):
        return {k: _to_ours(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_ours(v, roots) for v in value]
    if not isinstance(value, str) or "{{" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        escaped, lead, expr, trail = m.groups()
        if escaped:
            return m.group(0)
        if expr == "timestamp":
            return "{{" + lead + "$timestamp" + trail + "}}"
        root = re.split(r"[.\[]", expr, maxsplit=1)[0]
        if expr.startswith("$") or root in roots:
            return m.group(0)
        return "\\" + m.group(0)  # not ours to fill: literal text

    return _PLACEHOLDER.sub(sub, value)


def _from_ours(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _from_ours(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_ours(v) for v in value]
    if not isinstance(value, str) or "{{" not in value:
        return value
    return value.replace("\\{{", "{{").replace("{{$timestamp}}", "{{timestamp}}")


# -- job data <-> params -----------------------------------------------------------------------


def _params_of(jt: JobType, data: Any, field: str) -> dict[str, Any]:
    """The definition's params for the job data of a `jt` job (422 naming `field.key`)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise invalid(field, "must be an object")
    for k in data:
        if k in SECRET_KEYS:
            raise invalid(
                f"{field}.{k}",
                "secrets are not kept in job data: store a credential (POST /v1/credentials)"
                " and name it in credential",
            )
        if k not in jt.keys:
            raise invalid(
                f"{field}.{k}",
                f"unknown key for a {jt.name} job (known: {', '.join(jt.keys)})",
            )
    params = dict(data)
    if "timeout" in params and jt.name in ("http_request", "ssh_command"):
        t = params["timeout"]
        if isinstance(t, int | float) and not isinstance(t, bool):
            params["timeout"] = t / 1000  # milliseconds -> seconds
    if jt.name == "http_request" and "body" in params and not isinstance(params["body"], str):
        params["payload"] = params.pop("body")
    if jt.name == "ssh_command" and "credential" not in params and "host" in params:
        params["credential"] = params["host"]
    sources = params.get("sources")
    roots = _OURS | (set(sources) if isinstance(sources, dict) else set())
    for k in jt.templated:
        if k in params:
            params[k] = _to_ours(params[k], roots)
    return params


def _data_of(key: str, params: Any) -> Any:
    jt = BY_KEY.get(key)
    if jt is None or not isinstance(params, dict):
        return params
    data = dict(params)
    for k in jt.templated:
        if k in data:
            data[k] = _from_ours(data[k])
    if jt.name == "http_request" and "payload" in data:
        data["body"] = data.pop("payload")
    if "timeout" in data and jt.name in ("http_request", "ssh_command"):
        t = data["timeout"]
        if isinstance(t, int | float) and not isinstance(t, bool):
            ms = t * 1000
            data["timeout"] = int(ms) if float(ms).is_integer() else ms
    return data


def _job_json(s: dict[str, Any]) -> dict[str, Any]:
    """A saved job as the console's Job (its interface's fields, and the snake_case ones of
    its usage examples)."""
    jt = BY_KEY.get(s["definitionKey"])
    data = _data_of(s["definitionKey"], s["params"])
    attempts = s["maxAttempts"]
    retries = None if attempts is None else attempts - 1
    type_id = jt.id if jt is not None else None
    return {
        "id": s["id"],
        "name": s["name"],
        "jobTypeId": type_id,
        "jobTypeName": jt.name if jt is not None else s["definitionKey"],
        "jobDataMap": data,
        "memo": s["description"],
        "isEnabled": s["enabled"],
        "tags": [{"name": t} for t in s["tags"] or []],
        "createdBy": s["createdBy"],
        "updatedBy": s["updatedBy"],
        "createdAt": s["createdAt"],
        "updatedAt": s["updatedAt"],
        "job_type_id": type_id,
        "job_data_map": data,
        "description": s["description"],
        "is_enabled": s["enabled"],
        "max_retry_count": retries,
        "timeout_seconds": s["timeoutSeconds"],
        "schedule": s["cron"],
    }


STATUS_OF = {
    "queued": "pending",
    "waiting": "pending",
    "running": "running",
    "cancelling": "running",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "failed",
    "expired": "failed",
}
OURS_OF = ours_for(STATUS_OF)
EXECUTION_STATUSES = ["pending", "running", "completed", "failed"]


def _execution_json(job_id: Any, saved_id: Any, e: dict[str, Any]) -> dict[str, Any]:
    """An execution (a /v1 job or execution answer) as the console's JobExecution."""
    status = e["status"]
    error = e["lastError"]
    if status == "cancelled" and error is None:
        error = "cancelled"
    elif status == "expired" and error is None:
        error = "expired before it could finish"
    return {
        "id": job_id,
        "job_id": saved_id,
        "status": STATUS_OF[status],
        "created_at": e["createdAt"],
        "started_at": e["startedAt"],
        "completed_at": e["finishedAt"],
        "result": e["result"],
        "error_message": error,
        "retry_count": max(int(e["attempt"]) - 1, 0),
    }


# -- requests -> /v1 bodies --------------------------------------------------------------------

# (ours, the interface's camelCase, the usage examples' snake_case)
_PAIRS = (
    ("definitionKey", "jobTypeId", "job_type_id"),
    ("params", "jobDataMap", "job_data_map"),
    ("description", "memo", "description"),
    ("enabled", "isEnabled", "is_enabled"),
)


def _given(body: dict[str, Any], camel: str, snake: str) -> tuple[str, Any] | None:
    if camel in body and snake in body and camel != snake and body[camel] != body[snake]:
        raise invalid(snake, f"give {camel} or {snake}, not both")
    for name in (camel, snake):
        if name in body:
            return name, body[name]
    return None


def _job_type(value: Any, field: str) -> JobType:
    jt = BY_ID.get(value) if isinstance(value, int) else BY_NAME.get(value)
    if jt is None:
        raise invalid(field, "unknown job type (1 mailsend, 2 http_request, 3 ssh_command,"
                      " 4 log_message)")  # fmt: skip
    return jt


def _v1_body(body: dict[str, Any], current: JobType | None) -> dict[str, Any]:
    """The /v1 saved-job fields of a console job body (`current`: the saved job's type)."""
    out: dict[str, Any] = {}
    jt = current
    got = _given(body, "jobTypeId", "job_type_id")
    if got is not None:
        jt = _job_type(got[1], got[0])
        out["definitionKey"] = jt.key
    data = _given(body, "jobDataMap", "job_data_map")
    if data is not None:
        if jt is None:
            raise invalid("jobTypeId", "required")
        out["params"] = _params_of(jt, data[1], data[0])
    elif got is not None and current is not None and jt is not current:
        raise invalid(got[0], "a job changing its type needs its jobDataMap too")
    memo = _given(body, "memo", "description")
    if memo is not None:
        out["description"] = memo[1] if memo[1] is not None else ""
    enabled = _given(body, "isEnabled", "is_enabled")
    if enabled is not None:
        out["enabled"] = enabled[1]
    for name, ours in (("name", "name"), ("timeout_seconds", "timeoutSeconds")):
        if name in body:
            out[ours] = body[name]
    if "max_retry_count" in body:
        n = body["max_retry_count"]
        out["maxAttempts"] = None if n is None else n + 1
    if "schedule" in body:
        out["cron"] = body["schedule"]
    if "tags" in body:
        tags = body["tags"]
        out["tags"] = None if tags is None else [t if isinstance(t, str) else t["name"]
                                                 for t in tags]  # fmt: skip
    return out


async def _within_definition(request: web.Request, fields: dict[str, Any], key: str) -> None:
    """`max_retry_count` beyond what the job type allows (its definition's attempts: a job
    may only lower them) is the most it allows."""
    attempts = fields.get("maxAttempts")
    if not isinstance(attempts, int):
        return
    info = await request.app[DEFINITION_CACHE_KEY].get(request.app[POOL_KEY], key)
    if info is not None and attempts > info.default_max_attempts:
        fields["maxAttempts"] = info.default_max_attempts


def _ok(data: Any, status: int = 200, message: str | None = None) -> web.Response:
    out: dict[str, Any] = {"success": True}
    if data is not None:
        out["data"] = data
    if message is not None:
        out["message"] = message
    return json_response(out, status=status)


# -- handlers ----------------------------------------------------------------------------------

JOB = "Job"
EXECUTION = "Job execution"
TYPE = "Job type"


async def list_jobs(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    limit = q.get("limit", 20)
    page = q.get("page", 1)
    query: dict[str, Any] = {"page": page, "limit": limit, "q": q.get("search")}
    if "isEnabled" in q:
        query["enabled"] = q["isEnabled"]
    if "jobTypeId" in q:
        query["definitionKey"] = _job_type(q["jobTypeId"], "jobTypeId").key
    answer = await _call(request, "GET", "/v1/saved-jobs", what=JOB, query=query)
    body = answer.body
    total = body["total"] if body["total"] is not None else body["totalAtLeast"]
    return _ok(
        {
            "data": [_job_json(s) for s in body["items"]],
            "pagination": {
                "total": total,
                "limit": limit,
                "offset": (page - 1) * limit,
                "page": page,
                "totalPages": math.ceil(total / limit),
            },
        }
    )


async def create_job(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]
    fields = _v1_body(body, None)
    if "definitionKey" not in fields:
        raise invalid("jobTypeId", "required")
    fields.setdefault("params", _params_of(BY_KEY[fields["definitionKey"]], {}, "jobDataMap"))
    await _within_definition(request, fields, fields["definitionKey"])
    field = _data_field(body)
    answer = await _call(request, "POST", "/v1/saved-jobs", what=JOB, data_field=field, body=fields)
    return _ok(_job_json(answer.body), 201, "Job created successfully")


def _data_field(body: dict[str, Any]) -> str:
    return "job_data_map" if "job_data_map" in body and "jobDataMap" not in body else "jobDataMap"


async def get_job(request: web.Request) -> web.Response:
    sid = _id(request, JOB)
    answer = await _call(request, "GET", f"/v1/saved-jobs/{sid}", what=JOB)
    return _ok(_job_json(answer.body))


async def update_job(request: web.Request) -> web.Response:
    sid = _id(request, JOB)
    body: dict[str, Any] = request[BODY_KEY]
    current = await _call(request, "GET", f"/v1/saved-jobs/{sid}", what=JOB)
    fields = _v1_body(body, BY_KEY.get(current.body["definitionKey"]))
    await _within_definition(
        request, fields, fields.get("definitionKey", current.body["definitionKey"])
    )
    answer = await _call(
        request, "PATCH", f"/v1/saved-jobs/{sid}", what=JOB, data_field=_data_field(body),
        body=fields,
    )  # fmt: skip
    return _ok(_job_json(answer.body), message="Job updated successfully")


async def delete_job(request: web.Request) -> web.Response:
    sid = _id(request, JOB)
    await _call(request, "DELETE", f"/v1/saved-jobs/{sid}", what=JOB)
    return _ok(None, message="Job deleted successfully")


async def execute_job(request: web.Request) -> web.Response:
    sid = _id(request, JOB)
    answer = await _call(request, "POST", f"/v1/saved-jobs/{sid}/execute", what=JOB)
    job = answer.body
    return _ok(_execution_json(job["id"], job["savedJobId"], job), 201, "Job execution queued")


async def list_executions(request: web.Request) -> web.Response:
    sid = _id(request, JOB)
    q = request[QUERY_KEY]
    query: dict[str, Any] = {"limit": q.get("limit", 100)}
    if "status" in q:
        query["status"] = OURS_OF[q["status"]]
    answer = await _call(request, "GET", f"/v1/saved-jobs/{sid}/executions", what=JOB,
                         query=query)  # fmt: skip
    return _ok([_execution_json(e["jobId"], sid, e) for e in answer.body["items"]])


async def _execution(request: web.Request) -> dict[str, Any]:
    eid = _id(request, EXECUTION)
    job: dict[str, Any] = (await _call(request, "GET", f"/v1/jobs/{eid}", what=EXECUTION)).body
    if job["savedJobId"] is None:  # a job no saved job made is no execution
        raise _not_found(EXECUTION)
    return job


async def get_execution(request: web.Request) -> web.Response:
    job = await _execution(request)
    return _ok(_execution_json(job["id"], job["savedJobId"], job))


async def retry_execution(request: web.Request) -> web.Response:
    job = await _execution(request)
    answer = await _call(
        request,
        "POST",
        f"/v1/saved-jobs/{job['savedJobId']}/executions/{job['id']}/retry",
        what=EXECUTION,
    )
    new = answer.body
    return _ok(_execution_json(new["id"], new["savedJobId"], new), 201, "Job execution queued")


async def _type_json(request: web.Request, jt: JobType) -> dict[str, Any]:
    try:
        d = (await call_v1(request, "GET", f"/v1/definitions/{jt.key}")).body
    except ApiError as e:
        if e.status != 404:
            raise
        d = None  # not registered here: listed, disabled
    return {
        "id": jt.id,
        "name": jt.name,
        "displayName": jt.display,
        "description": jt.description,
        "definitionKey": jt.key,
        "isEnabled": d is not None,
        "configKeys": list(jt.keys),
        "paramsSchema": d["paramsSchema"] if d is not None else None,
    }


async def list_job_types(request: web.Request) -> web.Response:
    return _ok([await _type_json(request, jt) for jt in JOB_TYPES])


async def get_job_type(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    jt = BY_ID.get(int(raw)) if raw.isdigit() and len(raw) < 4 else BY_NAME.get(raw)
    if jt is None:
        raise _not_found(TYPE)
    return _ok(await _type_json(request, jt))


# -- schemas -----------------------------------------------------------------------------------

NULLABLE_TIMESTAMP: Schema = {"type": ["string", "null"], "format": "date-time"}
TYPE_ID_INPUT: Schema = {
    "anyOf": [
        {"type": "integer", "enum": list(BY_ID)},
        {"type": "string", "enum": list(BY_NAME)},
    ],
    "description": "1 mailsend, 2 http_request, 3 ssh_command, 4 log_message (or the name)",
}
DATA_INPUT: Schema = {
    "type": "object",
    "description": "the job type's config (see /api/v1/job-types); timeout in milliseconds",
}
MEMO: Schema = {"type": ["string", "null"], "maxLength": 2000}
TAG_INPUT: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 100,
    "pattern": "^[^\\x00-\\x1f\\x7f,]+$",
}
JOB_FIELDS: Schema = {
    "name": {
        "type": "string",
        "minLength": 1,
        "maxLength": 200,
        "pattern": "^[^\\x00-\\x1f\\x7f]+$",
    },
    "jobTypeId": TYPE_ID_INPUT,
    "job_type_id": TYPE_ID_INPUT,
    "jobDataMap": DATA_INPUT,
    "job_data_map": DATA_INPUT,
    "memo": MEMO,
    "description": MEMO,
    "isEnabled": {"type": "boolean"},
    "is_enabled": {"type": "boolean"},
    "max_retry_count": {"type": ["integer", "null"], "minimum": 0, "maximum": 99},
    "timeout_seconds": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 86400},
    "schedule": {
        "type": ["string", "null"],
        "minLength": 1,
        "maxLength": 200,
        "description": "a cron expression (UTC); null: run only when executed",
    },
    "tags": {
        "type": ["array", "null"],
        "maxItems": 20,
        "uniqueItems": True,
        "items": {
            "anyOf": [
                TAG_INPUT,
                {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": TAG_INPUT},
                },
            ]
        },
    },
}
JOB_CREATE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "anyOf": [{"required": ["jobTypeId"]}, {"required": ["job_type_id"]}],
    "properties": JOB_FIELDS,
}
JOB_UPDATE: Schema = {"type": "object", "additionalProperties": False, "properties": JOB_FIELDS}
NO_QUERY: Schema = {"type": "object", "additionalProperties": False, "properties": {}}
LIST_QUERY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "page": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20},
        "jobTypeId": {"type": "integer", "enum": list(BY_ID)},
        "isEnabled": {"type": "boolean"},
        "search": {"type": "string", "minLength": 1, "maxLength": 200},
    },
}
EXECUTIONS_QUERY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
        "status": {"type": "string", "enum": EXECUTION_STATUSES},
    },
}
NULLABLE_INT: Schema = {"type": ["integer", "null"]}
JOB_ANSWER: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "id", "name", "jobTypeId", "jobTypeName", "jobDataMap", "memo", "isEnabled", "tags",
        "createdBy", "updatedBy", "createdAt", "updatedAt", "job_type_id", "job_data_map",
        "description", "is_enabled", "max_retry_count", "timeout_seconds", "schedule",
    ],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "jobTypeId": NULLABLE_INT,
        "jobTypeName": {"type": "string"},
        "jobDataMap": {"description": "the job type's config"},
        "memo": {"type": "string"},
        "isEnabled": {"type": "boolean"},
        "tags": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {"name": {"type": "string"}},
            },
        },
        "createdBy": {"type": ["string", "null"]},
        "updatedBy": {"type": ["string", "null"]},
        "createdAt": {"type": "string", "format": "date-time"},
        "updatedAt": {"type": "string", "format": "date-time"},
        "job_type_id": NULLABLE_INT,
        "job_data_map": {"description": "the same as jobDataMap"},
        "description": {"type": "string"},
        "is_enabled": {"type": "boolean"},
        "max_retry_count": NULLABLE_INT,
        "timeout_seconds": {"type": ["number", "null"]},
        "schedule": {"type": ["string", "null"]},
    },
}  # fmt: skip
EXECUTION_ANSWER: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "id", "job_id", "status", "created_at", "started_at", "completed_at", "result",
        "error_message", "retry_count",
    ],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "job_id": {"type": "string", "format": "uuid"},
        "status": {"type": "string", "enum": EXECUTION_STATUSES},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": NULLABLE_TIMESTAMP,
        "completed_at": NULLABLE_TIMESTAMP,
        "result": {"description": "what it returned (any JSON value), null until then"},
        "error_message": {"type": ["string", "null"]},
        "retry_count": {"type": "integer", "minimum": 0},
    },
}  # fmt: skip
TYPE_ANSWER: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "id", "name", "displayName", "description", "definitionKey", "isEnabled",
        "configKeys", "paramsSchema",
    ],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string", "enum": list(BY_NAME)},
        "displayName": {"type": "string"},
        "description": {"type": "string"},
        "definitionKey": {"type": "string"},
        "isEnabled": {"type": "boolean", "description": "its definition is registered"},
        "configKeys": {"type": "array", "items": {"type": "string"}},
        "paramsSchema": {"description": "our definition's params schema; null unregistered"},
    },
}  # fmt: skip


def _envelope(data: Schema | None) -> Schema:
    props: Schema = {"success": {"const": True}, "message": {"type": "string"}}
    required = ["success"]
    if data is not None:
        props["data"] = data
        required.append("data")
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": props,
    }


JOB_LIST_ANSWER = _envelope(
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["data", "pagination"],
        "properties": {
            "data": {"type": "array", "items": JOB_ANSWER},
            "pagination": {
                "type": "object",
                "additionalProperties": False,
                "required": ["total", "limit", "offset", "page", "totalPages"],
                "properties": {
                    k: {"type": "integer", "minimum": 0}
                    for k in ("total", "limit", "offset", "page", "totalPages")
                },
            },
        },
    }
)


def routes(prefix: str) -> list[Route]:
    p = prefix

    def route(
        method: str,
        path: str,
        handler: Any,
        scope: Scope,
        summary: str,
        answer: Schema | None,
        **kw: Any,
    ) -> Route:
        kw.setdefault("query_schema", NO_QUERY)
        return Route(
            method,
            p + path,
            handler,
            scope,
            summary,
            response_schema=_envelope(answer) if answer is not None else _envelope(None),
            tags=("compat-gatrix",),
            render_error=render_error,
            error_schema=ERROR_SCHEMA,
            **kw,
        )

    jobs_list = Route(
        "GET",
        p + "/api/v1/jobs",
        list_jobs,
        "submit",
        "gatrix: list jobs (saved jobs), by page",
        query_schema=LIST_QUERY,
        response_schema=JOB_LIST_ANSWER,
        tags=("compat-gatrix",),
        render_error=render_error,
        error_schema=ERROR_SCHEMA,
    )
    execute = "gatrix: execute a job now (a saved job's execution)"
    return [
        jobs_list,
        route("POST", "/api/v1/jobs", create_job, "submit", "gatrix: create a job (saved job)",
              JOB_ANSWER, body_schema=JOB_CREATE, success_status=201),
        route("GET", "/api/v1/jobs/{id}", get_job, "submit", "gatrix: one job", JOB_ANSWER),
        route("PUT", "/api/v1/jobs/{id}", update_job, "submit",
              "gatrix: update a job (the fields given)", JOB_ANSWER, body_schema=JOB_UPDATE),
        route("DELETE", "/api/v1/jobs/{id}", delete_job, "submit", "gatrix: delete a job",
              None),
        route("POST", "/api/v1/jobs/{id}/execute", execute_job, "submit", execute,
              EXECUTION_ANSWER, success_status=201),
        route("POST", "/api/jobs/{id}/execute", execute_job, "submit", execute,
              EXECUTION_ANSWER, success_status=201),
        route("GET", "/api/v1/jobs/{id}/executions", list_executions, "submit",
              "gatrix: a job's executions, newest first",
              {"type": "array", "items": EXECUTION_ANSWER}, query_schema=EXECUTIONS_QUERY),
        route("GET", "/api/v1/job-executions/{id}", get_execution, "submit",
              "gatrix: one execution", EXECUTION_ANSWER),
        route("POST", "/api/v1/job-executions/{id}/retry", retry_execution, "submit",
              "gatrix: retry a finished execution (a new one)", EXECUTION_ANSWER,
              success_status=201),
        route("GET", "/api/v1/job-types", list_job_types, "view_jobs",
              "gatrix: the four job types", {"type": "array", "items": TYPE_ANSWER}),
        route("GET", "/api/v1/job-types/{id}", get_job_type, "view_jobs",
              "gatrix: one job type (by id or name)", TYPE_ANSWER),
    ]  # fmt: skip
