"""SQL behind queue health and stats (`GET /v1/queues`, `/v1/queues/{name}/health`,
`/v1/health`, `/v1/stats`): what each queue holds, who serves it, what finished in it.

A queue has no table of its own: it exists while jobs or live workers name it. Every query
here is bounded by an index slice, so the routes answer in milliseconds on a table of ten
million jobs:

- waiting jobs (`queued`) through `jobs_queue_queued_idx` (queue, run_at; its predicate is
  written in the "C" collation, `_QUEUED`, so that no claim can use it): the queue names by a
  loose index scan (one probe per name), and per queue the ready (`run_at <= now()`) and the
  delayed (`run_at > now()`) entries, each counted up to a cap (an exact count reads one index
  entry, and mostly its heap row, per job);
- held jobs (`running`, `cancelling`) through `jobs_held_idx`: what the workers hold now, a
  set the fleet's size bounds;
- finished jobs through time ranges of `jobs_finished_idx`, per minute (the API keeps the
  settled minutes, see `jobserver.api.finished_tally`) and, for duration percentiles, the
  latest few thousand of a window;
- `workers` and `scheduler_leader`, small tables.

Callers run them on `queues_conn(pool, timeout_ms)`: one read-only REPEATABLE READ
transaction, so every figure of an answer comes from the same snapshot of the database,
with `statement_timeout` (a slow statement raises `asyncpg.QueryCanceledError`: the API
answers 503) and JIT off (compiling these small aggregates costs more than running them).

Pending = claimed, not started. A worker claims more jobs than it runs (its local buffer,
see jobserver/worker/claims.py); the database sees a buffered job exactly like a running one
(`running`, its worker, its lease, `started_at` = the claim), and the worker's own count of
the jobs whose code is executing is `workers.running`, written with every heartbeat. So for
each live (active or stopping) worker, the jobs it holds beyond that count are pending: its
most recently claimed ones, since its buffer starts jobs in claim order. The rest of what it
holds is running; so is everything held by a worker that is not live (it is stuck once its
lease passes). The split is as of the worker's last heartbeat, and a job whose outcome is
being written counts as pending for that moment.

Stuck = held past its lease (`lease_expires_at < now()`: its worker stopped renewing it), or
running (not pending) longer than its timeout (the job's `timeout_seconds`, else its
definition's) plus `margin` seconds, timed from its claim.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg

from jobserver.db.conn import Conn, ConnOrPool


@asynccontextmanager
async def queues_conn(pool: asyncpg.Pool, timeout_ms: int) -> AsyncIterator[Conn]:
    """A pooled connection in one read-only snapshot; each statement stops after
    `timeout_ms`."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}; SET LOCAL jit = off")
        yield conn


async def queue_clock(conn: ConnOrPool) -> datetime:
    """The snapshot's time (the transaction's `now()`, the clock every figure is read by)."""
    now: datetime = await conn.fetchval("SELECT now()")
    return now


# The queued rows of jobs_queue_queued_idx: its predicate is written with the "C" collation,
# which no claim writes, so that no claim plan can ever use the index (see db/tables.py); the
# queries here must write it the same way.
_QUEUED = """j.status COLLATE "C" = 'queued'"""

# The queue names by a loose index scan (one probe each), then per name two bounded counts and
# the oldest ready run time, all on jobs_queue_queued_idx.
WAITING = f"""
        WITH RECURSIVE names(queue, n) AS (
            (SELECT j.queue, 1 FROM jobs j WHERE {_QUEUED} ORDER BY j.queue LIMIT 1)
            UNION ALL
            SELECT s.queue, names.n + 1 FROM names CROSS JOIN LATERAL (
                SELECT j.queue FROM jobs j WHERE {_QUEUED} AND j.queue > names.queue
                ORDER BY j.queue LIMIT 1
            ) s
            WHERE names.n < $2
        )
        SELECT n.queue,
            (SELECT count(*) FROM (
                SELECT 1 FROM jobs j
                WHERE {_QUEUED} AND j.queue = n.queue AND j.run_at <= now() LIMIT $1
            ) c) AS unclaimed,
            (SELECT count(*) FROM (
                SELECT 1 FROM jobs j
                WHERE {_QUEUED} AND j.queue = n.queue AND j.run_at > now() LIMIT $1
            ) c) AS scheduled,
            (SELECT min(j.run_at) FROM jobs j
             WHERE {_QUEUED} AND j.queue = n.queue AND j.run_at <= now()) AS oldest_ready
        FROM names n
        ORDER BY n.queue
        """


async def queue_dependents_waiting(conn: ConnOrPool, cap: int) -> dict[str, int]:
    """{queue: jobs in status `waiting`} (their parents have not finished), reading at most
    `cap` rows of jobs_waiting_idx in all: past it the counts are lower bounds."""
    rows = await conn.fetch(
        "SELECT queue, count(*) AS n FROM"
        " (SELECT j.queue FROM jobs j WHERE j.status = 'waiting' LIMIT $1) w GROUP BY queue",
        cap,
    )
    return {r["queue"]: r["n"] for r in rows}


async def queue_waiting(conn: ConnOrPool, cap: int, max_queues: int) -> list[asyncpg.Record]:
    """(queue, unclaimed, scheduled, oldest_ready) of every queue with queued jobs, in name
    order, at most `max_queues`: ready jobs (`run_at <= now()`) and delayed ones, each counted
    up to `cap`, and the run time of the oldest ready one (NULL: none)."""
    return await conn.fetch(WAITING, cap, max_queues)


