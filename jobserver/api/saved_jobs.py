"""Saved job handlers: CRUD, execute, executions and retrying one execution.

A saved job is a named, reusable job configuration (see `jobserver.core.saved_jobs`). Access:
any token manages its own saved jobs (another owner's is a 404, never a 403); `view_jobs` reads
every one; `manage_jobs` also changes, executes and deletes every one (a `view_jobs` token
acting on another owner's gets a 403). A saved job of a definition that calls out (`outbound`)
needs the outbound capability to be created or changed *and* to be executed or retried, as
for `POST /v1/jobs`.

- `POST /v1/saved-jobs` (201), `PUT` (replaces: a field left out takes its default),
  `PATCH` (changes the fields given; `cron` or `everySeconds` alone switches the trigger,
  both null removes it): every write checks the saved job like a submission
  (`jobserver.core.submission.build_job`: the params schema, `check_params` and its
  templating check, attempts and timeout within the definition's) and its trigger like a
  schedule (cron, timezone, MIN_EVERY..MAX_EVERY), a 422 naming the field, nothing written. A
  name the owner already uses is a 409 naming `name`; past OWNER_MAX_SAVED_JOBS a 429.
  The trigger's schedule is created, rewritten or deleted in the same transaction.
- `GET /v1/saved-jobs` (filters `enabled`, `tag`, `definitionKey`, `q`: text in the name),
  paged by (name, id), or by page number. `GET /v1/saved-jobs/{id}` shows one with its
  trigger's state (`schedule`).
- `DELETE /v1/saved-jobs/{id}` (204) deletes its schedule too; its jobs stay, and keep its id in
  `savedJobId` as a plain reference (deleting never rewrites jobs; ids are never reused).
- `POST /v1/saved-jobs/{id}/execute` (201, the job): a job now, `params` of the body
  deep-merged over the saved ones; 409 when the saved job is disabled. The job belongs to the
  saved job's owner, counts against that owner's queued quota when the owner executes it
  (429), and gets DEFAULT_EXPIRES_DURATION like any submission.
- `GET /v1/saved-jobs/{id}/executions`: its jobs newest first (`trigger` manual, schedule or
  retry), `status` filter, keyset-paged by job id.
- `POST /v1/saved-jobs/{id}/executions/{jobId}/retry` (201, the job): a new job from that
  execution (its params, definition version, attempts, timeout, retry delays, labels),
  `retryOf` = the execution; 409 while it is queued or running, or when the saved job is
  disabled.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.auth import Principal, require_outbound
from jobserver.api.errors import ApiError, invalid, not_found
from jobserver.api.jsonio import json_response
from jobserver.api.keys import (
    BODY_KEY,
    DEFINITION_CACHE_KEY,
    GROUP_COMMIT_KEY,
    POOL_KEY,
    PRINCIPAL_KEY,
    QUERY_KEY,
    SETTINGS_KEY,
)
from jobserver.api.paging import COUNT_LIMIT, Pager, page_number
from jobserver.api.quotas import insert_within_quota, queued_quota
from jobserver.api.reference_checks import check_references, check_rerun
from jobserver.api.request import uuid_param
from jobserver.api.views import new_job_json, shown_params
from jobserver.core.retry_delays import shown_delays, stored_delays
from jobserver.core.saved_jobs import (
    DEFAULTS,
    FIELDS,
    has_trigger,
    merge_params,
    owned_schedule_columns,
    retried_job,
    schedule_name_for,
    submission_of,
)
from jobserver.core.submission import build_job
from jobserver.db.conn import Conn, ConnOrPool
from jobserver.db.jobs import NewJob, new_job_id
from jobserver.db.saved_jobs import (
    SavedJobsExceeded,
    saved_job_count_upto,
    saved_job_delete,
    saved_job_execution_get,
    saved_job_executions,
    saved_job_get,
    saved_job_insert,
    saved_job_list,
    saved_job_update,
)
from jobserver.db.schedules import (
    schedule_delete,
    schedule_get_owned,
    schedule_insert,
    schedule_update,
)
from jobserver.owners import INTERNAL_PREFIX
from jobserver.scheduler.firetimes import Timing, TimingError, check_frequency, first_fire_at
from jobserver.scheduler.firetimes import validate_timing as check_timing
from jobserver.statuses import TERMINAL_STATUSES

UTC = dt.UTC
SAVED_JOBS = Pager("saved_jobs", ("str", "uuid"))
EXECUTIONS = Pager("saved_job_executions", ("uuid",))
UNFINISHED = ("queued", "running", "cancelling")


# -- answers ---------------------------------------------------------------------------------


def saved_job_json(r: asyncpg.Record) -> dict[str, Any]:
    schedule = None
    if r["schedule_name"] is not None:
        schedule = {
            "name": r["schedule_name"],
            "enabled": r["schedule_enabled"],
            "nextFireAt": r["next_fire_at"],
            "lastFireAt": r["last_fire_at"],
            "lastJobId": r["last_job_id"],
            "consecutiveFailures": r["consecutive_failures"],
            "disabledReason": r["disabled_reason"],
            "disabledAt": r["disabled_at"],
        }
    return {
        "id": r["id"],
        "owner": r["owner"],
        "name": r["name"],
        "description": r["description"],
        "definitionKey": r["definition_key"],
        "definitionVersion": r["definition_version"],
        "params": shown_params(r["definition_key"], r["definition_version"], r["params"]),
        "enabled": r["enabled"],
        "tags": r["tags"],
        "maxAttempts": r["max_attempts"],
        "timeoutSeconds": r["timeout_seconds"],
        "retryDelays": shown_delays(r["retry_delays"]),
        "rateLimit": r["rate_limit"],
        "cron": r["cron"],
        "everySeconds": r["every_seconds"],
        "timezone": r["timezone"],
        "schedule": schedule,
        "createdBy": r["created_by"],
        "updatedBy": r["updated_by"],
        "createdAt": r["created_at"],
        "updatedAt": r["updated_at"],
    }


def execution_json(r: asyncpg.Record) -> dict[str, Any]:
    started, finished = r["started_at"], r["finished_at"]
    terminal = r["status"] in TERMINAL_STATUSES
    if r["retry_of"] is not None:
        trigger = "retry"
    elif r["schedule_name"] is not None:
        trigger = "schedule"
    else:
        trigger = "manual"
    return {
        "jobId": r["id"],
        "status": r["status"],
        "trigger": trigger,
        "retryOf": r["retry_of"],
        "scheduledFor": r["scheduled_for"] if r["schedule_name"] is not None else None,
        "createdAt": r["created_at"],
        "startedAt": started,
        "finishedAt": finished,
        "durationMs": (
            round((finished - started).total_seconds() * 1000, 3)
            if terminal and started is not None and finished is not None
            else None
        ),
        "attempt": r["attempt"],
        "maxAttempts": r["max_attempts"],
        "result": r["result"],
        "lastError": r["last_error"],
    }


# -- who may see and change what ---------------------------------------------------------------


def _by(principal: Principal) -> str:
    """Who made a change, as createdBy/updatedBy show it: the token's name, else its owner."""
    return principal.token_name or principal.owner


