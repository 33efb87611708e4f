"""Job handlers that act on a stored job: retry it, clone it, delete it.

Access, as for cancel: a plain token acts on its own jobs (another owner's is a 404, never a
403); `manage_jobs` on every job; a `view_jobs` token sees every job but acting on another
owner's retry or delete is a 403. A clone is a new submission of the caller's, so whoever may
see a job may clone it. A definition that calls out (`outbound`) needs the outbound capability
to be retried or cloned, as to be submitted.

- `POST /v1/jobs/{id}/retry` (optional body `{"delaySeconds"}`; 201, the new job): a failed,
  cancelled or expired job runs again as a new job of the same owner
  (`jobserver.core.reruns.retry_of_job`), now or after the delay, linked both ways: the new
  job's `retriedFrom`, the old job's `retriedAs`. Its params are checked against the
  definition again (and the credentials and stored things they name). One transaction locks
  the old job, inserts the new one (within the owner's queued quota when the owner itself
  asks: 429 past it), links them and writes a `retried` event on each. A job is retried once:
  a second retry is a 409 naming the first (`retriedAs`): retry the retry to go on. A failed
  job's dead-letter row is settled by the retry (marked redriven by the new job), and one a
  redrive settled already is a 409 naming the redriven job: either way a failure is run
  again once, whichever route asks. A link to a job deleted since does not count. A job
  still live (queued, running, cancelling) or succeeded is a 409 (`jobStatus`). DLQ redrive
  (`POST /v1/dlq/{id}/retry`) is unchanged. A job with parents (`dependsOn`) is retried with
  the same parents (waiting again until they succeed; a parent that failed cancels it again
  at once under the 'cancel' policy; a parent pruned since is a 409). Dependents of the old
  job that were cancelled because of it are NOT revived: the retry has no dependents.
- `POST /v1/jobs/{id}/clone` (optional body: `params` deep-merged over the template's,
  `queue`, `priority`, `delaySeconds`, `expiresIn`; 201, the new job): a job of any status
  as the template of a new submission by the caller (`jobserver.core.reruns.clone_submission`),
  checked as `POST /v1/jobs` checks one (the submission schema, the definition's params
  schema and `check_params`, attempts and timeout within the definition's, the priority bound,
  references, the capability, the queued quota) and linked by `clonedFrom`. The clone keeps
  the template's parents (`dependsOn`, `onParentFailure`) and name.
- `DELETE /v1/jobs/{id}` (204): a terminal job is removed with its events, attempts and blobs
  (their foreign keys cascade; a blob's bytes go with its row). A live job is a 409. A failed
  job whose dead-letter row still waits (not redriven) is a 409 too, unless `?force=true` from
  a `manage_jobs` token, which discards that row with the job; a row already redriven stays as
  the record of the redrive.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.auth import Principal, require_outbound
from jobserver.api.errors import ApiError, not_found
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
from jobserver.api.parents import check_parents, unknown_parent
from jobserver.api.quotas import check_priority, insert_within_quota_on, queued_quota
from jobserver.api.reference_checks import check_references, check_rerun
from jobserver.api.request import uuid_param
from jobserver.api.schemas import JOB_SUBMISSION
from jobserver.api.views import new_job_json
from jobserver.core.errors import RuleError, format_path
from jobserver.core.reruns import clone_submission, retry_of_job
from jobserver.core.submission import build_job
from jobserver.db.conn import Conn
from jobserver.db.dependencies import UnknownParent
from jobserver.db.dlq import dlq_delete, dlq_get, dlq_mark_redriven
from jobserver.db.events import job_events_insert
from jobserver.db.job_links import job_delete, job_exists, job_lock, job_mark_retried
from jobserver.db.jobs import job_get, job_insert_times
from jobserver.statuses import RETRIABLE_STATUSES, TERMINAL_STATUSES
from jobserver.validation import compile_schema

UTC = dt.UTC
_CHECK_SUBMISSION = compile_schema(JOB_SUBMISSION)


async def _visible(request: web.Request) -> asyncpg.Record:
    """The job in the path if this principal may see it, else 404."""
    row = await job_get(
        request.app[POOL_KEY], uuid_param(request), request[PRINCIPAL_KEY].owner_filter()
    )
    if row is None:
        raise not_found("job")
    return row


def _may_act(principal: Principal, row: asyncpg.Record, action: str) -> None:
    if row["owner"] != principal.owner and not principal.can_manage:
        raise ApiError(403, "forbidden", f"{action} another owner's job needs manage_jobs")


_RETRIABLE = "retried: only a failed, cancelled or expired job can be"
_DELETABLE = "deleted: only a finished (succeeded, failed, cancelled or expired) job can be"


def _state(row: asyncpg.Record, allowed: tuple[str, ...], refusal: str) -> None:
    status = row["status"]
    if status not in allowed:
        raise ApiError(
            409,
            "invalid_state",
            f"job {row['id']} is {status} and cannot be {refusal}",
            extra={"jobStatus": status},
        )


def _not_broadcast(row: asyncpg.Record, action: str) -> None:
    """A broadcast parent is not re-run by a copy (the copy would wait on the old children
    and run once, on any worker): submitting it again broadcasts to the workers of now."""
    if row["broadcast"]:
        raise ApiError(
            409,
            "invalid_state",
            f"job {row['id']} is a broadcast job and cannot be {action}: submit it again",
            extra={"jobStatus": row["status"]},
        )


def _already_retried(by: Any, how: str) -> ApiError:
    return ApiError(
        409,
        "invalid_state",
        f"job was already {how} as job {by}: retry that one instead",
        extra={"retriedAs": str(by)},
    )


# -- retry -------------------------------------------------------------------------------------


async def retry_job(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    pool = request.app[POOL_KEY]
    settings = request.app[SETTINGS_KEY]
    row = await _visible(request)
    _may_act(principal, row, "retrying")
    _state(row, RETRIABLE_STATUSES, _RETRIABLE)
    _not_broadcast(row, "retried")
    info = await request.app[DEFINITION_CACHE_KEY].resolve(
        pool, row["definition_key"], row["definition_version"]
    )
    await check_rerun(pool, principal, info, row["params"])
    job = retry_of_job(row, request[BODY_KEY], dt.datetime.now(UTC), settings.default_expires)
    quota = queued_quota(principal, settings) if principal.owner == job.owner else None
    async with pool.acquire() as conn, conn.transaction():
        current = await job_lock(conn, row["id"])
        if current is None:
            raise not_found("job")  # deleted meanwhile
        _state(current, RETRIABLE_STATUSES, _RETRIABLE)
        if current["retried_as"] is not None and await job_exists(conn, current["retried_as"]):
            raise _already_retried(current["retried_as"], "retried")
        dead = await dlq_get(conn, current["id"], lock=True)
        if dead is not None and dead["redriven_at"] is not None:
            if await job_exists(conn, dead["redriven_job_id"]):
                raise _already_retried(dead["redriven_job_id"], "redriven")
            dead = None  # its redrive is gone: the row stays as it is
        try:
            if quota is not None:
                [(created_at, run_at)] = await insert_within_quota_on(conn, [job], job.owner, quota)
            else:
                [(created_at, run_at)] = await job_insert_times(conn, [job])
        except UnknownParent as err:
            raise ApiError(
                409,
                "invalid_state",
                f"job {row['id']} waits for job {err.parent_id}, which no longer exists",
                extra={"jobStatus": row["status"]},
            ) from None
        await job_mark_retried(conn, current["id"], job.id)
        if dead is not None:
            await dlq_mark_redriven(conn, dead["id"], job.id)
        await job_events_insert(
            conn,
            [
                (current["id"], "retried", None, None, {"retriedAs": str(job.id)}),
                (job.id, "retried", None, None, {"retriedFrom": str(current["id"])}),
            ],
        )
    return json_response(new_job_json(job, created_at, run_at), status=201)


# -- clone -------------------------------------------------------------------------------------


async def clone_job(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    pool = request.app[POOL_KEY]
    settings = request.app[SETTINGS_KEY]
    row = await _visible(request)
    _not_broadcast(row, "cloned")
    info = await request.app[DEFINITION_CACHE_KEY].resolve(
        pool, row["definition_key"], row["definition_version"]
    )
    item = clone_submission(row, request[BODY_KEY], info.rate_limit)
    failure = _CHECK_SUBMISSION(item)
    if failure is not None:
        raise RuleError(format_path(failure[0]), failure[1])
    check_priority(principal, settings, item)
    if info.outbound:
        require_outbound(principal, info.key, info.version)
    job = build_job(
        item, None, info, principal.owner, dt.datetime.now(UTC), None, settings.default_expires
    )
    job.cloned_from = row["id"]
    await check_references(pool, principal, info, job.params)
    if job.depends_on:
        await check_parents(pool, principal, [job], batch=False)
    quota = queued_quota(principal, settings)
    try:
        if quota is not None:
            async with pool.acquire() as conn:
                [(created_at, run_at)] = await insert_within_quota_on(conn, [job], job.owner, quota)
        elif job.depends_on:  # its own transaction: a missing parent fails it alone
            [(created_at, run_at)] = await job_insert_times(pool, [job])
        else:
            created_at, run_at = await request.app[GROUP_COMMIT_KEY].submit(pool, job)
    except UnknownParent as err:
        raise unknown_parent(err) from None
    return json_response(new_job_json(job, created_at, run_at), status=201)


# -- delete ------------------------------------------------------------------------------------


async def delete_job(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    force = bool(request[QUERY_KEY].get("force", False))
    if force and not principal.can_manage:
        raise ApiError(403, "forbidden", "force needs manage_jobs", "force")
    async with request.app[POOL_KEY].acquire() as conn, conn.transaction():
        row = await job_lock(conn, uuid_param(request), principal.owner_filter())
        if row is None:
            raise not_found("job")
        _may_act(principal, row, "deleting")
        _state(row, TERMINAL_STATUSES, _DELETABLE)
        await _settle_dead_letter(conn, row, force)
        await job_delete(conn, row["id"])
    return web.Response(status=204)


async def _settle_dead_letter(conn: Conn, row: asyncpg.Record, force: bool) -> None:
    """A waiting dead-letter row blocks the delete (409) unless `force` discards it."""
    dead = await dlq_get(conn, row["id"], lock=True)
    if dead is None or dead["redriven_at"] is not None:
        return
    if not force:
        raise ApiError(
            409,
            "invalid_state",
            "job waits in the dead-letter queue: redrive or discard it first, or delete with"
            " ?force=true (manage_jobs) to discard it too",
            extra={"dlqId": str(dead["id"])},
        )
    await dlq_delete(conn, dead["id"])
