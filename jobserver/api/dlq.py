"""Dead-letter queue routes (`manage_jobs`): list, read, redrive and discard failed jobs.

- `GET /v1/dlq?definitionKey=&redriven=&limit=100&offset=0` (limit 1..1000): newest first,
  with `total`.
- `GET /v1/dlq/{id}`: one row with its attempt history (`history`).
- `POST /v1/dlq/{id}/retry` with an optional body `{"maxAttempts": n}` (default: the original
  job's): one transaction creates a new job (same definition, params, queue, priority, owner;
  `redrivenFrom` = the failed job), marks the DLQ row redriven and writes a `redriven` event on
  the new job and, if it still exists, on the original. A row already redriven is 409.
- `DELETE /v1/dlq/{id}`: discard the row (204); the failed job goes with the pruner later.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from jobserver.api.app import read_json_body
from jobserver.api.errors import ApiError, not_found
from jobserver.api.jobs import job_id_from
from jobserver.api.jsonio import json_response
from jobserver.api.keys import POOL_KEY, QUERY_KEY
from jobserver.api.routing import Route
from jobserver.db.dlq import (
    dlq_delete,
    dlq_get,
    dlq_list,
    dlq_mark_redriven,
    dlq_original_exists,
)
from jobserver.db.events import job_events_insert
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.validation import compile_schema

RETRY_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"maxAttempts": {"type": "integer", "minimum": 1, "maximum": 100}},
}
_check_retry = compile_schema(RETRY_BODY)

DLQ_ITEM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "jobId": {"type": "string", "format": "uuid"},
        "definitionKey": {"type": "string"},
        "definitionVersion": {"type": "integer"},
        "queue": {"type": "string"},
        "params": {},
        "owner": {"type": "string"},
        "priority": {"type": "integer"},
        "attempts": {"type": "integer"},
        "maxAttempts": {"type": "integer"},
        "lastError": {"type": ["string", "null"]},
        "history": {"type": "array"},
        "createdAt": {"type": "string", "format": "date-time"},
        "failedAt": {"type": "string", "format": "date-time"},
        "redrivenAt": {"type": ["string", "null"], "format": "date-time"},
        "redrivenJobId": {"type": ["string", "null"], "format": "uuid"},
    },
}


def dlq_json(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(r["id"]),
        "jobId": str(r["id"]),
        "definitionKey": r["definition_key"],
        "definitionVersion": r["definition_version"],
        "queue": r["queue"],
        "params": r["params"],
        "owner": r["owner"],
        "priority": r["priority"],
        "attempts": r["attempts"],
        "maxAttempts": r["max_attempts"],
        "lastError": r["last_error"],
        "history": r["history"],
        "createdAt": r["created_at"],
        "failedAt": r["failed_at"],
        "redrivenAt": r["redriven_at"],
        "redrivenJobId": str(r["redriven_job_id"]) if r["redriven_job_id"] else None,
    }


# A DLQ row's id is the failed job's id: the same path parameter rules apply.
dlq_id_from = job_id_from


async def list_dlq(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    limit, offset = q.get("limit", 100), q.get("offset", 0)
    rows, total = await dlq_list(
        request.app[POOL_KEY],
        definition_key=q.get("definitionKey"),
        redriven=q.get("redriven"),
        limit=limit,
        offset=offset,
    )
    return json_response(
        {"items": [dlq_json(r) for r in rows], "total": total, "limit": limit, "offset": offset}
    )


async def get_dlq(request: web.Request) -> web.Response:
    row = await dlq_get(request.app[POOL_KEY], dlq_id_from(request))
    if row is None:
        raise not_found("dead-letter job")
    return json_response(dlq_json(row))


async def retry_dlq(request: web.Request) -> web.Response:
    dlq_id = dlq_id_from(request)
    body: dict[str, Any] = {}
    if request.body_exists:
        body = await read_json_body(request, _check_retry)
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
        job = NewJob(
            definition_key=row["definition_key"],
            definition_version=row["definition_version"],
            max_attempts=body.get("maxAttempts", row["max_attempts"]),
            params=row["params"],
            queue=row["queue"],
            priority=row["priority"],
            owner=row["owner"],
            redriven_from=row["id"],
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
        {"jobId": str(job.id), "redrivenFrom": str(row["id"]), "dlq": dlq_json(updated)},
        status=201,
    )


async def delete_dlq(request: web.Request) -> web.Response:
    if not await dlq_delete(request.app[POOL_KEY], dlq_id_from(request)):
        raise not_found("dead-letter job")
    return web.Response(status=204)


NO_QUERY: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
LIST_QUERY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "definitionKey": {"type": "string", "maxLength": 200},
        "redriven": {"type": "boolean"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
        "offset": {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0},
    },
}

ROUTES = [
    Route(
        "GET",
        "/v1/dlq",
        list_dlq,
        "manage_jobs",
        "List dead-letter jobs, newest failure first",
        query_schema=LIST_QUERY,
        response_schema={
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": DLQ_ITEM},
                "total": {"type": "integer"},
                "limit": {"type": "integer"},
                "offset": {"type": "integer"},
            },
        },
        tags=("dlq",),
    ),
    Route(
        "GET",
        "/v1/dlq/{id}",
        get_dlq,
        "manage_jobs",
        "One dead-letter job with its attempt history",
        query_schema=NO_QUERY,
        response_schema=DLQ_ITEM,
        tags=("dlq",),
    ),
    Route(
        "POST",
        "/v1/dlq/{id}/retry",
        retry_dlq,
        "manage_jobs",
        "Redrive: a new job from the failed one (optional body {maxAttempts})",
        query_schema=NO_QUERY,
        response_schema={
            "type": "object",
            "properties": {
                "jobId": {"type": "string", "format": "uuid"},
                "redrivenFrom": {"type": "string", "format": "uuid"},
                "dlq": DLQ_ITEM,
            },
        },
        success_status=201,
        tags=("dlq",),
    ),
    Route(
        "DELETE",
        "/v1/dlq/{id}",
        delete_dlq,
        "manage_jobs",
        "Discard a dead-letter job",
        query_schema=NO_QUERY,
        success_status=204,
        tags=("dlq",),
    ),
]