async def _visible(
    request: web.Request, conn: ConnOrPool | None = None, *, lock: bool = False
) -> asyncpg.Record:
    """The saved job in the path if this principal may see it, else 404."""
    row = await saved_job_get(
        conn if conn is not None else request.app[POOL_KEY],
        uuid_param(request),
        owner=request[PRINCIPAL_KEY].owner_filter(),
        lock=lock,
    )
    if row is None:
        raise not_found("saved job")
    return row


def _may_change(principal: Principal, row: asyncpg.Record) -> None:
    if row["owner"] != principal.owner and not principal.can_manage:
        raise ApiError(403, "forbidden", "acting on another owner's saved job needs manage_jobs")


def _enabled(row: asyncpg.Record) -> None:
    if not row["enabled"]:
        raise ApiError(
            409,
            "invalid_state",
            f"saved job {row['name']!r} is disabled: enable it to run it",
            extra={"savedJobId": str(row["id"])},
        )


# -- checking a saved job ----------------------------------------------------------------------


async def _checked(
    request: web.Request, values: dict[str, Any], owner: str, *, retimed: bool
) -> dict[str, Any]:
    """A complete set of API fields checked like a submission (and its trigger like a
    schedule's; MIN_EVERY/MAX_EVERY when `retimed`); returns them as columns."""
    cols: dict[str, Any] = {col: values.get(api) for api, col in FIELDS.items()}
    if cols["cron"] is not None and cols["every_seconds"] is not None:
        raise invalid("cron", "give cron or everySeconds, not both")
    if has_trigger(cols):
        timing = Timing(cols["cron"], cols["every_seconds"], cols["timezone"] or "UTC")
        settings = request.app[SETTINGS_KEY]
        try:
            check_timing(timing)
            if retimed:
                check_frequency(timing, settings.min_every, settings.max_every, _now())
        except TimingError as e:
            raise invalid(e.field, str(e)) from None
    principal = request[PRINCIPAL_KEY]
    info = await request.app[DEFINITION_CACHE_KEY].resolve(
        request.app[POOL_KEY], cols["definition_key"], cols["definition_version"]
    )
    if info.outbound:
        require_outbound(principal, info.key, info.version)
    if cols["params"] is None:  # null (or left out): no params
        cols["params"] = {}
    build_job(submission_of(cols, cols["params"]), None, info, owner, _now())
    await check_references(request.app[POOL_KEY], principal, info, cols["params"])
    cols["retry_delays"] = stored_delays(cols["retry_delays"])
    if cols["tags"] == []:
        cols["tags"] = None
    return cols


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


