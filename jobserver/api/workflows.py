"""Stored workflow handlers: CRUD with versions, runs, a run's status and its cancel.

Access: `manage_jobs` writes (create, replace, change, delete, run, cancel a run), `view_jobs`
reads. Rows belong to the token's owner; a principal that sees every owner's jobs sees every
workflow (as for saved jobs), another owner's is a 404 otherwise.

- `POST /v1/workflows` (201), `PUT /v1/workflows/{id}` (replaces), `PATCH` (the fields
  given): each write checks every step (`jobserver.core.workflows.check_steps`: names, unknown
  steps, cycles, placeholders) and its job type (known definition; attempts and timeout
  within it; params against its schema when they hold no placeholder), a 422 naming the field
  (`steps[2].dependsOn[0]`). PUT and PATCH make a new version (id kept, `version` + 1).
- `GET /v1/workflows` (by name, keyset-paged), `GET /v1/workflows/{id}` (the latest version),
  `GET /v1/workflows/{id}/versions/{n}`.
- `DELETE /v1/workflows/{id}` (204) is soft: the workflow is gone from reads and its name is
  free, its versions stay, so its runs keep going and stay readable.
- `POST /v1/workflows/{id}/runs` (`inputData`, `priority`, `idempotencyKey`, `retryDelays`
  for every job of its steps): the run row and
  its jobs in one transaction (`jobserver.core.workflow_runs.start_jobs`), answered at once
  (201) `{runId, jobId (the run's job), status, workflowId, version}`; the same key again:
  200, the same run; the same key with another body: 409. The jobs count against the owner's
  queued quota (429) as a batch would.
- `GET /v1/workflows/runs/{runId}`: the run's derived status and each step's status, jobs,
  timings, result or error (a forEach step: its counts by status and its children, in order).
- `GET /v1/workflows/{id}/runs`: its runs, newest first, keyset-paged.
- `POST /v1/workflows/runs/{runId}/cancel`: cancels every unfinished job of the run in one
  statement (`workflow_run_cancel`); 409 when the run had already ended.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.auth import Principal, require_outbound
from jobserver.api.errors import ApiError, not_found
from jobserver.api.jsonio import json_response
from jobserver.api.keys import (
    BODY_KEY,
    DEFINITION_CACHE_KEY,
    POOL_KEY,
    PRINCIPAL_KEY,
    QUERY_KEY,
    SETTINGS_KEY,
)
from jobserver.api.paging import Pager
from jobserver.api.quotas import check_priority, insert_within_quota_on, queued_quota
from jobserver.api.request import uuid_param
from jobserver.core import workflows as wf
from jobserver.core.errors import RuleError
from jobserver.core.idempotency import fingerprint
from jobserver.core.submission import build_job
from jobserver.core.workflow_runs import (
    fingerprint_item,
    plan_entry,
    run_status,
    start_jobs,
    step_status,
)
from jobserver.db import workflows as db
from jobserver.db.jobs import job_insert_many, new_job_id
from jobserver.statuses import TERMINAL_STATUSES

WORKFLOWS = Pager("workflows", ("str", "uuid"))
RUNS = Pager("workflow_runs", ("uuid",))
UTC = dt.UTC


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _by(principal: Principal) -> str:
    return principal.token_name or principal.owner


# -- answers -----------------------------------------------------------------------------------


def workflow_json(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"],
        "owner": r["owner"],
        "name": r["name"],
        "description": r["description"],
        "version": r["version"],
        "steps": r["steps"],
        "createdBy": r["created_by"],
        "updatedBy": r["updated_by"],
        "createdAt": r["created_at"],
        "updatedAt": r["updated_at"],
    }


def version_json(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "workflowId": r["workflow_id"],
        "version": r["version"],
        "name": r["name"],
        "description": r["description"],
        "steps": r["steps"],
        "createdBy": r["created_by"],
        "createdAt": r["created_at"],
    }


def _job_json(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "index": None if r["item"] < 0 else r["item"],
        "jobId": r["job_id"],
        "status": r["status"] or "pruned",
        "attempt": r["attempt"],
        "maxAttempts": r["max_attempts"],
        "createdAt": r["created_at"],
        "startedAt": r["started_at"],
        "finishedAt": r["finished_at"],
        "result": r["result"],
        "error": r["last_error"],
    }


def _step_json(entry: dict[str, Any], rows: list[asyncpg.Record]) -> dict[str, Any]:
    jobs = [r for r in rows if r["kind"] == "step"]
    expander = next((r for r in rows if r["kind"] == "expand"), None)
    for_each = entry.get("forEach") is not None
    if jobs:
        status = step_status([r["status"] for r in jobs], for_each)
    elif expander is not None and expander["status"] in ("failed", "cancelled", "expired"):
        status = expander["status"]  # the step could not be made
    elif expander is not None and expander["status"] == "succeeded":
        status = "succeeded"  # a forEach over an empty list
    else:
        status = "waiting"
    started = [r["started_at"] for r in jobs if r["started_at"] is not None]
    finished = [r["finished_at"] for r in jobs if r["finished_at"] is not None]
    done = status in TERMINAL_STATUSES
    answer: dict[str, Any] = {
        "name": entry["name"],
        "jobType": f"{entry['key']}@{entry['version']}",
        "dependsOn": entry["dependsOn"],
        "status": status,
        "jobId": jobs[0]["job_id"] if jobs and not for_each else None,
        "expanderJobId": expander["job_id"] if expander is not None else None,
        "attempt": jobs[0]["attempt"] if jobs and not for_each else None,
        "startedAt": min(started) if started else None,
        "finishedAt": max(finished) if done and finished else None,
        "result": None,
        "error": None,
        "forEach": None,
    }
    if for_each:
        counts: dict[str, int] = {}
        for r in jobs:
            counts[r["status"] or "pruned"] = counts.get(r["status"] or "pruned", 0) + 1
        answer["forEach"] = {
            "total": len(jobs),
            "counts": counts,
            "jobs": [_job_json(r) for r in jobs],
        }
        answer["result"] = [r["result"] for r in jobs] if status == "succeeded" else None
    elif jobs:
        answer["result"] = jobs[0]["result"]
        answer["error"] = jobs[0]["last_error"]
    if answer["error"] is None and expander is not None and expander["status"] == "failed":
        answer["error"] = expander["last_error"]
    return answer


def run_json(run: asyncpg.Record, rows: list[asyncpg.Record] | None = None) -> dict[str, Any]:
    """A run; with its jobs' rows (`rows`), every step too."""
    started = any(r["started_at"] is not None for r in rows or ())
    answer: dict[str, Any] = {
        "runId": run["id"],
        "jobId": run["job_id"],
        "workflowId": run["workflow_id"],
        "workflowName": run["workflow_name"],
        "version": run["version"],
        "status": run_status(run, started or run["job_started_at"] is not None),
        "owner": run["owner"],
        "priority": run["priority"],
        "inputData": run["input_data"],
        "idempotencyKey": run["idempotency_key"],
        "createdAt": run["created_at"],
        "finishedAt": run["job_finished_at"],
        "cancelledAt": run["cancelled_at"],
        "result": run["job_result"],
        "error": run["job_error"],
    }
    if rows is not None:
        by_step: dict[str, list[asyncpg.Record]] = {}
        for r in rows:
            by_step.setdefault(r["step"], []).append(r)
        answer["steps"] = [_step_json(e, by_step.get(e["name"], [])) for e in run["plan"]]
    return answer


