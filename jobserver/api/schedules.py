"""Schedule handlers (`manage_jobs`): create, list, read, change, delete and trigger schedules.

A schedule fires jobs of one definition on a cron expression (5 fields, or 6 with seconds
first) or every N seconds, in an IANA timezone; see `jobserver.scheduler.firetimes` for the
rules and `jobserver.scheduler.cron` for how fires become jobs. Invalid cron, unknown timezone
or unknown definition → 422 naming the field (`cron`, `timezone`, `definitionKey`, ...); params
are checked against the definition's schema like a submission's. A new or re-timed schedule gets
its `nextFireAt` computed here; `POST /v1/schedules/{name}/trigger` creates one job now (not
counted as a fire of the timetable; `nextFireAt` is unchanged). Lists page by name.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.errors import ApiError, invalid, not_found
from jobserver.api.jsonio import json_response
from jobserver.api.keys import BODY_KEY, DEFINITION_CACHE_KEY, POOL_KEY, QUERY_KEY
from jobserver.api.paging import Pager
from jobserver.api.request import name_param
from jobserver.api.schemas import SCHEDULE_FIELDS
from jobserver.api.views import SCHEDULE_COLUMNS, schedule_json
from jobserver.core.errors import format_path
from jobserver.core.submission import schedule_job
from jobserver.core.timing import check_window, parse_datetime
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
TIMING_FIELDS = {"cron", "everySeconds", "timezone", "startAt", "enabled"}
DEFAULTS = {k: spec["default"] for k, spec in SCHEDULE_FIELDS.items() if "default" in spec}
SCHEDULES = Pager("schedules", ("str",))


async def _check(request: web.Request, values: dict[str, Any]) -> dict[str, Any]:
    """Validate a complete set of API fields; returns them as columns (dates parsed)."""
    cols = {SCHEDULE_COLUMNS[k]: v for k, v in values.items() if k in SCHEDULE_COLUMNS}
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
    check_window(cols.get("start_at"), cols.get("expires_at"), "expiresAt")
    info = await request.app[DEFINITION_CACHE_KEY].resolve(
        request.app[POOL_KEY], cols["definition_key"], cols.get("definition_version")
    )
    cols.setdefault("params", {})
    failure = info.check_params(cols["params"])
    if failure is not None:
        raise invalid(format_path(failure[0], "params"), failure[1])
    attempts = cols.get("max_attempts")
    if attempts is not None and attempts > info.default_max_attempts:
        raise invalid(
            "maxAttempts",
            f"{attempts} is above the definition's defaultMaxAttempts"
            f" ({info.default_max_attempts}); a schedule may only lower it",
        )
    return cols


def _timing(cols: dict[str, Any]) -> Timing:
    return Timing(cols.get("cron"), cols.get("every_seconds"), cols.get("timezone") or "UTC")


def _first_fire(cols: dict[str, Any]) -> dt.datetime | None:
    if not cols.get("enabled", True):
        return None
    return first_fire_at(_timing(cols), dt.datetime.now(UTC), cols.get("start_at"))


async def create_schedule(request: web.Request) -> web.Response:
    body = request[BODY_KEY]
    values = {**DEFAULTS, **{k: v for k, v in body.items() if k != "name"}}
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
    after = SCHEDULES.after(q)
    limit = q.get("limit", 100)
    rows = await schedule_list(
        request.app[POOL_KEY],
        limit=limit + 1,
        after=None if after is None else after[0],
        enabled=q.get("enabled"),
        definition_key=q.get("definitionKey"),
    )
    return json_response(SCHEDULES.page(rows, limit, lambda r: (r["name"],), schedule_json))


async def get_schedule(request: web.Request) -> web.Response:
    row = await schedule_get(request.app[POOL_KEY], name_param(request, "schedule"))
    if row is None:
        raise not_found("schedule")
    return json_response(schedule_json(row))


async def patch_schedule(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]
    name = name_param(request, "schedule")
    async with request.app[POOL_KEY].acquire() as conn, conn.transaction():
        current = await schedule_get(conn, name, lock=True)
        if current is None:
            raise not_found("schedule")
        merged = {api: current[col] for api, col in SCHEDULE_COLUMNS.items()}
        if "cron" in body and body["cron"] is not None and "everySeconds" not in body:
            merged["everySeconds"] = None
        if "everySeconds" in body and body["everySeconds"] is not None and "cron" not in body:
            merged["cron"] = None
        merged.update(body)
        for api_name in ("startAt", "expiresAt"):
            if isinstance(merged[api_name], dt.datetime):
                merged[api_name] = merged[api_name].isoformat()
        cols = await _check(request, merged)
        changes = {
            SCHEDULE_COLUMNS[k]: cols[SCHEDULE_COLUMNS[k]]
            for k in SCHEDULE_COLUMNS
            if k in body or k in merged
        }
        if TIMING_FIELDS & body.keys():
            changes["next_fire_at"] = _first_fire(cols)
        row = await schedule_update(conn, name, **changes)
    assert row is not None
    return json_response(schedule_json(row))


async def delete_schedule(request: web.Request) -> web.Response:
    if not await schedule_delete(request.app[POOL_KEY], name_param(request, "schedule")):
        raise not_found("schedule")
    return web.Response(status=204)


async def trigger_schedule(request: web.Request) -> web.Response:
    name = name_param(request, "schedule")
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
        ids = await schedule_jobs_insert(
            conn,
            [
                schedule_job(
                    row, (info.key, info.version, info.default_max_attempts), SCHEDULE_OWNER, now
                )
            ],
        )
        if not ids:
            raise ApiError(409, "conflict", "triggered twice in the same instant; try again")
        await schedule_mark_fired(
            conn, name, next_fire_at=row["next_fire_at"], last_fire_at=now, last_job_id=ids[0]
        )
    return json_response({"jobId": ids[0], "schedule": name, "scheduledFor": now}, 201)
