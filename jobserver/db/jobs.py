"""SQL for `jobs` as clients see them: submission, reads, listing and cancellation.

Worker-side transitions (claim, heartbeat, complete, fail, hand back) live in `job_runs.py`;
maintenance (rescue, expire, prune) in `maintenance.py`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from jobserver.db.channels import CANCEL_CHANNEL, JOBS_CHANNEL


@dataclass
class NewJob:
    """One job to insert; defaults already resolved against its definition."""

    definition_key: str
    definition_version: int
    max_attempts: int
    params: Any = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    run_at: datetime | None = None
    expires_at: datetime | None = None
    timeout_seconds: float | None = None
    owner: str = "anonymous"
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    schedule_name: str | None = None
    scheduled_for: datetime | None = None
    redriven_from: uuid.UUID | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)


JOB_COLUMNS = (
    "id, definition_key, definition_version, queue, status, priority, attempt, max_attempts,"
    " params, result, last_error, progress, worker_id, run_at, expires_at, timeout_seconds,"
    " owner, idempotency_key, request_fingerprint, schedule_name, redriven_from, created_at,"
    " started_at, finished_at, cancel_requested_at, updated_at"
)

# One statement inserts the jobs, their `created` events and sends the NOTIFY, so a submission
# outside an explicit transaction is still atomic and costs a single round trip.
_INSERT_SQL = """
WITH ins AS (
    INSERT INTO jobs (id, definition_key, definition_version, queue, params, priority,
        max_attempts, run_at, expires_at, timeout_seconds, owner, idempotency_key,
        request_fingerprint, schedule_name, scheduled_for, redriven_from)
    SELECT i, dk, dv, q, p::jsonb, pr, ma, COALESCE(ra, now()), ea, ts, o, ik, rf, sn, sf, rd
    FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::text[], $6::int[],
        $7::int[], $8::timestamptz[], $9::timestamptz[], $10::float8[], $11::text[],
        $12::text[], $13::text[], $14::text[], $15::timestamptz[], $16::uuid[])
        AS t(i, dk, dv, q, p, pr, ma, ra, ea, ts, o, ik, rf, sn, sf, rd)
    RETURNING {returning}
), ev AS (
    INSERT INTO job_events (job_id, event, at) SELECT id, 'created', created_at FROM ins
), n AS (
    SELECT pg_notify($17, $18) WHERE $19
)
SELECT ins.* FROM ins LEFT JOIN n ON true
"""
_INSERT_IDS = _INSERT_SQL.format(returning="id, created_at")
_INSERT_ROWS = _INSERT_SQL.format(returning=JOB_COLUMNS)


# Params travel as JSON text (cast to jsonb in SQL): one reused encoder is several times
# faster than a per-element codec call on a 1000-job batch.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _insert_args(jobs: Sequence[NewJob], notify: bool) -> list[Any]:
    cols = list(
        zip(
            *(
                (
                    j.id,
                    j.definition_key,
                    j.definition_version,
                    j.queue,
                    _encode(j.params),
                    j.priority,
                    j.max_attempts,
                    j.run_at,
                    j.expires_at,
                    j.timeout_seconds,
                    j.owner,
                    j.idempotency_key,
                    j.request_fingerprint,
                    j.schedule_name,
                    j.scheduled_for,
                    j.redriven_from,
                )
                for j in jobs
            ),
            strict=True,
        )
    )
    queues = {j.queue for j in jobs}
    payload = next(iter(queues)) if len(queues) == 1 else "*"
    return [*(list(c) for c in cols), JOBS_CHANNEL, payload, notify]


async def job_insert_many(
    conn: asyncpg.Connection, jobs: Sequence[NewJob], *, notify: bool = True
) -> list[uuid.UUID]:
    """Insert jobs and their `created` events and NOTIFY once, all in one statement.

    Inside a transaction (the caller's, for enqueue-in-your-transaction) the NOTIFY is
    delivered only when that transaction commits. Idempotency conflicts raise
    `asyncpg.UniqueViolationError`; callers that accept repeats resolve them first.
    """
    if not jobs:
        return []
    await conn.fetch(_INSERT_IDS, *_insert_args(jobs, notify))
    return [j.id for j in jobs]


async def job_insert_returning(
    conn: asyncpg.Connection | asyncpg.Pool, jobs: Sequence[NewJob], *, notify: bool = True
) -> list[asyncpg.Record]:
    """`job_insert_many` returning the stored rows (`JOB_COLUMNS`, in input order)."""
    if not jobs:
        return []
    rows = await conn.fetch(_INSERT_ROWS, *_insert_args(jobs, notify))
    order = {j.id: i for i, j in enumerate(jobs)}
    return sorted(rows, key=lambda r: order[r["id"]])


async def job_get(
    conn: asyncpg.Connection | asyncpg.Pool, job_id: uuid.UUID, owner: str | None = None
) -> asyncpg.Record | None:
    """One job; with `owner`, only if it belongs to that owner."""
    if owner is None:
        return await conn.fetchrow(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1", job_id)
    return await conn.fetchrow(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND owner = $2", job_id, owner
    )


async def job_get_by_idempotency_keys(
    conn: asyncpg.Connection | asyncpg.Pool, owner: str, keys: Sequence[str]
) -> list[asyncpg.Record]:
    """The owner's jobs holding any of these idempotency keys (unique per owner)."""
    return await conn.fetch(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE owner = $1 AND idempotency_key = ANY($2::text[])",
        owner,
        list(keys),
    )


SORT_COLUMNS = {"createdAt": "created_at", "priority": "priority", "status": "status"}


@dataclass
class JobFilter:
    """Listing filters; None/empty means no restriction."""

    statuses: Sequence[str] = ()
    definition_key: str | None = None
    queue: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    owner: str | None = None

    def where(self, args: list[Any]) -> str:
        """SQL conditions joined with AND, appending their parameters to `args`."""
        conds: list[str] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if self.statuses:
            conds.append(f"status = ANY({arg(list(self.statuses))}::text[])")
        if self.definition_key is not None:
            conds.append(f"definition_key = {arg(self.definition_key)}")
        if self.queue is not None:
            conds.append(f"queue = {arg(self.queue)}")
        if self.created_after is not None:
            conds.append(f"created_at > {arg(self.created_after)}")
        if self.created_before is not None:
            conds.append(f"created_at < {arg(self.created_before)}")
        if self.owner is not None:
            conds.append(f"owner = {arg(self.owner)}")
        return " AND ".join(conds) if conds else "true"


async def job_list(
    conn: asyncpg.Connection | asyncpg.Pool,
    flt: JobFilter,
    *,
    sort_by: str = "createdAt",
    descending: bool = True,
    after: tuple[Any, uuid.UUID] | None = None,
    limit: int = 20,
) -> list[asyncpg.Record]:
    """A page of jobs in (sort column, id) order; `after` is the last row of the previous page
    (keyset pagination: stable under inserts, no OFFSET scans)."""
    col = SORT_COLUMNS[sort_by]
    args: list[Any] = []
    where = flt.where(args)
    direction = "DESC" if descending else "ASC"
    if after is not None:
        args.extend(after)
        op = "<" if descending else ">"
        where += f" AND ({col}, id) {op} (${len(args) - 1}, ${len(args)})"
    args.append(limit)
    return await conn.fetch(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE {where}"
        f" ORDER BY {col} {direction}, id {direction} LIMIT ${len(args)}",
        *args,
    )


async def job_count(
    conn: asyncpg.Connection | asyncpg.Pool, flt: JobFilter, cap: int = 10_000
) -> tuple[int, bool]:
    """(count, is_estimate): exact up to `cap` rows, the planner's estimate above, so a count
    never scans millions of rows."""
    args: list[Any] = []
    where = flt.where(args)
    args.append(cap + 1)
    exact = await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM jobs WHERE {where} LIMIT ${len(args)}) t", *args
    )
    if exact <= cap:
        return exact, False
    plan = await conn.fetchval(
        f"EXPLAIN (FORMAT JSON) SELECT 1 FROM jobs WHERE {where}", *args[:-1]
    )
    if isinstance(plan, str):
        plan = json.loads(plan)
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    return max(estimate, cap + 1), True


