"""Job routes: submit (single and batch), read, list, cancel, events and attempts.

Access: any valid token submits, and reads/cancels its own jobs (another owner's job is 404,
never 403, so its existence is not revealed); `view_jobs` reads every job; `manage_jobs` also
cancels every job.

Submissions are checked in Python (envelope schema, then the definition's params schema,
both compiled once) and written with one statement (`job_insert_many`: jobs + one NOTIFY;
the `created` event is derived from the row), so a batch of 1000 is one round trip and
all-or-none. Single submissions go through the app's `GroupCommitter`: concurrent requests
share one statement and one commit, and each is answered once its row is committed (see
group_commit.py); the answer is built from what was inserted, not read back. Idempotency keys
are unique per owner; a repeat with the same body returns the stored job (200), a different
body 409. Concurrent repeats race on the unique index: the loser re-reads the winner's job.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.auth import Principal
from jobserver.api.definitions_cache import DefinitionCache, DefinitionInfo
from jobserver.api.errors import ApiError, invalid, not_found
from jobserver.api.jsonio import format_path, json_response
from jobserver.api.keys import (
    BODY_KEY,
    DEFINITION_CACHE_KEY,
    GROUP_COMMIT_KEY,
    POOL_KEY,
    PRINCIPAL_KEY,
    QUERY_KEY,
)
from jobserver.api.routing import Route
from jobserver.db.attempts import attempt_list
from jobserver.db.events import job_events_list
from jobserver.db.jobs import (
    JobFilter,
    NewJob,
    job_cancel,
    job_count,
    job_get,
    job_get_by_idempotency_keys,
    job_insert_many,
    job_list,
    new_job_id,
    new_job_ids,
)
from jobserver.statuses import JOB_STATUSES, TERMINAL_STATUSES

MAX_BATCH = 1000
COUNT_CAP = 10_000
INSERT_RETRIES = 3
UTC = dt.UTC

DATETIME = {"type": "string", "format": "date-time", "maxLength": 64}

JOB_SUBMISSION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["definitionKey"],
    "properties": {
        "definitionKey": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,200}$"},
        "definitionVersion": {"type": "integer", "minimum": 1, "maximum": 2147483647},
        "params": {"description": "checked against the definition's params schema"},
        "priority": {"type": "integer", "minimum": -1000, "maximum": 1000, "default": 0},
        "maxAttempts": {"type": "integer", "minimum": 1, "maximum": 100},
        "idempotencyKey": {"type": "string", "minLength": 1, "maxLength": 200},
        "queue": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,100}$", "default": "default"},
        "runAt": DATETIME,
        "delaySeconds": {"type": "number", "minimum": 0, "maximum": 31536000},
        "expiresAt": DATETIME,
        "timeoutSeconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 604800},
    },
}

BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["jobs"],
    "properties": {
        "jobs": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BATCH,
            "items": JOB_SUBMISSION_SCHEMA,
        }
    },
}

_NULLABLE_TS = {"type": ["string", "null"], "format": "date-time"}
JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "jobId": {"type": "string", "format": "uuid"},
        "id": {"type": "string", "format": "uuid"},
        "definitionKey": {"type": "string"},
        "definitionVersion": {"type": "integer"},
        "queue": {"type": "string"},
        "status": {"type": "string", "enum": list(JOB_STATUSES)},
        "priority": {"type": "integer"},
        "attempt": {"type": "integer"},
        "maxAttempts": {"type": "integer"},
        "params": {},
        "result": {},
        "lastError": {"type": ["string", "null"]},
        "progress": {},
        "workerId": {"type": ["string", "null"]},
        "owner": {"type": "string"},
        "idempotencyKey": {"type": ["string", "null"]},
        "timeoutSeconds": {"type": ["number", "null"]},
        "runAt": {"type": "string", "format": "date-time"},
        "expiresAt": _NULLABLE_TS,
        "createdAt": {"type": "string", "format": "date-time"},
        "startedAt": _NULLABLE_TS,
        "finishedAt": _NULLABLE_TS,
        "cancelRequestedAt": _NULLABLE_TS,
        "queueTimeMs": {"type": ["number", "null"]},
        "processingTimeMs": {"type": ["number", "null"]},
    },
}


# ---------------------------------------------------------------- serialisation


def _ms(a: dt.datetime | None, b: dt.datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return round(max(0.0, (b - a).total_seconds() * 1000), 3)


def job_json(r: Mapping[str, Any], now: dt.datetime | None = None) -> dict[str, Any]:
    """A job as clients see it. queueTimeMs: creation to (latest) start, or to now/finish when
    it never started; processingTimeMs: start to finish, or to now while it runs."""
    now = now or dt.datetime.now(UTC)
    status = r["status"]
    created, started, finished = r["created_at"], r["started_at"], r["finished_at"]
    if started is not None:
        queue_ms = _ms(created, started)
        processing_ms = _ms(started, finished or now)
    else:
        queue_ms = _ms(created, finished or (now if status == "queued" else None))
        processing_ms = None
    job_id = str(r["id"])
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
        "params": r["params"],
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
    }


def new_job_json(job: NewJob, created_at: dt.datetime, run_at: dt.datetime) -> dict[str, Any]:
    """`job_json` of a job just inserted, from what was inserted (no read back)."""
    return job_json(
        {
            "id": job.id,
            "definition_key": job.definition_key,
            "definition_version": job.definition_version,
            "queue": job.queue,
            "status": "queued",
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
            "expires_at": job.expires_at.astimezone(UTC) if job.expires_at is not None else None,
            "created_at": created_at,
            "started_at": None,
            "finished_at": None,
            "cancel_requested_at": None,
        }
    )


# ---------------------------------------------------------------- submission


def parse_datetime(value: str, field: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise invalid(field, "must be an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed.astimezone(UTC)
    except OverflowError:
        raise invalid(field, "date-time out of range") from None
    return parsed


def fingerprint(item: dict[str, Any]) -> str:
    """What makes two submissions with one idempotency key "the same body"."""
    canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def resolve_definitions(
    cache: DefinitionCache, pool: asyncpg.Pool, items: list[dict[str, Any]], prefix: str
) -> dict[tuple[str, int | None], DefinitionInfo]:
    """Each distinct (definitionKey, definitionVersion) once; unknown -> 422 naming the item."""
    out: dict[tuple[str, int | None], DefinitionInfo] = {}
    for i, item in enumerate(items):
        ref = (item["definitionKey"], item.get("definitionVersion"))
        if ref in out:
            continue
        info = await cache.get(pool, ref[0], ref[1])
        if info is None:
            where = format_path([i], prefix) if prefix else ""
            key_known = ref[1] is not None and await cache.get(pool, ref[0]) is not None
            field = "definitionVersion" if key_known else "definitionKey"
            name = ref[0] if ref[1] is None else f"{ref[0]}@{ref[1]}"
            raise invalid(
                f"{where}.{field}" if where else field,
                f"unknown definition {name!r}",
                code="unknown_definition",
            )
        out[ref] = info
    return out


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _schedule(
    item: dict[str, Any], where: str, now: dt.datetime
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(run_at, expires_at): runAt xor delaySeconds; expiresAt after runAt (or now)."""
    run_at = None
    if "runAt" in item:
        if "delaySeconds" in item:
            raise invalid(_at(where, "delaySeconds"), "give runAt or delaySeconds, not both")
        run_at = parse_datetime(item["runAt"], _at(where, "runAt"))
    elif "delaySeconds" in item:
        run_at = now + dt.timedelta(seconds=item["delaySeconds"])
    expires_at = None
    if "expiresAt" in item:
        expires_at = parse_datetime(item["expiresAt"], _at(where, "expiresAt"))
        if expires_at <= (run_at or now):
            raise invalid(
                _at(where, "expiresAt"), "must be after runAt (or now when runAt is not given)"
            )
    return run_at, expires_at