# -- checking a workflow -------------------------------------------------------------------------


class _Templated:
    """A definition's rules with its params check left out (params with placeholders are
    checked once rendered, when the step's job is made)."""

    def __init__(self, info: Any) -> None:
        self.key = info.key
        self.version = info.version
        self.default_max_attempts = info.default_max_attempts
        self.timeout_seconds = info.timeout_seconds
        self.rate_limit = info.rate_limit

    @staticmethod
    def check_params(value: Any) -> None:
        return None


async def _resolve_steps(request: web.Request, steps: list[dict[str, Any]]) -> list[Any]:
    """Each step's definition (RuleError naming `steps[i].jobType`), the steps checked."""
    wf.check_steps(steps)
    principal = request[PRINCIPAL_KEY]
    pool = request.app[POOL_KEY]
    infos = []
    for i, s in enumerate(steps):
        where = f"steps[{i}]"
        key, version = wf.job_type(s["jobType"], f"{where}.jobType")
        try:
            info = await request.app[DEFINITION_CACHE_KEY].resolve(pool, key, version)
        except RuleError as e:
            raise RuleError(f"{where}.jobType", e.message, e.code) from None
        if info.outbound:
            require_outbound(principal, info.key, info.version, where)
        params = s.get("params", {})
        rules = info if not wf.has_placeholders(params) else _Templated(info)
        item: dict[str, Any] = {"params": params}
        attempts = wf.max_attempts_of(s)
        if attempts is not None:
            item["maxAttempts"] = attempts
        if s.get("timeoutSeconds") is not None:
            item["timeoutSeconds"] = s["timeoutSeconds"]
        try:
            build_job(item, None, rules, principal.owner, _now())
        except RuleError as e:
            field = e.field if e.field != "maxAttempts" or "retries" not in s else "retries"
            raise RuleError(f"{where}.{field}", e.message, e.code) from None
        infos.append(info)
    return infos