async def _sync_schedule(
    conn: Conn, saved_job_id: uuid.UUID, owner: str, cols: dict[str, Any], *, enabled_given: bool
) -> None:
    """Create, rewrite or delete the schedule the saved job's trigger owns (caller's
    transaction). The schedule is enabled with the saved job; one its failures disabled stays
    off until a write gives `enabled: true`."""
    current = await schedule_get_owned(conn, saved_job_id, lock=True)
    if not has_trigger(cols):
        if current is not None:
            await schedule_delete(conn, current["name"])
        return
    values = owned_schedule_columns(cols, saved_job_id, owner)
    timing = Timing(values["cron"], values["every_seconds"], values["timezone"])
    if current is None:
        values["enabled"] = cols["enabled"]
        values["next_fire_at"] = first_fire_at(timing, _now()) if cols["enabled"] else None
        await schedule_insert(conn, schedule_name_for(saved_job_id), **values)
        return
    enabled = cols["enabled"] if enabled_given else cols["enabled"] and current["enabled"]
    retimed = (current["cron"], current["every_seconds"], current["timezone"]) != (
        timing.cron,
        timing.every_seconds,
        timing.timezone,
    )
    values["enabled"] = enabled
    if not enabled:
        values["next_fire_at"] = None
    elif retimed or not current["enabled"] or current["next_fire_at"] is None:
        values["next_fire_at"] = first_fire_at(timing, _now())
    if enabled and not current["enabled"]:  # re-enabled: a fresh start for the failure streak
        values.update(consecutive_failures=0, disabled_reason=None)
    await schedule_update(
        conn, current["name"], mark_disabled=current["enabled"] and not enabled, **values
    )


def _name_taken(name: str) -> ApiError:
    return ApiError(409, "conflict", f"a saved job named {name!r} already exists", "name")


# -- handlers ----------------------------------------------------------------------------------


async def create_saved_job(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]
    principal = request[PRINCIPAL_KEY]
    settings = request.app[SETTINGS_KEY]
    owner = principal.owner
    cols = await _checked(request, {**DEFAULTS, **body}, owner, retimed=True)
    cap = settings.owner_max_saved_jobs or None
    if owner.startswith(INTERNAL_PREFIX):
        cap = None
    saved_job_id = new_job_id()  # time-ordered, like job ids
    async with request.app[POOL_KEY].acquire() as conn, conn.transaction():
        try:
            await saved_job_insert(
                conn, saved_job_id, owner, _by(principal), max_per_owner=cap, **cols
            )
        except asyncpg.UniqueViolationError:
            raise _name_taken(cols["name"]) from None
        except SavedJobsExceeded as e:
            raise ApiError(
                429,
                "quota_exceeded",
                f"owner {owner!r} keeps {e.count} saved jobs, the most it may"
                " (OWNER_MAX_SAVED_JOBS)",
                None,
                {"maxSavedJobs": cap},
            ) from None
        await _sync_schedule(conn, saved_job_id, owner, cols, enabled_given=True)
        row = await saved_job_get(conn, saved_job_id)
    assert row is not None
    return json_response(saved_job_json(row), status=201)