def _item_path(index: int | None) -> str:
    """Where a submission sits in the request body: `jobs[i]` in a batch, the root alone."""
    return "" if index is None else f"jobs[{index}]"


def build_job(
    item: dict[str, Any],
    index: int | None,
    info: DefinitionInfo,
    principal: Principal,
    now: dt.datetime,
    job_id: uuid.UUID | None = None,
) -> NewJob:
    """One schema-checked submission -> NewJob; semantic errors name `jobs[index].field`
    (just `field` when index is None)."""

    get = item.get
    params = get("params", {})
    failure = info.check_params(params)
    if failure is not None:
        raise invalid(format_path(failure[0], _at(_item_path(index), "params")), failure[1])
    run_at = expires_at = None
    if "runAt" in item or "delaySeconds" in item or "expiresAt" in item:
        run_at, expires_at = _schedule(item, _item_path(index), now)
    key = get("idempotencyKey")
    timeout = get("timeoutSeconds")
    return NewJob(
        definition_key=info.key,
        definition_version=info.version,
        max_attempts=int(get("maxAttempts", info.default_max_attempts)),
        params=params,
        queue=get("queue", "default"),
        priority=int(get("priority", 0)),
        run_at=run_at,
        expires_at=expires_at,
        timeout_seconds=float(timeout) if timeout is not None else None,
        owner=principal.owner,
        idempotency_key=key,
        request_fingerprint=fingerprint(item) if key is not None else None,
        id=job_id if job_id is not None else new_job_id(),
    )