# Every held job with its split (see the module doc): `pending` (in its live worker's local
# buffer: beyond the count the worker reports executing, newest claims first) and
# `stuck_since` (when it passed its lease, or its timeout plus $1 seconds; NULL: not stuck).
_HELD = """
held AS (
    SELECT j.id, j.queue, j.worker_id, j.started_at, j.lease_expires_at,
        coalesce(j.timeout_seconds, d.timeout_seconds) AS timeout_s,
        count(*) OVER w AS held_n,
        row_number() OVER (w ORDER BY j.started_at DESC, j.priority, j.run_at DESC, j.id DESC)
            AS newest
    FROM jobs j
    LEFT JOIN job_definitions d
        ON d.key = j.definition_key AND d.version = j.definition_version
    WHERE j.status IN ('running', 'cancelling')
    WINDOW w AS (PARTITION BY j.worker_id)
),
split AS (
    SELECT h.*, coalesce(wk.status IN ('active', 'stopping')
        AND h.newest <= h.held_n - wk.running, false) AS pending
    FROM held h LEFT JOIN workers wk ON wk.id = h.worker_id
),
judged AS (
    SELECT s.*, CASE WHEN s.lease_expires_at < now() THEN 'lease_expired'
            WHEN NOT s.pending AND s.started_at + make_interval(secs => s.timeout_s + $1)
                < now() THEN 'timeout' END AS stuck_reason,
        CASE WHEN s.lease_expires_at < now() THEN s.lease_expires_at
            WHEN NOT s.pending AND s.started_at + make_interval(secs => s.timeout_s + $1)
                < now() THEN s.started_at + make_interval(secs => s.timeout_s + $1)
            END AS stuck_since
    FROM split s
)"""


async def queue_held(
    conn: ConnOrPool, margin_seconds: float, stuck_listed: int
) -> list[asyncpg.Record]:
    """(queue, pending, running, stuck, stuck_ids, stuck_workers, stuck_since, stuck_reasons)
    of every queue with held jobs (see the module doc): the counts, and the longest stuck
    jobs first, at most `stuck_listed` of them, as parallel arrays."""
    listed = "ORDER BY stuck_since, id) FILTER (WHERE stuck_since IS NOT NULL))[1:$2]"
    return await conn.fetch(
        f"""
        WITH {_HELD}
        SELECT queue, count(*) FILTER (WHERE pending) AS pending,
            count(*) FILTER (WHERE NOT pending) AS running,
            count(*) FILTER (WHERE stuck_since IS NOT NULL) AS stuck,
            (array_agg(id {listed} AS stuck_ids,
            (array_agg(worker_id {listed} AS stuck_workers,
            (array_agg(stuck_since {listed} AS stuck_since,
            (array_agg(stuck_reason {listed} AS stuck_reasons
        FROM judged GROUP BY queue ORDER BY queue
        """,
        float(margin_seconds),
        stuck_listed,
    )


async def queue_live_workers(conn: ConnOrPool) -> list[asyncpg.Record]:
    """(id, status, queues) of the workers that are active or stopping (queues NULL: every
    queue)."""
    return await conn.fetch(
        "SELECT id, status, queues FROM workers WHERE status IN ('active', 'stopping') ORDER BY id"
    )


async def queue_worker_statuses(conn: ConnOrPool) -> list[asyncpg.Record]:
    """(status, n) of the `workers` rows."""
    return await conn.fetch("SELECT status, count(*) AS n FROM workers GROUP BY status")


# Per minute, queue and terminal status: how many finished, how many of them ran (have a
# start), the sum of their run times, and how many finished in the last 60 seconds.
_FINISHED_MINUTES = """
    SELECT date_trunc('minute', finished_at) AS minute, queue, status, count(*) AS n,
        count(started_at) AS timed,
        coalesce(sum(extract(epoch FROM finished_at - started_at) * 1000), 0)::float8
            AS duration_ms,
        count(*) FILTER (WHERE finished_at >= now() - interval '1 minute') AS last_minute
    FROM jobs
    WHERE {range} AND status IN ('succeeded', 'failed', 'cancelled', 'expired')
    GROUP BY 1, 2, 3
"""


async def queue_finished_minutes(
    conn: ConnOrPool, since: datetime, until: datetime | None
) -> list[asyncpg.Record]:
    """(minute, queue, status, n, timed, duration_ms, last_minute) of the jobs that finished
    in [since, until), or since `since` when `until` is None. Two statements, not one with
    `$2 IS NULL OR ...`: a prepared statement's generic plan would then bound the index scan
    below only, and read everything newer than `since` for every range."""
    if until is None:
        sql = _FINISHED_MINUTES.format(range="finished_at >= $1")
        return await conn.fetch(sql, since)
    sql = _FINISHED_MINUTES.format(range="finished_at >= $1 AND finished_at < $2")
    return await conn.fetch(sql, since, until)


async def queue_durations(
    conn: ConnOrPool, queue: str, window_minutes: int, scan: int
) -> asyncpg.Record:
    """(n, p50_ms, p95_ms) of the run times of `queue`'s jobs among the latest `scan` jobs of
    any queue that succeeded or failed in the window of `window_minutes` (the current minute
    and the ones before it, as `jobserver.api.finished_tally` counts them): bounded whatever
    the traffic."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """
        SELECT count(*) AS n,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY r.ms) AS p50_ms,
            percentile_cont(0.95) WITHIN GROUP (ORDER BY r.ms) AS p95_ms
        FROM (
            SELECT queue, extract(epoch FROM finished_at - started_at)::float8 * 1000 AS ms
            FROM jobs
            WHERE finished_at >= date_trunc('minute', now()) - ($2 - 1) * interval '1 minute'
                AND status IN ('succeeded', 'failed') AND started_at IS NOT NULL
            ORDER BY finished_at DESC
            LIMIT $3
        ) r
        WHERE r.queue = $1
        """,
        queue,
        window_minutes,
        scan,
    )
    assert row is not None  # an aggregate without GROUP BY answers one row
    return row
