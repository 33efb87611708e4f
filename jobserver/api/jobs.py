"""Job handlers: submit (single and batch), read, list, count, cancel, events and attempts.
(Retry, clone and delete: `job_actions.py`.)

One job's answer adds its place in its queue (`queuePosition`, null unless queued: see
`jobserver.db.job_counts`; lists leave it out, it costs a walk of the queue per job). A list
answers, beside its page, `pendingCount` and `runningCount`: the queued and the running (or
cancelling) jobs its filter matches, each reading at most 10,001 rows of those statuses whatever
the filter (exact while there are no more, the planner's estimate beyond: `countsAreEstimates`;
see `jobserver.db.job_counts`). `since` is `createdAfter`'s other name.

Access: any valid token submits, and reads/cancels its own jobs (another owner's job is 404,
never 403, so its existence is not revealed); `view_jobs` reads every job; `manage_jobs` also
cancels every job. A definition that calls out (`outbound`) is submitted only by tokens with
the outbound capability (403 naming it otherwise). Priorities above MAX_PRIORITY_PLAIN need
manage_jobs, and an owner with a queued-jobs quota is refused past it (429 quota_exceeded):
see quotas.py.

A submission is checked against its schema by the request pipeline, then turned into a job by
`jobserver.core.submission.build_job` (the definition's params schema, run/expiry rules,
defaults, idempotency fingerprint) and written with one statement (`job_insert_many`: jobs +
one NOTIFY; the `created` event is derived from the row), so a batch of 1000 is one round trip
and all-or-none. Single submissions go through the app's `GroupCommitter`: concurrent requests
share one statement and one commit, and each is answered once its row is committed (see
group_commit.py); the answer is built from what was inserted, not read back. Idempotency keys
are unique per owner; a repeat with the same body returns the stored job (200), a different
body 409. Concurrent repeats race on the unique index: the loser re-reads the winner's job.
What only the database can tell (a definition's `check_stored` hook: a mail's template
exists) is checked after `build_job`, before anything is written (`stored_checks.py`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.auth import require_outbound
from jobserver.api.credential_refs import check_credential_refs
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
from jobserver.api.paging import COUNT_LIMIT, Kind, Pager, page_number
from jobserver.api.parents import check_parents, unknown_parent
from jobserver.api.quotas import check_priority, insert_within_quota, queued_quota
from jobserver.api.read_replica import read_pool
from jobserver.api.reference_checks import check_references
from jobserver.api.request import uuid_param
from jobserver.api.stored_checks import check_stored
from jobserver.api.views import attempt_json, event_json, job_detail_json, job_json, new_job_json
from jobserver.core.broadcast import broadcast_jobs, check_broadcast
from jobserver.core.dependencies import batch_names, check_acyclic
from jobserver.core.idempotency import batch_keys, same_request
from jobserver.core.submission import build_job
from jobserver.core.timing import parse_datetime
from jobserver.db.attempts import attempt_list
from jobserver.db.broadcast import broadcast_children, broadcast_workers
from jobserver.db.dependencies import UnknownParent
from jobserver.db.events import job_events_list
from jobserver.db.job_counts import job_queue_position, job_status_counts
from jobserver.db.jobs import (
    JobFilter,
    NewJob,
    job_cancel,
    job_count,
    job_count_upto,
    job_get,
    job_get_by_idempotency_keys,
    job_insert_many,
    job_insert_times,
    job_list,
    new_job_ids,
)
from jobserver.statuses import JOB_STATUSES, TERMINAL_STATUSES

COUNT_CAP = 10_000
INSERT_RETRIES = 3
UTC = dt.UTC

# Keyset paging of the job list: (sort column, id), or the id alone for creation order.
# `event` order lists only the jobs that have an event (jobs_event_idx holds no others).
SORT_COLUMNS = {
    "createdAt": "created_at",
    "priority": "priority",
    "status": "status",
    "event": "event",
}
_SORT_KINDS: dict[str, tuple[Kind, ...]] = {
    "createdAt": ("uuid",),
    "priority": ("int", "uuid"),
    "status": ("str", "uuid"),
    "event": ("str", "uuid"),
}
ATTEMPTS = Pager("attempts", ("int",))


def _conflict(key: str, field: str | None = None) -> ApiError:
    return ApiError(
        409,
        "idempotency_conflict",
        f"idempotencyKey {key!r} was already used with a different request body",
        field,
    )


async def submit_job(request: web.Request) -> web.Response:
    pool = request.app[POOL_KEY]
    item = request[BODY_KEY]
    principal = request[PRINCIPAL_KEY]
    settings = request.app[SETTINGS_KEY]
    check_priority(principal, settings, item)
    info = await request.app[DEFINITION_CACHE_KEY].resolve(
        pool, item["definitionKey"], item.get("definitionVersion")
    )
    if info.outbound:
        require_outbound(principal, info.key, info.version)
    now = dt.datetime.now(UTC)
    job = build_job(item, None, info, principal.owner, now, None, settings.default_expires)
    await check_references(pool, principal, info, job.params)
    if item.get("broadcast"):
        return await _submit_broadcast(request, job)
    if job.depends_on:
        await check_parents(pool, principal, [job], batch=False)
    committer = request.app[GROUP_COMMIT_KEY]
    quota = queued_quota(principal, settings)
    for _ in range(INSERT_RETRIES):
        try:
            if quota is not None:
                if job.idempotency_key is not None and (repeat := await _repeat(pool, job)):
                    return repeat  # a repeat adds nothing: it never counts against the quota
                [(created_at, run_at)] = await insert_within_quota(pool, [job], job.owner, quota)
            elif job.depends_on:  # its own transaction: a missing parent fails it alone
                [(created_at, run_at)] = await job_insert_times(pool, [job])
            else:
                created_at, run_at = await committer.submit(pool, job)  # committed on return
            return json_response(new_job_json(job, created_at, run_at), status=201)
        except UnknownParent as err:
            raise unknown_parent(err) from None
        except asyncpg.UniqueViolationError:
            if job.idempotency_key is None:
                raise
            repeat = await _repeat(pool, job)
            if repeat is None:
                continue  # the holder was pruned meanwhile: try again
            return repeat
    raise ApiError(409, "conflict", "could not store the job; retry")


async def _repeat(pool: asyncpg.Pool, job: NewJob) -> web.Response | None:
    """The answer to a job whose idempotency key is stored: 200 with the stored job, or 409
    when the key came with another body; None when no job holds the key."""
    assert job.idempotency_key is not None
    found = await job_get_by_idempotency_keys(pool, job.owner, [job.idempotency_key])
    if not found:
        return None
    if not same_request(found[0]["request_fingerprint"], job.request_fingerprint):
        raise _conflict(job.idempotency_key, "idempotencyKey") from None
    return json_response(job_json(found[0]), status=200)


async def _submit_broadcast(request: web.Request, job: NewJob) -> web.Response:
    """`broadcast: true`: the job once on every live worker that has its definition and
    serves its queue (`jobserver.core.broadcast`); 422 naming `broadcast` when there is none.
    The parent carries the idempotency key (a repeat answers the stored parent) and the
    whole set counts against the owner's queued quota; one statement inserts it all."""
    pool = request.app[POOL_KEY]
    settings = request.app[SETTINGS_KEY]
    check_broadcast(job)
    if job.idempotency_key is not None and (repeat := await _repeat(pool, job)):
        return repeat
    ref = f"{job.definition_key}@{job.definition_version}"
    silent = settings.heartbeat_interval_seconds * 3  # as the scheduler marks workers gone
    workers = await broadcast_workers(pool, ref, job.queue, silent)
    if not workers:
        raise invalid(
            "broadcast", f"no live worker has {ref} and serves queue {job.queue!r}", "no_workers"
        )
    jobs = broadcast_jobs(job, workers)
    quota = queued_quota(request[PRINCIPAL_KEY], settings)
    for _ in range(INSERT_RETRIES):
        try:
            if quota is not None:
                times = await insert_within_quota(pool, jobs, job.owner, quota)
            else:
                times = await job_insert_times(pool, jobs)
        except asyncpg.UniqueViolationError:
            if job.idempotency_key is None:
                raise
            repeat = await _repeat(pool, job)
            if repeat is None:
                continue
            return repeat
        created_at, run_at = times[-1]
        out = new_job_json(job, created_at, run_at)
        out["broadcastChildren"] = [
            {"id": c.id, "workerId": c.queue[1:], "status": c.status or "queued"} for c in jobs[:-1]
        ]
        return json_response(out, status=201)
    raise ApiError(409, "conflict", "could not store the job; retry")