def _conflict(key: str, field: str | None = None) -> ApiError:
    return ApiError(
        409,
        "idempotency_conflict",
        f"idempotencyKey {key!r} was already used with a different request body",
        field,
    )


async def submit_job(request: web.Request) -> web.Response:
    pool = request.app[POOL_KEY]
    principal = request[PRINCIPAL_KEY]
    item = request[BODY_KEY]
    defs = await resolve_definitions(request.app[DEFINITION_CACHE_KEY], pool, [item], "")
    job = build_job(
        item,
        None,
        defs[(item["definitionKey"], item.get("definitionVersion"))],
        principal,
        dt.datetime.now(UTC),
    )
    committer = request.app[GROUP_COMMIT_KEY]
    for _ in range(INSERT_RETRIES):
        try:
            created_at, run_at = await committer.submit(pool, job)  # committed when it returns
            return json_response(new_job_json(job, created_at, run_at), status=201)
        except asyncpg.UniqueViolationError:
            if job.idempotency_key is None:
                raise
            found = await job_get_by_idempotency_keys(pool, job.owner, [job.idempotency_key])
            if not found:
                continue  # the holder was pruned meanwhile: try again
            if found[0]["request_fingerprint"] != job.request_fingerprint:
                raise _conflict(job.idempotency_key, "idempotencyKey") from None
            return json_response(job_json(found[0]), status=200)
    raise ApiError(409, "conflict", "could not store the job; retry")


async def submit_batch(request: web.Request) -> web.Response:
    pool = request.app[POOL_KEY]
    principal = request[PRINCIPAL_KEY]
    items: list[dict[str, Any]] = request[BODY_KEY]["jobs"]
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        key = item.get("idempotencyKey")
        if key is not None:
            if key in seen:
                raise invalid(f"jobs[{i}].idempotencyKey", f"repeats the key of jobs[{seen[key]}]")
            seen[key] = i
    defs = await resolve_definitions(request.app[DEFINITION_CACHE_KEY], pool, items, "jobs")
    now = dt.datetime.now(UTC)
    ids = new_job_ids(len(items))
    jobs = [
        build_job(
            item,
            i,
            defs[(item["definitionKey"], item.get("definitionVersion"))],
            principal,
            now,
            ids[i],
        )
        for i, item in enumerate(items)
    ]
    for _ in range(INSERT_RETRIES):
        existing: dict[str, asyncpg.Record] = {}
        if seen:
            for row in await job_get_by_idempotency_keys(pool, principal.owner, list(seen)):
                existing[row["idempotency_key"]] = row
            for key, row in existing.items():
                i = seen[key]
                if row["request_fingerprint"] != jobs[i].request_fingerprint:
                    raise _conflict(key, f"jobs[{i}].idempotencyKey")
        new = [j for j in jobs if j.idempotency_key is None or j.idempotency_key not in existing]
        try:
            if new:
                async with pool.acquire() as conn:
                    await job_insert_many(conn, new)  # one statement: all or none
        except asyncpg.UniqueViolationError:
            if not seen:
                raise
            continue  # a concurrent submission took a key: re-read and resolve
        job_ids = [  # UUIDs: the JSON encoder writes them itself
            existing[j.idempotency_key]["id"]
            if j.idempotency_key is not None and j.idempotency_key in existing
            else j.id
            for j in jobs
        ]
        repeated = [seen[k] for k in existing]
        return json_response(
            {"jobIds": job_ids, "created": len(new), "existing": sorted(repeated)},
            status=201 if new else 200,
        )
    raise ApiError(409, "conflict", "could not store the batch; retry")


# ---------------------------------------------------------------- reads


def job_id_from(request: web.Request) -> uuid.UUID:
    raw = request.match_info.get("id", "")
    try:
        if len(raw) > 64:
            raise ValueError
        return uuid.UUID(raw)
    except ValueError:
        raise invalid("id", "must be a UUID") from None


