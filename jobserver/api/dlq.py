"""Dead-letter queue handlers (`manage_jobs`): list, read, redrive and discard failed jobs.

- `GET /v1/dlq?definitionKey=&redriven=&limit=100&cursor=` (limit 1..1000): newest failure
  first, paged by (failedAt, id); or `page=N` instead of `cursor` for page numbers (see
  jobserver.api.paging).
- `GET /v1/dlq/{id}`: one row with its attempt history (`history`).
- `POST /v1/dlq/{id}/retry` with an optional body `{"maxAttempts": n}` (default: the original
  job's; the body is checked like every other): one transaction creates a new job
  (`jobserver.core.submission.redriven_job`: same definition, params, queue, priority, owner;
  `redrivenFrom` = the failed job), marks the DLQ row redriven and writes a `redriven` event on
  the new job and, if it still exists, on the original. A row already redriven is 409.
- `DELETE /v1/dlq/{id}`: discard the row (204); the failed job goes with the pruner later.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from jobserver.api.errors import ApiError, not_found
from jobserver.api.jsonio import json_response
from jobserver.api.keys import BODY_KEY, DEFINITION_CACHE_KEY, POOL_KEY, QUERY_KEY
from jobserver.api.paging import COUNT_LIMIT, Pager, page_number
from jobserver.api.request import uuid_param
from jobserver.api.views import dlq_json
from jobserver.core.submission import definition_rate, redriven_job
from jobserver.db.dlq import (
    dlq_count_upto,
    dlq_delete,
    dlq_get,
    dlq_list,
    dlq_mark_redriven,
    dlq_original_exists,
)
from jobserver.db.events import job_events_insert
from jobserver.db.jobs import job_insert_many

DLQ = Pager("dlq", ("datetime", "uuid"))


async def list_dlq(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    limit = q.get("limit", 100)
    number = page_number(q, limit)
    after = DLQ.after(q)
    pool = request.app[POOL_KEY]
    definition_key, redriven = q.get("definitionKey"), q.get("redriven")
    rows = await dlq_list(
        pool,
        definition_key=definition_key,
        redriven=redriven,
        limit=limit + 1,
        after=None if after is None else (after[0], after[1]),
        offset=0 if number is None else number.offset,
    )

    def key(r: Any) -> tuple[Any, ...]:
        return (r["failed_at"], r["id"])

    if number is None:
        return json_response(DLQ.page(rows, limit, key, dlq_json))

    async def count() -> int:
        return await dlq_count_upto(
            pool, COUNT_LIMIT, definition_key=definition_key, redriven=redriven
        )

    return json_response(await DLQ.numbered(rows, number, count, key, dlq_json))


async def get_dlq(request: web.Request) -> web.Response:
    row = await dlq_get(request.app[POOL_KEY], uuid_param(request))
    if row is None:
        raise not_found("dead-letter job")
    return json_response(dlq_json(row))


async def retry_dlq(request: web.Request) -> web.Response:
    dlq_id = uuid_param(request)
    body: dict[str, Any] = request[BODY_KEY]
    async with request.app[POOL_KEY].acquire() as conn, conn.transaction():
        row = await dlq_get(conn, dlq_id, lock=True)
        if row is None:
            raise not_found("dead-letter job")
        if row["redriven_at"] is not None:
            raise ApiError(
                409,
                "invalid_state",
                f"already redriven as job {row['redriven_job_id']}",
                extra={"redrivenJobId": str(row["redriven_job_id"])},
            )
        job = redriven_job(row, body.get("maxAttempts"))
        info = await request.app[DEFINITION_CACHE_KEY].get(
            request.app[POOL_KEY], row["definition_key"], row["definition_version"]
        )
        if info is not None and info.rate_limit is not None:  # a dead-letter row keeps none
            job.rate_bucket, job.rate_limit, job.rate_period = definition_rate(
                info.key, info.rate_limit, job.params
            )
        await job_insert_many(conn, [job])
        await dlq_mark_redriven(conn, row["id"], job.id)
        events: list[Any] = [
            (job.id, "redriven", None, None, {"fromJobId": str(row["id"]), "dlqId": str(row["id"])})
        ]
        if await dlq_original_exists(conn, row["id"]):
            events.append((row["id"], "redriven", None, None, {"newJobId": str(job.id)}))
        await job_events_insert(conn, events)
        updated = await dlq_get(conn, dlq_id)
    assert updated is not None
    return json_response(
        {"jobId": job.id, "redrivenFrom": row["id"], "dlq": dlq_json(updated)}, status=201
    )


async def delete_dlq(request: web.Request) -> web.Response:
    if not await dlq_delete(request.app[POOL_KEY], uuid_param(request)):
        raise not_found("dead-letter job")
    return web.Response(status=204)