async def submit_batch(request: web.Request) -> web.Response:
    pool = request.app[POOL_KEY]
    principal = request[PRINCIPAL_KEY]
    settings = request.app[SETTINGS_KEY]
    owner = principal.owner
    items: list[dict[str, Any]] = request[BODY_KEY]["jobs"]
    seen = batch_keys(items)
    cache = request.app[DEFINITION_CACHE_KEY]
    defs: dict[tuple[str, int | None], Any] = {}
    for i, item in enumerate(items):
        check_priority(principal, settings, item, f"jobs[{i}]")
        if item.get("broadcast"):
            raise invalid(f"jobs[{i}].broadcast", "a batch takes no broadcast job: POST it alone")
        ref = (item["definitionKey"], item.get("definitionVersion"))
        if ref not in defs:
            defs[ref] = info = await cache.resolve(pool, ref[0], ref[1], f"jobs[{i}]")
            if info.outbound:
                require_outbound(principal, info.key, info.version, f"jobs[{i}]")
    now = dt.datetime.now(UTC)
    ids = new_job_ids(len(items))
    default_expires = settings.default_expires
    names = batch_names(items, ids)
    jobs = [
        build_job(
            item,
            i,
            defs[(item["definitionKey"], item.get("definitionVersion"))],
            owner,
            now,
            job_id,
            default_expires,
            names,
            ids,
        )
        for i, (item, job_id) in enumerate(zip(items, ids, strict=True))
    ]
    with_parents = any(j.depends_on for j in jobs)
    if with_parents:
        check_acyclic([j.depends_on for j in jobs], ids)
        await check_parents(pool, principal, jobs, batch=True)
    if any(info.credentials for info in defs.values()):
        refs = []
        for i, (item, j) in enumerate(zip(items, jobs, strict=True)):
            info = defs[(item["definitionKey"], item.get("definitionVersion"))]
            refs.append((info.credentials, j.params, f"jobs[{i}]"))
        await check_credential_refs(pool, principal, refs)
    for i, item in enumerate(items):  # what only the database knows (a mail's template)
        info = defs[(item["definitionKey"], item.get("definitionVersion"))]
        if info.check_stored is not None:
            await check_stored(pool, info, jobs[i].params, f"jobs[{i}]")
    for _ in range(INSERT_RETRIES):
        existing: dict[str, asyncpg.Record] = {}
        if seen:
            for row in await job_get_by_idempotency_keys(pool, owner, list(seen)):
                existing[row["idempotency_key"]] = row
            for key, row in existing.items():
                i = seen[key]
                if not same_request(row["request_fingerprint"], jobs[i].request_fingerprint):
                    raise _conflict(key, f"jobs[{i}].idempotencyKey")
        new = [j for j in jobs if j.idempotency_key is None or j.idempotency_key not in existing]
        if with_parents and existing:  # a parent that repeated a stored job is that job
            _point_at_stored(new, jobs, existing)
        try:
            if new and (quota := queued_quota(principal, settings)) is not None:
                await insert_within_quota(pool, new, owner, quota)
            elif new:
                async with pool.acquire() as conn:
                    await job_insert_many(conn, new)  # one statement: all or none
        except UnknownParent as err:
            raise unknown_parent(err, ids) from None
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