async def visible_job(request: web.Request) -> asyncpg.Record:
    """The job in the path if this principal may see it, else 404."""
    job_id = job_id_from(request)
    principal = request[PRINCIPAL_KEY]
    row = await job_get(request.app[POOL_KEY], job_id, principal.owner_filter())
    if row is None:
        raise not_found("job")
    return row


async def get_job(request: web.Request) -> web.Response:
    return json_response(job_json(await visible_job(request)))


def encode_cursor(sort_by: str, descending: bool, value: Any, job_id: uuid.UUID) -> str:
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    raw = json.dumps({"s": sort_by, "d": descending, "v": value, "i": str(job_id)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort_by: str, descending: bool) -> tuple[Any, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if data["s"] != sort_by or data["d"] != descending:
            raise invalid("cursor", "cursor belongs to another sortBy/sortOrder")
        value = data["v"]
        if sort_by == "createdAt":
            value = dt.datetime.fromisoformat(value)
        elif sort_by == "priority":
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError
        elif not isinstance(value, str):
            raise ValueError
        return value, uuid.UUID(data["i"])
    except ApiError:
        raise
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid("cursor", "not a cursor from this API") from None


async def list_jobs(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    principal = request[PRINCIPAL_KEY]
    pool = request.app[POOL_KEY]
    statuses = q.get("status", [])
    for s in statuses:
        if s not in JOB_STATUSES:
            raise invalid("status", f"unknown status {s!r}: expected {', '.join(JOB_STATUSES)}")
    flt = JobFilter(
        statuses=sorted(set(statuses)),
        definition_key=q.get("definitionKey"),
        queue=q.get("queue"),
        created_after=parse_datetime(q["createdAfter"], "createdAfter")
        if "createdAfter" in q
        else None,
        created_before=parse_datetime(q["createdBefore"], "createdBefore")
        if "createdBefore" in q
        else None,
        owner=principal.owner_filter(),
    )
    sort_by = q.get("sortBy", "createdAt")
    descending = q.get("sortOrder", "desc") == "desc"
    limit = q.get("limit", 20)
    after = decode_cursor(q["cursor"], sort_by, descending) if "cursor" in q else None
    rows = await job_list(
        pool, flt, sort_by=sort_by, descending=descending, after=after, limit=limit + 1
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        col = {"createdAt": "created_at", "priority": "priority", "status": "status"}[sort_by]
        next_cursor = encode_cursor(sort_by, descending, last[col], last["id"])
    total, estimate = await job_count(pool, flt, COUNT_CAP)
    now = dt.datetime.now(UTC)
    return json_response(
        {
            "jobs": [job_json(r, now) for r in rows],
            "nextCursor": next_cursor,
            "limit": limit,
            "total": total,
            "totalIsEstimate": estimate,
        }
    )


async def cancel_job(request: web.Request) -> web.Response:
    job_id = job_id_from(request)
    principal = request[PRINCIPAL_KEY]
    pool = request.app[POOL_KEY]
    for _ in range(INSERT_RETRIES):
        row = await job_cancel(pool, job_id, None if principal.can_manage else principal.owner)
        if row is not None:
            return json_response(job_json(row))
        current = await job_get(pool, job_id, principal.owner_filter())
        if current is None:
            raise not_found("job")
        if current["owner"] != principal.owner and not principal.can_manage:
            raise ApiError(403, "forbidden", "cancelling another owner's job needs manage_jobs")
        if current["status"] == "cancelling":
            return json_response(job_json(current))
        if current["status"] in TERMINAL_STATUSES:
            raise ApiError(
                409,
                "invalid_state",
                f"job is already {current['status']}",
                extra={"jobStatus": current["status"]},
            )
        # queued/running again (e.g. handed back between our two reads): try once more
    raise ApiError(409, "conflict", "job changed state while cancelling; retry")


async def job_events(request: web.Request) -> web.Response:
    row = await visible_job(request)
    q = request[QUERY_KEY]
    limit = q.get("limit", 100)
    events = await job_events_list(request.app[POOL_KEY], row["id"], limit, q.get("after", 0))
    out = [
        {
            "id": e["id"],
            "event": e["event"],
            "at": e["at"],
            "workerId": e["worker_id"],
            "attempt": e["attempt"],
            "details": e["details"],
        }
        for e in events
    ]
    return json_response({"events": out, "nextAfter": out[-1]["id"] if len(out) == limit else None})


async def job_attempts(request: web.Request) -> web.Response:
    row = await visible_job(request)
    rows = await attempt_list(request.app[POOL_KEY], row["id"])
    out = [
        {
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
        for a in rows
    ]
    return json_response({"attempts": out})


# ---------------------------------------------------------------- route table

LIST_QUERY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "status": {
            "type": "array",
            "items": {"type": "string", "enum": list(JOB_STATUSES)},
            "maxItems": 20,
            "description": "repeatable and/or comma-separated",
        },
        "definitionKey": {"type": "string", "maxLength": 200},
        "queue": {"type": "string", "maxLength": 100},
        "createdAfter": DATETIME,
        "createdBefore": DATETIME,
        "sortBy": {
            "type": "string",
            "enum": ["createdAt", "priority", "status"],
            "description": "createdAt is submission order: job ids are time-ordered (UUIDv7)",
        },
        "sortOrder": {"type": "string", "enum": ["asc", "desc"]},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
        "cursor": {"type": "string", "maxLength": 1000},
    },
}
EVENTS_QUERY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "after": {
            "type": "integer",
            "minimum": 0,
            "maximum": 2147483647,
            "description": "event id to continue after",
        },
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    },
}
NO_QUERY = {"type": "object", "additionalProperties": False, "properties": {}}
# A job id in a path: anything but "batch", so /v1/jobs/batch belongs to the batch route alone
# (a 405 there would otherwise advertise GET in its Allow header); job_id_from checks the UUID.
JOB_ID = "{id:(?!batch$)[^/]+}"

ROUTES = [
    Route(
        "POST",
        "/v1/jobs",
        submit_job,
        "submit",
        "Submit a job (201; 200 for an idempotent repeat)",
        body_schema=JOB_SUBMISSION_SCHEMA,
        query_schema=NO_QUERY,
        response_schema=JOB_SCHEMA,
        success_status=201,
        tags=("jobs",),
    ),
    Route(
        "POST",
        "/v1/jobs/batch",
        submit_batch,
        "submit",
        f"Submit up to {MAX_BATCH} jobs in one transaction (all or none)",
        body_schema=BATCH_SCHEMA,
        query_schema=NO_QUERY,
        response_schema={
            "type": "object",
            "properties": {
                "jobIds": {"type": "array", "items": {"type": "string", "format": "uuid"}},
                "created": {"type": "integer"},
                "existing": {"type": "array", "items": {"type": "integer"}},
            },
        },
        success_status=201,
        tags=("jobs",),
    ),
    Route(
        "GET",
        "/v1/jobs",
        list_jobs,
        "submit",
        "List jobs (own jobs; all with view_jobs) with filters, sort and a cursor",
        query_schema=LIST_QUERY,
        response_schema={
            "type": "object",
            "properties": {
                "jobs": {"type": "array", "items": JOB_SCHEMA},
                "nextCursor": {"type": ["string", "null"]},
                "limit": {"type": "integer"},
                "total": {"type": "integer"},
                "totalIsEstimate": {"type": "boolean"},
            },
        },
        tags=("jobs",),
    ),
    Route(
        "GET",
        f"/v1/jobs/{JOB_ID}",
        get_job,
        "submit",
        "One job with timings",
        query_schema=NO_QUERY,
        response_schema=JOB_SCHEMA,
        tags=("jobs",),
    ),
    Route(
        "POST",
        f"/v1/jobs/{JOB_ID}/cancel",
        cancel_job,
        "submit",
        "Cancel: queued -> cancelled, running -> cancelling; terminal -> 409",
        query_schema=NO_QUERY,
        response_schema=JOB_SCHEMA,
        tags=("jobs",),
    ),
    Route(
        "GET",
        f"/v1/jobs/{JOB_ID}/events",
        job_events,
        "submit",
        "Lifecycle events of a job, oldest first",
        query_schema=EVENTS_QUERY,
        response_schema={
            "type": "object",
            "properties": {
                "events": {"type": "array", "items": {"type": "object"}},
                "nextAfter": {"type": ["integer", "null"]},
            },
        },
        tags=("jobs",),
    ),
    Route(
        "GET",
        f"/v1/jobs/{JOB_ID}/attempts",
        job_attempts,
        "submit",
        "One row per run of a job",
        query_schema=NO_QUERY,
        response_schema={
            "type": "object",
            "properties": {"attempts": {"type": "array", "items": {"type": "object"}}},
        },
        tags=("jobs",),
    ),
]
