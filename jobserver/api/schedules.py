"""Schedule handlers (`manage_jobs`): create, list, read, change, delete and trigger schedules;
their runs (`view_jobs`).

A schedule fires jobs of one definition on a cron expression (5 fields, or 6 with seconds
first) or every N seconds, in an IANA timezone; see `jobserver.scheduler.firetimes` for the
rules and `jobserver.scheduler.cron` for how fires become jobs. Invalid cron, unknown timezone
or unknown definition → 422 naming the field (`cron`, `timezone`, `definitionKey`, ...); params
are checked against the definition's schema like a submission's. `everySeconds` must lie within
MIN_EVERY..MAX_EVERY and a cron expression must not fire twice within MIN_EVERY (422 naming
`everySeconds` / `cron`). A new or re-timed schedule gets its `nextFireAt` computed here;
`POST /v1/schedules/{name}/trigger` creates one job now (not counted as a fire of the
timetable; `nextFireAt` is unchanged). Lists page by name.

Runs are not retried unless the schedule sets `maxAttempts`; `event`, `tags`,
`timeoutSeconds` (at most the definition's) and `retryDelays` are stamped on every job it fires.
A schedule a saved job's trigger owns (`savedJobId`) is listed and read like any other, fired
and triggered as any other (with the saved job's fields and owner; triggering it while the saved
job is disabled is a 409), but changing or deleting it here is a 409 naming the saved job: it
changes with the saved job (`/v1/saved-jobs/{id}`). A schedule disabled after repeated
failures (`jobserver.scheduler.failures`) shows `disabledReason`/`disabledAt`; re-enabling it
(`enabled: true`) clears the reason and the streak. `GET /v1/schedules/{name}/runs` lists its
jobs newest fire first, keyset-paged by (scheduledFor, id), optionally filtered by `status`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.errors import ApiError, invalid, not_found
from jobserver.api.jsonio import json_response
from jobserver.api.keys import BODY_KEY, DEFINITION_CACHE_KEY, POOL_KEY, QUERY_KEY, SETTINGS_KEY
from jobserver.api.paging import COUNT_LIMIT, Pager, page_number
from jobserver.api.reference_checks import check_references
from jobserver.api.request import name_param
from jobserver.api.schemas import SCHEDULE_FIELDS
from jobserver.api.views import SCHEDULE_COLUMNS as BASE_COLUMNS
from jobserver.api.views import schedule_json as base_schedule_json
from jobserver.core.errors import format_path
from jobserver.core.retry_delays import shown_delays, stored_delays
from jobserver.core.submission import schedule_job
from jobserver.core.timing import check_window, parse_datetime
from jobserver.db.conn import Conn
from jobserver.db.saved_jobs import saved_job_get
from jobserver.db.schedules import (
    schedule_count_upto,
    schedule_delete,
    schedule_get,
    schedule_insert,
    schedule_jobs_insert,
    schedule_jobs_label,
    schedule_list,
    schedule_mark_fired,
    schedule_runs_list,
    schedule_update,
)
from jobserver.scheduler.cron import RECURRING_MAX_ATTEMPTS, SCHEDULE_OWNER
from jobserver.scheduler.firetimes import (
    Timing,
    TimingError,
    check_frequency,
    first_fire_at,
    validate_timing,
)
from jobserver.statuses import TERMINAL_STATUSES

UTC = dt.UTC
TIMING_FIELDS = {"cron", "everySeconds", "timezone", "startAt", "enabled"}
DEFAULTS = {k: spec["default"] for k, spec in SCHEDULE_FIELDS.items() if "default" in spec}
SCHEDULES = Pager("schedules", ("str",))
RUNS = Pager("schedule_runs", ("datetime", "uuid"))
# Schedule fields a client sets -> their columns.
SCHEDULE_COLUMNS = {
    **BASE_COLUMNS,
    "event": "event",
    "tags": "tags",
    "maxConsecutiveFailures": "max_consecutive_failures",
    "timeoutSeconds": "timeout_seconds",
    "retryDelays": "retry_delays",
}


def schedule_json(r: asyncpg.Record) -> dict[str, Any]:
    return {
        **base_schedule_json(r),
        "event": r["event"],
        "tags": r["tags"],
        "maxConsecutiveFailures": r["max_consecutive_failures"],
        "consecutiveFailures": r["consecutive_failures"],
        "disabledReason": r["disabled_reason"],
        "disabledAt": r["disabled_at"],
        "timeoutSeconds": r["timeout_seconds"],
        "retryDelays": shown_delays(r["retry_delays"]),
        "savedJobId": r["saved_job_id"],
    }


def run_json(r: asyncpg.Record) -> dict[str, Any]:
    started, finished = r["started_at"], r["finished_at"]
    terminal = r["status"] in TERMINAL_STATUSES
    return {
        "jobId": r["id"],
        "status": r["status"],
        "scheduledFor": r["scheduled_for"],
        "createdAt": r["created_at"],
        "startedAt": started,
        "finishedAt": finished,
        "attempt": r["attempt"],
        "maxAttempts": r["max_attempts"],
        "finishReason": r["status"] if terminal else None,
        "lastError": r["last_error"],
        "durationMs": (
            round((finished - started).total_seconds() * 1000, 3)
            if terminal and started is not None and finished is not None
            else None
        ),
    }


async def _check(
    request: web.Request, values: dict[str, Any], *, retimed: bool = True
) -> dict[str, Any]:
    """Validate a complete set of API fields; returns them as columns (dates parsed).
    The MIN_EVERY/MAX_EVERY bounds apply when the timing is new (`retimed`)."""
    cols = {SCHEDULE_COLUMNS[k]: v for k, v in values.items() if k in SCHEDULE_COLUMNS}
    for api_name, col in (("startAt", "start_at"), ("expiresAt", "expires_at")):
        if isinstance(cols.get(col), str):
            cols[col] = parse_datetime(cols[col], api_name)
    if cols.get("cron") is not None and cols.get("every_seconds") is not None:
        raise invalid("cron", "give cron or everySeconds, not both")
    if cols.get("cron") is None and cols.get("every_seconds") is None:
        raise invalid("cron", "one of cron and everySeconds is required")
    settings = request.app[SETTINGS_KEY]
    try:
        validate_timing(_timing(cols))
        if retimed:
            check_frequency(
                _timing(cols), settings.min_every, settings.max_every, dt.datetime.now(UTC)
            )
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
    # the route needs manage_jobs: the credentials' scope check is moot
    await check_references(request.app[POOL_KEY], None, info, cols["params"])
    attempts = cols.get("max_attempts")
    if attempts is not None and attempts > info.default_max_attempts:
        raise invalid(
            "maxAttempts",
            f"{attempts} is above the definition's defaultMaxAttempts"
            f" ({info.default_max_attempts}); a schedule may only lower it",
        )
    timeout = cols.get("timeout_seconds")
    if timeout is not None and info.timeout_seconds is not None and timeout > info.timeout_seconds:
        raise invalid(
            "timeoutSeconds",
            f"{timeout:g} is above the definition's timeoutSeconds ({info.timeout_seconds:g});"
            " a schedule may only lower it",
        )
    cols["retry_delays"] = stored_delays(cols.get("retry_delays"))
    return cols


async def _refuse_owned(conn: Conn, row: asyncpg.Record) -> None:
    """409 naming the saved job when `row` is the schedule a saved job's trigger owns."""
    if row["saved_job_id"] is None:
        return
    saved = await saved_job_get(conn, row["saved_job_id"])
    shown = f"{saved['name']!r} ({row['saved_job_id']})" if saved else str(row["saved_job_id"])
    raise ApiError(
        409,
        "owned_by_saved_job",
        f"schedule {row['name']!r} is the trigger of saved job {shown}: change or delete it"
        f" with /v1/saved-jobs/{row['saved_job_id']}",
        extra={"savedJobId": str(row["saved_job_id"])},
    )


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
    limit = q.get("limit", 100)
    number = page_number(q, limit)
    after = SCHEDULES.after(q)
    pool = request.app[POOL_KEY]
    enabled, definition_key = q.get("enabled"), q.get("definitionKey")
    rows = await schedule_list(
        pool,
        limit=limit + 1,
        after=None if after is None else after[0],
        enabled=enabled,
        definition_key=definition_key,
        offset=0 if number is None else number.offset,
    )

    def key(r: Any) -> tuple[Any, ...]:
        return (r["name"],)

    if number is None:
        return json_response(SCHEDULES.page(rows, limit, key, schedule_json))

    async def count() -> int:
        return await schedule_count_upto(
            pool, COUNT_LIMIT, enabled=enabled, definition_key=definition_key
        )

    return json_response(await SCHEDULES.numbered(rows, number, count, key, schedule_json))


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
        await _refuse_owned(conn, current)
        merged = {api: current[col] for api, col in SCHEDULE_COLUMNS.items()}
        if "cron" in body and body["cron"] is not None and "everySeconds" not in body:
            merged["everySeconds"] = None
        if "everySeconds" in body and body["everySeconds"] is not None and "cron" not in body:
            merged["cron"] = None
        merged.update(body)
        for api_name in ("startAt", "expiresAt"):
            if isinstance(merged[api_name], dt.datetime):
                merged[api_name] = merged[api_name].isoformat()
        cols = await _check(request, merged, retimed=bool({"cron", "everySeconds"} & body.keys()))
        changes = {
            SCHEDULE_COLUMNS[k]: cols[SCHEDULE_COLUMNS[k]]
            for k in SCHEDULE_COLUMNS
            if k in body or k in merged
        }
        if TIMING_FIELDS & body.keys():
            changes["next_fire_at"] = _first_fire(cols)
        if body.get("enabled") is True:  # re-enabled: a fresh start for the failure streak
            changes.update(consecutive_failures=0, disabled_reason=None)
        switched_off = body.get("enabled") is False and current["enabled"]
        row = await schedule_update(conn, name, mark_disabled=switched_off, **changes)
    assert row is not None
    return json_response(schedule_json(row))