def _point_at_stored(
    new: list[NewJob], jobs: list[NewJob], existing: dict[str, asyncpg.Record]
) -> None:
    """Parents of `new` that are items repeating a stored idempotency key: the stored job."""
    stored = {
        j.id: existing[j.idempotency_key]["id"]
        for j in jobs
        if j.idempotency_key is not None and j.idempotency_key in existing
    }
    for j in new:
        if j.depends_on:
            j.depends_on = [stored.get(p, p) for p in j.depends_on]


async def visible_job(request: web.Request) -> asyncpg.Record:
    """The job in the path if this principal may see it, else 404."""
    row = await job_get(
        read_pool(request), uuid_param(request), request[PRINCIPAL_KEY].owner_filter()
    )
    if row is None:
        raise not_found("job")
    return row


async def get_job(request: web.Request) -> web.Response:
    row = await visible_job(request)
    position = None
    if row["status"] == "queued":
        position = await job_queue_position(
            read_pool(request), row["queue"], row["priority"], row["run_at"], row["id"]
        )
    out = job_detail_json(row, position)
    if row["broadcast"]:
        children = await broadcast_children(read_pool(request), row["depends_on"] or [])
        out["broadcastChildren"] = [
            {"id": c["id"], "workerId": c["worker"], "status": c["status"]} for c in children
        ]
    return json_response(out)