async def job_cancel(
    conn: asyncpg.Connection | asyncpg.Pool, job_id: uuid.UUID, owner: str | None = None
) -> asyncpg.Record | None:
    """Cancel in one statement: queued -> cancelled (finished now, 'cancelled' event);
    running -> cancelling (cancel_requested_at, 'cancel_requested' event, NOTIFY on
    CANCEL_CHANNEL with the job id). Returns the updated row, or None when the job is not
    queued/running (absent, other owner, already cancelling or terminal): the caller reads it.

    The status condition is re-checked under the row lock, so a worker claiming the job at the
    same moment is either before us (we see running) or after us (it finds it cancelled).
    """
    return await conn.fetchrow(
        f"""
        WITH upd AS (
            UPDATE jobs SET
                status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE 'cancelling' END,
                finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END,
                cancel_requested_at = now(),
                updated_at = now()
            WHERE id = $1 AND status IN ('queued', 'running')
                AND ($2::text IS NULL OR owner = $2)
            RETURNING {JOB_COLUMNS}
        ), ev AS (
            INSERT INTO job_events (job_id, event, worker_id, attempt)
            SELECT id, CASE WHEN status = 'cancelled' THEN 'cancelled' ELSE 'cancel_requested' END,
                worker_id, attempt
            FROM upd
        ), n AS (
            SELECT pg_notify($3, id::text) FROM upd WHERE status = 'cancelling'
        )
        SELECT upd.*, (SELECT count(*) FROM n) AS notified FROM upd
        """,
        job_id,
        owner,
        CANCEL_CHANNEL,
    )