async def delete_schedule(request: web.Request) -> web.Response:
    name = name_param(request, "schedule")
    async with request.app[POOL_KEY].acquire() as conn, conn.transaction():
        current = await schedule_get(conn, name, lock=True)
        if current is None:
            raise not_found("schedule")
        await _refuse_owned(conn, current)
        await schedule_delete(conn, name)
    return web.Response(status=204)


async def trigger_schedule(request: web.Request) -> web.Response:
    name = name_param(request, "schedule")
    pool = request.app[POOL_KEY]
    async with pool.acquire() as conn, conn.transaction():
        row = await schedule_get(conn, name, lock=True)
        if row is None:
            raise not_found("schedule")
        if row["saved_job_id"] is not None:
            saved = await saved_job_get(conn, row["saved_job_id"])
            if saved is not None and not saved["enabled"]:
                raise ApiError(
                    409,
                    "invalid_state",
                    f"schedule {name!r} is the trigger of saved job {saved['name']!r}, which"
                    " is disabled",
                    extra={"savedJobId": str(saved["id"])},
                )
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
                    row,
                    (info.key, info.version, RECURRING_MAX_ATTEMPTS),
                    SCHEDULE_OWNER,
                    now,
                    info.rate_limit,
                )
            ],
        )
        if not ids:
            raise ApiError(409, "conflict", "triggered twice in the same instant; try again")
        await schedule_jobs_label(conn, ids, row["event"], row["tags"])
        await schedule_mark_fired(
            conn, name, next_fire_at=row["next_fire_at"], last_fire_at=now, last_job_id=ids[0]
        )
    return json_response({"jobId": ids[0], "schedule": name, "scheduledFor": now}, 201)


async def list_schedule_runs(request: web.Request) -> web.Response:
    name = name_param(request, "schedule")
    q = request[QUERY_KEY]
    pool = request.app[POOL_KEY]
    if await schedule_get(pool, name) is None:
        raise not_found("schedule")
    after = RUNS.after(q)
    limit = q.get("limit", 100)
    rows = await schedule_runs_list(
        pool,
        name,
        limit=limit + 1,
        after=None if after is None else (after[0], after[1]),
        statuses=sorted(set(q.get("status", []))),
    )
    return json_response(RUNS.page(rows, limit, lambda r: (r["scheduled_for"], r["id"]), run_json))