# -- handlers ----------------------------------------------------------------------------------


async def _visible(request: web.Request, conn: Any = None, *, lock: bool = False) -> asyncpg.Record:
    row = await db.workflow_get(
        conn if conn is not None else request.app[POOL_KEY],
        uuid_param(request),
        request[PRINCIPAL_KEY].owner_filter(),
        lock=lock,
    )
    if row is None:
        raise not_found("workflow")
    return row


def _name_taken(name: str) -> ApiError:
    return ApiError(409, "conflict", f"a workflow named {name!r} already exists", "name")


async def create_workflow(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]
    principal = request[PRINCIPAL_KEY]
    await _resolve_steps(request, body["steps"])
    workflow_id = new_job_id()
    async with request.app[POOL_KEY].acquire() as conn, conn.transaction():
        try:
            await db.workflow_insert(
                conn,
                workflow_id,
                principal.owner,
                _by(principal),
                body["name"],
                body.get("description", ""),
                body["steps"],
            )
        except asyncpg.UniqueViolationError:
            raise _name_taken(body["name"]) from None
        row = await db.workflow_get(conn, workflow_id)
    assert row is not None
    return json_response(workflow_json(row), status=201)


async def list_workflows(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    limit = q.get("limit", 100)
    after = WORKFLOWS.after(q)
    rows = await db.workflow_list(
        request.app[POOL_KEY],
        request[PRINCIPAL_KEY].owner_filter(),
        limit + 1,
        None if after is None else (after[0], after[1]),
    )
    return json_response(WORKFLOWS.page(rows, limit, lambda r: (r["name"], r["id"]), workflow_json))


async def get_workflow(request: web.Request) -> web.Response:
    return json_response(workflow_json(await _visible(request)))


async def get_version(request: web.Request) -> web.Response:
    row = await _visible(request)
    text = request.match_info["version"]
    if not text.isdigit() or len(text) > 9:  # the router's pattern; a version fits an int4
        raise not_found("workflow version")
    version = await db.workflow_version_get(request.app[POOL_KEY], row["id"], int(text))
    if version is None:
        raise not_found("workflow version")
    return json_response(version_json(version))


async def replace_workflow(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]
    return await _update(request, lambda current: {"description": "", **body})


async def patch_workflow(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]

    def merged(current: asyncpg.Record) -> dict[str, Any]:
        values = {
            "name": current["name"],
            "description": current["description"],
            "steps": current["steps"],
        }
        values.update(body)
        return values

    return await _update(request, merged)


async def _update(
    request: web.Request, values_of: Callable[[asyncpg.Record], dict[str, Any]]
) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    async with request.app[POOL_KEY].acquire() as conn, conn.transaction():
        current = await _visible(request, conn, lock=True)
        values = values_of(current)
        await _resolve_steps(request, values["steps"])
        try:
            await db.workflow_update(
                conn,
                current["id"],
                _by(principal),
                values["name"],
                values["description"],
                values["steps"],
            )
        except asyncpg.UniqueViolationError:
            raise _name_taken(values["name"]) from None
        row = await db.workflow_get(conn, current["id"])
    assert row is not None
    return json_response(workflow_json(row))


async def delete_workflow(request: web.Request) -> web.Response:
    async with request.app[POOL_KEY].acquire() as conn, conn.transaction():
        current = await _visible(request, conn, lock=True)
        await db.workflow_delete(conn, current["id"])
    return web.Response(status=204)


async def start_run(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]
    principal = request[PRINCIPAL_KEY]
    settings = request.app[SETTINGS_KEY]
    pool = request.app[POOL_KEY]
    check_priority(principal, settings, body)
    workflow = await _visible(request)
    key = body.get("idempotencyKey")
    print_ = fingerprint(fingerprint_item(workflow["id"], body)) if key is not None else None
    owner = principal.owner
    if key is not None and (repeat := await _repeat(pool, owner, key, print_)) is not None:
        return repeat
    steps: list[dict[str, Any]] = workflow["steps"]
    infos = await _resolve_steps(request, steps)
    delays = body.get("retryDelays")
    plan_by_name = {s["name"]: plan_entry(s, i, delays) for s, i in zip(steps, infos, strict=True)}
    plan = [plan_by_name[n] for n in wf.order(steps)]
    rules = {s["name"]: i for s, i in zip(steps, infos, strict=True)}
    index = {s["name"]: i for i, s in enumerate(steps)}
    run_id, run_job_id = new_job_id(), new_job_id()
    priority = int(body.get("priority", 0))
    try:
        start = start_jobs(
            plan, rules, body.get("inputData"), run_id, run_job_id, owner, priority, _now()
        )
    except RuleError as e:
        raise _at_step(e, plan, index) from None
    quota = queued_quota(principal, settings)
    async with pool.acquire() as conn, conn.transaction():
        inserted = await db.workflow_run_insert(
            conn,
            id=run_id,
            workflow_id=workflow["id"],
            version=workflow["version"],
            owner=owner,
            input_data=body.get("inputData"),
            priority=priority,
            plan=plan,
            job_id=run_job_id,
            idempotency_key=key,
            request_fingerprint=print_,
            created_by=_by(principal),
        )
        if not inserted:
            assert key is not None
            repeat = await _repeat(conn, owner, key, print_)
            assert repeat is not None
            return repeat
        if quota is not None:
            await insert_within_quota_on(conn, start.jobs, owner, quota)
        else:
            await job_insert_many(conn, start.jobs)
        await db.workflow_run_jobs_insert(conn, run_id, start.rows)
    return json_response(
        {
            "runId": run_id,
            "jobId": run_job_id,
            "workflowId": workflow["id"],
            "version": workflow["version"],
            "status": "pending",
        },
        status=201,
    )


def _at_step(e: RuleError, plan: list[dict[str, Any]], index: dict[str, int]) -> RuleError:
    """A rendering error of `start_jobs` (which numbers steps in run order) named as the
    workflow numbers them; an input path that is missing names inputData."""
    field = e.field
    if field.startswith("steps["):
        i = int(field[6 : field.index("]")])
        field = f"steps[{index[plan[i]['name']]}]" + field[field.index("]") + 1 :]
    if "missing" in e.message and "input" in e.message:
        field = "inputData"
    return RuleError(field, e.message, e.code)


async def _repeat(conn: Any, owner: str, key: str, print_: str | None) -> web.Response | None:
    found = await db.workflow_run_by_key(conn, owner, key)
    if found is None:
        return None
    if found["request_fingerprint"] != print_:
        raise ApiError(
            409,
            "idempotency_conflict",
            f"idempotencyKey {key!r} was already used with a different request body",
            "idempotencyKey",
        )
    return json_response(
        {
            "runId": found["id"],
            "jobId": found["job_id"],
            "workflowId": found["workflow_id"],
            "version": found["version"],
            "status": run_status(found, found["job_started_at"] is not None),
        },
        status=200,
    )


async def _visible_run(request: web.Request) -> asyncpg.Record:
    run = await db.workflow_run_get(
        request.app[POOL_KEY],
        uuid_param(request, "runId"),
        request[PRINCIPAL_KEY].owner_filter(),
    )
    if run is None:
        raise not_found("workflow run")
    return run


async def get_run(request: web.Request) -> web.Response:
    run = await _visible_run(request)
    rows = await db.workflow_run_steps(request.app[POOL_KEY], run["id"])
    return json_response(run_json(run, rows))


async def list_runs(request: web.Request) -> web.Response:
    workflow = await _visible(request)
    q = request[QUERY_KEY]
    after = RUNS.after(q)
    limit = q.get("limit", 100)
    rows = await db.workflow_run_list(
        request.app[POOL_KEY], workflow["id"], limit + 1, None if after is None else after[0]
    )
    return json_response(RUNS.page(rows, limit, lambda r: (r["id"],), run_json))


async def cancel_run(request: web.Request) -> web.Response:
    run = await _visible_run(request)
    if run["job_status"] in TERMINAL_STATUSES:
        raise ApiError(
            409,
            "invalid_state",
            f"the run already ended ({run_status(run, True)})",
            extra={"runStatus": run_status(run, True)},
        )
    pool = request.app[POOL_KEY]
    async with pool.acquire() as conn, conn.transaction():
        await db.workflow_run_cancel(conn, run["id"])
    run = await _visible_run(request)
    rows = await db.workflow_run_steps(pool, run["id"])
    return json_response(run_json(run, rows))