def _filter(request: web.Request) -> JobFilter:
    q = request[QUERY_KEY]
    statuses = q.get("status", [])
    for s in statuses:
        if s not in JOB_STATUSES:
            raise invalid("status", f"unknown status {s!r}: expected {', '.join(JOB_STATUSES)}")
    after, before = q.get("createdAfter"), q.get("createdBefore")
    if "since" in q:
        if after is not None:
            raise invalid("since, createdAfter", "give since or createdAfter, not both")
        after = q["since"]
    return JobFilter(
        statuses=sorted(set(statuses)),
        definition_key=q.get("definitionKey"),
        queue=q.get("queue"),
        created_after=(
            parse_datetime(after, "since" if "since" in q else "createdAfter")
            if after is not None
            else None
        ),
        created_before=parse_datetime(before, "createdBefore") if before is not None else None,
        owner=request[PRINCIPAL_KEY].owner_filter(),
        event=q.get("event"),
        tags=sorted(set(q.get("tag", []))),
        schedule_name=q.get("scheduleName"),
    )


async def list_jobs(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    flt = _filter(request)
    sort_by = q.get("sortBy", "createdAt")
    order = q.get("sortOrder", "desc")
    pager = Pager(f"jobs:{sort_by}:{order}", _SORT_KINDS[sort_by])
    limit = q.get("limit", 20)
    number = page_number(q, limit)
    after = pager.after(q)
    pool = read_pool(request)
    rows = await job_list(
        pool,
        flt,
        sort_by=sort_by,
        descending=order == "desc",
        after=None if after is None else (after[0], after[-1]),
        limit=limit + 1,
        offset=0 if number is None else number.offset,
    )
    col = SORT_COLUMNS[sort_by]
    now = dt.datetime.now(UTC)

    def key(r: asyncpg.Record) -> tuple[Any, ...]:
        return (r["id"],) if sort_by == "createdAt" else (r[col], r["id"])

    def render(r: asyncpg.Record) -> dict[str, Any]:
        return job_json(r, now)

    pending, running, estimated = await job_status_counts(pool, flt, COUNT_CAP)
    counts = {"pendingCount": pending, "runningCount": running, "countsAreEstimates": estimated}
    if number is None:
        return json_response({**pager.page(rows, limit, key, render), **counts})

    async def count() -> int:
        return await job_count_upto(pool, flt, COUNT_LIMIT, with_event=sort_by == "event")

    return json_response({**await pager.numbered(rows, number, count, key, render), **counts})


async def count_jobs(request: web.Request) -> web.Response:
    total, estimate = await job_count(read_pool(request), _filter(request), COUNT_CAP)
    return json_response({"total": total, "isEstimate": estimate})


async def cancel_job(request: web.Request) -> web.Response:
    job_id = uuid_param(request)
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
    pager = Pager(f"events:{row['id']}", ("bigint",))
    after = pager.after(q)
    limit = q.get("limit", 100)
    events = await job_events_list(
        read_pool(request), row["id"], limit + 1, 0 if after is None else after[0]
    )
    return json_response(pager.page(events, limit, lambda e: (e["id"],), event_json))


async def job_attempts(request: web.Request) -> web.Response:
    row = await visible_job(request)
    q = request[QUERY_KEY]
    after = ATTEMPTS.after(q)
    limit = q.get("limit", 100)
    rows = await attempt_list(
        read_pool(request), row["id"], after=0 if after is None else after[0], limit=limit + 1
    )
    return json_response(ATTEMPTS.page(rows, limit, lambda a: (a["attempt"],), attempt_json))
