"""Schedule routes (`manage_jobs`): create, list, read, change, delete and trigger schedules.

A schedule fires jobs of one definition on a cron expression (5 fields, or 6 with seconds
first) or every N seconds, in an IANA timezone; see `jobserver.scheduler.firetimes` for the
rules and `jobserver.scheduler.cron` for how fires become jobs. Invalid cron, unknown timezone
or unknown definition → 422 naming the field (`cron`, `timezone`, `definitionKey`, ...); params
are checked against the definition's schema like a submission's. A new or re-timed schedule gets
its `nextFireAt` computed here; `POST /v1/schedules/{name}/trigger` creates one job now (not
counted as a fire of the timetable; `nextFireAt` is unchanged).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.errors import ApiError, invalid, not_found
from jobserver.api.jobs import parse_datetime
from jobserver.api.jsonio import format_path, json_response
from jobserver.api.keys import BODY_KEY, DEFINITION_CACHE_KEY, POOL_KEY, QUERY_KEY
from jobserver.api.routing import Route
from jobserver.db.jobs import NewJob
from jobserver.db.schedules import (
    schedule_delete,
    schedule_get,
    schedule_insert,
    schedule_jobs_insert,
    schedule_list,
    schedule_mark_fired,
    schedule_update,
)
from jobserver.scheduler.cron import SCHEDULE_OWNER
from jobserver.scheduler.firetimes import Timing, TimingError, first_fire_at, validate_timing

UTC = dt.UTC
NAME_PATTERN = "^[A-Za-z0-9._:-]{1,200}$"
DATETIME = {"type": ["string", "null"], "format": "date-time", "maxLength": 64}

FIELDS: dict[str, Any] = {
    "cron": {"type": ["string", "null"], "minLength": 1, "maxLength": 200},
    "everySeconds": {"type": ["integer", "null"], "minimum": 1, "maximum": 31_536_000},
    "timezone": {"type": "string", "minLength": 1, "maxLength": 64, "default": "UTC"},
    "definitionKey": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,200}$"},
    "definitionVersion": {"type": ["integer", "null"], "minimum": 1, "maximum": 2147483647},
    "params": {"description": "checked against the definition's params schema"},
    "queue": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,100}$", "default": "default"},
    "priority": {"type": "integer", "minimum": -1000, "maximum": 1000, "default": 0},
    "maxAttempts": {"type": ["integer", "null"], "minimum": 1, "maximum": 100},
    "enabled": {"type": "boolean", "default": True},
    "startAt": DATETIME,
    "expiresAt": DATETIME,
    "overlapPolicy": {"enum": ["allow", "skip"], "default": "allow"},
    "catchupPolicy": {"enum": ["none", "latest", "all"], "default": "latest"},
    "catchupLimit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
}
CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "definitionKey"],
    "properties": {"name": {"type": "string", "pattern": NAME_PATTERN}, **FIELDS},
}
PATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": FIELDS,
}
# API field -> column
COLUMN = {
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
TIMING_FIELDS = {"cron", "everySeconds", "timezone", "startAt", "enabled"}

SCHEDULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        **{k: {} for k in FIELDS},
        "source": {"enum": ["api", "code"]},
        "nextFireAt": DATETIME,
        "lastFireAt": DATETIME,
        "lastJobId": {"type": ["string", "null"], "format": "uuid"},
        "createdAt": {"type": "string", "format": "date-time"},
        "updatedAt": {"type": "string", "format": "date-time"},
    },
}


def schedule_json(r: asyncpg.Record) -> dict[str, Any]:
    out: dict[str, Any] = {"name": r["name"]}
    out.update({api: r[col] for api, col in COLUMN.items()})
    out.update(
        {
            "source": r["source"],
            "nextFireAt": r["next_fire_at"],
            "lastFireAt": r["last_fire_at"],
            "lastJobId": str(r["last_job_id"]) if r["last_job_id"] else None,
            "createdAt": r["created_at"],
            "updatedAt": r["updated_at"],
        }
    )
    return out


async def _check(request: web.Request, values: dict[str, Any]) -> dict[str, Any]:
    """Validate a complete set of API fields; returns them as columns (dates parsed)."""
    cols = {COLUMN[k]: v for k, v in values.items() if k in COLUMN}
    for api_name, col in (("startAt", "start_at"), ("expiresAt", "expires_at")):
        if isinstance(cols.get(col), str):
            cols[col] = parse_datetime(cols[col], api_name)
    if cols.get("cron") is not None and cols.get("every_seconds") is not None:
        raise invalid("cron", "give cron or everySeconds, not both")
    if cols.get("cron") is None and cols.get("every_seconds") is None:
        raise invalid("cron", "one of cron and everySeconds is required")
    try:
        validate_timing(_timing(cols))
    except TimingError as e:
        raise invalid(e.field, str(e)) from None
    if cols.get("start_at") and cols.get("expires_at") and cols["expires_at"] <= cols["start_at"]:
        raise invalid("expiresAt", "must be after startAt")
    pool = request.app[POOL_KEY]
    cache = request.app[DEFINITION_CACHE_KEY]
    info = await cache.get(pool, cols["definition_key"], cols.get("definition_version"))
    if info is None:
        key_known = (
            cols.get("definition_version") is not None
            and await cache.get(pool, cols["definition_key"]) is not None
        )
        raise invalid(
            "definitionVersion" if key_known else "definitionKey",
            f"unknown definition {cols['definition_key']!r}",
            code="unknown_definition",
        )
    cols.setdefault("params", {})
    failure = info.check_params(cols["params"])
    if failure is not None:
        raise invalid(format_path(failure[0], "params"), failure[1])
    return cols


def _timing(cols: dict[str, Any]) -> Timing:
    return Timing(cols.get("cron"), cols.get("every_seconds"), cols.get("timezone") or "UTC")


def _first_fire(cols: dict[str, Any]) -> dt.datetime | None:
    if not cols.get("enabled", True):
        return None
    return first_fire_at(_timing(cols), dt.datetime.now(UTC), cols.get("start_at"))


async def create_schedule(request: web.Request) -> web.Response:
    body = request[BODY_KEY]
    values = {k: v for k, v in body.items() if k != "name"}
    for k, spec in FIELDS.items():
        if "default" in spec:
            values.setdefault(k, spec["default"])
    cols = await _check(request, values)
    cols["next_fire_at"] = _first_fire(cols)
    try:
        row = await schedule_insert(request.app[POOL_KEY], body["name"], **cols)
    except asyncpg.UniqueViolationError:
        raise ApiError(
            409, "conflict", f"schedule {body['name']!r} already exists", "name"
        ) from None
    return json_response(schedule_json(row), status=201)


async def list_schedules(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    limit, offset = q.get("limit", 100), q.get("offset", 0)
    rows = await schedule_list(
        request.app[POOL_KEY],
        limit=limit,
        offset=offset,
        enabled=q.get("enabled"),
        definition_key=q.get("definitionKey"),
    )
    return json_response(
        {"items": [schedule_json(r) for r in rows], "limit": limit, "offset": offset}
    )


def _name(request: web.Request) -> str:
    name = request.match_info.get("name", "")
    if len(name) > 200:
        raise not_found("schedule")
    return name


async def get_schedule(request: web.Request) -> web.Response:
    row = await schedule_get(request.app[POOL_KEY], _name(request))
    if row is None:
        raise not_found("schedule")
    return json_response(schedule_json(row))


async def patch_schedule(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]
    name = _name(request)
    async with request.app[POOL_KEY].acquire() as conn, conn.transaction():
        current = await schedule_get(conn, name, lock=True)
        if current is None:
            raise not_found("schedule")
        merged = {api: current[col] for api, col in COLUMN.items()}
        if "cron" in body and body["cron"] is not None and "everySeconds" not in body:
            merged["everySeconds"] = None
        if "everySeconds" in body and body["everySeconds"] is not None and "cron" not in body:
            merged["cron"] = None
        merged.update(body)
        for api_name in ("startAt", "expiresAt"):
            if isinstance(merged[api_name], dt.datetime):
                merged[api_name] = merged[api_name].isoformat()
        cols = await _check(request, merged)
        changes = {COLUMN[k]: cols[COLUMN[k]] for k in COLUMN if k in body or k in merged}
        if TIMING_FIELDS & body.keys():
            changes["next_fire_at"] = _first_fire(cols)
        row = await schedule_update(conn, name, **changes)
    assert row is not None
    return json_response(schedule_json(row))


async def delete_schedule(request: web.Request) -> web.Response:
    if not await schedule_delete(request.app[POOL_KEY], _name(request)):
        raise not_found("schedule")
    return web.Response(status=204)


async def trigger_schedule(request: web.Request) -> web.Response:
    name = _name(request)
    pool = request.app[POOL_KEY]
    async with pool.acquire() as conn, conn.transaction():
        row = await schedule_get(conn, name, lock=True)
        if row is None:
            raise not_found("schedule")
        info = await request.app[DEFINITION_CACHE_KEY].get(
            pool, row["definition_key"], row["definition_version"]
        )
        if info is None:
            raise invalid(
                "definitionKey",
                f"definition {row['definition_key']!r} is no longer registered",
                code="unknown_definition",
            )
        now = dt.datetime.now(UTC)
        job = NewJob(
            definition_key=info.key,
            definition_version=info.version,
            max_attempts=row["max_attempts"] or info.default_max_attempts,
            params=row["params"],
            queue=row["queue"],
            priority=row["priority"],
            owner=SCHEDULE_OWNER,
            schedule_name=name,
            scheduled_for=now,
        )
        ids = await schedule_jobs_insert(conn, [job])
        if not ids:
            raise ApiError(409, "conflict", "triggered twice in the same instant; try again")
        await schedule_mark_fired(
            conn, name, next_fire_at=row["next_fire_at"], last_fire_at=now, last_job_id=ids[0]
        )
    return json_response({"jobId": str(ids[0]), "schedule": name, "scheduledFor": now}, 201)


NO_QUERY: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
LIST_QUERY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "enabled": {"type": "boolean"},
        "definitionKey": {"type": "string", "maxLength": 200},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
        "offset": {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0},
    },
}

ROUTES = [
    Route(
        "POST",
        "/v1/schedules",
        create_schedule,
        "manage_jobs",
        "Create a cron or interval schedule",
        body_schema=CREATE_SCHEMA,
        query_schema=NO_QUERY,
        response_schema=SCHEDULE_SCHEMA,
        success_status=201,
        tags=("schedules",),
    ),
    Route(
        "GET",
        "/v1/schedules",
        list_schedules,
        "manage_jobs",
        "List schedules by name",
        query_schema=LIST_QUERY,
        response_schema={
            "type": "object",
            "properties": {"items": {"type": "array", "items": SCHEDULE_SCHEMA}},
        },
        tags=("schedules",),
    ),
    Route(
        "GET",
        "/v1/schedules/{name}",
        get_schedule,
        "manage_jobs",
        "One schedule",
        query_schema=NO_QUERY,
        response_schema=SCHEDULE_SCHEMA,
        tags=("schedules",),
    ),
    Route(
        "PATCH",
        "/v1/schedules/{name}",
        patch_schedule,
        "manage_jobs",
        "Change, enable or disable a schedule",
        body_schema=PATCH_SCHEMA,
        query_schema=NO_QUERY,
        response_schema=SCHEDULE_SCHEMA,
        tags=("schedules",),
    ),
    Route(
        "DELETE",
        "/v1/schedules/{name}",
        delete_schedule,
        "manage_jobs",
        "Delete a schedule (its jobs stay)",
        query_schema=NO_QUERY,
        success_status=204,
        tags=("schedules",),
    ),
    Route(
        "POST",
        "/v1/schedules/{name}/trigger",
        trigger_schedule,
        "manage_jobs",
        "Run a schedule's job now",
        query_schema=NO_QUERY,
        success_status=201,
        tags=("schedules",),
    ),
]