async def list_saved_jobs(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    limit = q.get("limit", 100)
    number = page_number(q, limit)
    after = SAVED_JOBS.after(q)
    pool = request.app[POOL_KEY]
    filters: dict[str, Any] = {
        "owner": request[PRINCIPAL_KEY].owner_filter(),
        "enabled": q.get("enabled"),
        "tags": sorted(set(q.get("tag", []))),
        "definition_key": q.get("definitionKey"),
        "q": q.get("q"),
    }
    rows = await saved_job_list(
        pool,
        limit=limit + 1,
        after=None if after is None else (after[0], after[1]),
        offset=0 if number is None else number.offset,
        **filters,
    )

    def key(r: Any) -> tuple[Any, ...]:
        return (r["name"], r["id"])

    if number is None:
        return json_response(SAVED_JOBS.page(rows, limit, key, saved_job_json))

    async def count() -> int:
        return await saved_job_count_upto(pool, COUNT_LIMIT, **filters)

    return json_response(await SAVED_JOBS.numbered(rows, number, count, key, saved_job_json))


async def get_saved_job(request: web.Request) -> web.Response:
    return json_response(saved_job_json(await _visible(request)))


async def replace_saved_job(request: web.Request) -> web.Response:
    """PUT: the body replaces the saved job (fields left out take their defaults)."""
    body: dict[str, Any] = request[BODY_KEY]
    return await _update(request, lambda current: {**DEFAULTS, **body}, body)


async def patch_saved_job(request: web.Request) -> web.Response:
    """PATCH: the fields given replace the saved job's; `cron` alone drops `everySeconds`
    and the reverse (the trigger switches), as for schedules."""
    body: dict[str, Any] = request[BODY_KEY]

    def merged(current: asyncpg.Record) -> dict[str, Any]:
        values = {api: current[col] for api, col in FIELDS.items()}
        if body.get("cron") is not None and "everySeconds" not in body:
            values["everySeconds"] = None
        if body.get("everySeconds") is not None and "cron" not in body:
            values["cron"] = None
        values.update(body)
        return values

    return await _update(request, merged, body)


async def _update(
    request: web.Request,
    values_of: Callable[[asyncpg.Record], dict[str, Any]],
    body: dict[str, Any],
) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    async with request.app[POOL_KEY].acquire() as conn, conn.transaction():
        current = await _visible(request, conn, lock=True)
        _may_change(principal, current)
        owner = current["owner"]
        retimed = bool({"cron", "everySeconds"} & body.keys())
        cols = await _checked(request, values_of(current), owner, retimed=retimed)
        try:
            await saved_job_update(conn, current["id"], _by(principal), **cols)
        except asyncpg.UniqueViolationError:
            raise _name_taken(cols["name"]) from None
        await _sync_schedule(conn, current["id"], owner, cols, enabled_given="enabled" in body)
        row = await saved_job_get(conn, current["id"])
    assert row is not None
    return json_response(saved_job_json(row))


async def delete_saved_job(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    async with request.app[POOL_KEY].acquire() as conn, conn.transaction():
        current = await _visible(request, conn, lock=True)
        _may_change(principal, current)
        await saved_job_delete(conn, current["id"])
    return web.Response(status=204)


async def execute_saved_job(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    pool = request.app[POOL_KEY]
    saved = await _visible(request)
    _may_change(principal, saved)
    _enabled(saved)
    info = await request.app[DEFINITION_CACHE_KEY].resolve(
        pool, saved["definition_key"], saved["definition_version"]
    )
    if info.outbound:
        require_outbound(principal, info.key, info.version)
    body: dict[str, Any] = request[BODY_KEY]
    params = saved["params"]
    if "params" in body:
        params = merge_params(params, body["params"])
    item = submission_of(saved, params)
    settings = request.app[SETTINGS_KEY]
    job = build_job(item, None, info, saved["owner"], _now(), None, settings.default_expires)
    await check_references(pool, principal, info, job.params)
    job.saved_job_id = saved["id"]
    return await _insert(request, job)


async def list_executions(request: web.Request) -> web.Response:
    saved = await _visible(request)
    q = request[QUERY_KEY]
    after = EXECUTIONS.after(q)
    limit = q.get("limit", 100)
    rows = await saved_job_executions(
        request.app[POOL_KEY],
        saved["id"],
        limit=limit + 1,
        before=None if after is None else after[0],
        statuses=sorted(set(q.get("status", []))),
    )
    return json_response(EXECUTIONS.page(rows, limit, lambda r: (r["id"],), execution_json))


async def retry_execution(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    pool = request.app[POOL_KEY]
    saved = await _visible(request)
    _may_change(principal, saved)
    _enabled(saved)
    execution = await saved_job_execution_get(pool, saved["id"], uuid_param(request, "jobId"))
    if execution is None:
        raise not_found("execution")
    if execution["status"] in UNFINISHED:
        raise ApiError(
            409,
            "invalid_state",
            f"execution {execution['id']} is still {execution['status']}: retry it once it ends",
            extra={"jobStatus": execution["status"]},
        )
    info = await request.app[DEFINITION_CACHE_KEY].resolve(
        pool, execution["definition_key"], execution["definition_version"]
    )
    await check_rerun(pool, principal, info, execution["params"])
    return await _insert(request, retried_job(execution))


async def _insert(request: web.Request, job: NewJob) -> web.Response:
    """Insert one job made from a saved job: within the owner's queued quota when the owner
    itself asks (429 past it), else through the group committer."""
    principal = request[PRINCIPAL_KEY]
    pool = request.app[POOL_KEY]
    quota = None
    if principal.owner == job.owner:
        quota = queued_quota(principal, request.app[SETTINGS_KEY])
    if quota is not None:
        [(created_at, run_at)] = await insert_within_quota(pool, [job], job.owner, quota)
    else:
        created_at, run_at = await request.app[GROUP_COMMIT_KEY].submit(pool, job)
    return json_response(new_job_json(job, created_at, run_at), status=201)
