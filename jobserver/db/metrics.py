"""SQL behind the metrics endpoints and the API's Prometheus collector.

Kept cheap at millions of rows by bounding every query to an indexed slice, never a roll-up
table (no extra write on the hot path, nothing to keep consistent):
- active jobs (queued/running/cancelling) through the partial indexes `jobs_ready_idx` and
  `jobs_held_idx`, which only ever hold the live part of the table;
- everything about finished jobs (throughput, performance, histograms) through time ranges on
  `jobs_finished_idx` (at most 7 days, i.e. the pruner's default retention);
- the per-status totals with one GROUP BY over `jobs`, a table the pruner keeps to its
  retention window: the one full scan here, so callers cache it (METRICS_CACHE_TTL_MS). An
  index to serve it would cost an entry on every status change of every job.

Callers run them on `metrics_conn(pool, timeout_ms)`: one connection in a transaction with
`SET LOCAL statement_timeout`, so a slow query (a lock, a huge table) is cancelled by
PostgreSQL after `timeout_ms` (METRICS_STATEMENT_TIMEOUT_MS) and raises
`asyncpg.QueryCanceledError` (the API answers 503) instead of holding a pooled connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg

from jobserver.db.conn import Conn, ConnOrPool

FINISHED = "('succeeded', 'failed')"


@asynccontextmanager
async def metrics_conn(pool: asyncpg.Pool, timeout_ms: int) -> AsyncIterator[Conn]:
    """A pooled connection whose statements each stop after `timeout_ms` (read-only work)."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        yield conn


async def metrics_status_counts(conn: ConnOrPool) -> list[asyncpg.Record]:
    """(definition_key, definition_version, status, n) for every job row present."""
    return await conn.fetch(
        """
        SELECT definition_key, definition_version, status, count(*) AS n
        FROM jobs GROUP BY definition_key, definition_version, status
        """
    )


async def metrics_windows(conn: ConnOrPool) -> list[asyncpg.Record]:
    """Throughput (jobs finished succeeded/failed in the last hour/day/week) and performance
    over the last day, per definition and overall (the row with NULL key), one scan of the
    last 7 days of `jobs_finished_idx`."""
    return await conn.fetch(
        f"""
        WITH f AS (
            SELECT definition_key, definition_version, status, attempt,
                finished_at >= now() - interval '1 hour' AS hour,
                finished_at >= now() - interval '1 day' AS day,
                extract(epoch FROM finished_at - started_at) * 1000 AS processing_ms,
                extract(epoch FROM started_at - created_at) * 1000 AS queue_ms
            FROM jobs
            WHERE finished_at >= now() - interval '7 days' AND status IN {FINISHED}
        )
        SELECT definition_key, definition_version,
            count(*) FILTER (WHERE hour) AS last_hour,
            count(*) FILTER (WHERE day) AS last_day,
            count(*) AS last_week,
            count(*) FILTER (WHERE day AND status = 'succeeded') AS day_succeeded,
            count(*) FILTER (WHERE day AND status = 'failed') AS day_failed,
            count(*) FILTER (WHERE day AND attempt > 1) AS day_retried,
            avg(processing_ms) FILTER (WHERE day) AS avg_processing_ms,
            avg(queue_ms) FILTER (WHERE day) AS avg_queue_ms
        FROM f
        GROUP BY GROUPING SETS ((definition_key, definition_version), ())
        """
    )


async def metrics_throughput(conn: ConnOrPool, hours: int) -> list[asyncpg.Record]:
    """Hourly buckets (oldest first, current hour last, zero-filled) of jobs that succeeded
    ("completed") and failed, over the last `hours` clock hours."""
    return await conn.fetch(
        """
        WITH b AS (
            SELECT generate_series(date_trunc('hour', now()) - ($1 - 1) * interval '1 hour',
                date_trunc('hour', now()), interval '1 hour') AS hour
        ), f AS (
            SELECT date_trunc('hour', finished_at) AS hour,
                count(*) FILTER (WHERE status = 'succeeded') AS completed,
                count(*) FILTER (WHERE status = 'failed') AS failed
            FROM jobs
            WHERE finished_at >= date_trunc('hour', now()) - ($1 - 1) * interval '1 hour'
              AND status IN ('succeeded', 'failed')
            GROUP BY 1
        )
        SELECT b.hour, coalesce(f.completed, 0) AS completed, coalesce(f.failed, 0) AS failed
        FROM b LEFT JOIN f USING (hour) ORDER BY b.hour
        """,
        hours,
    )


async def metrics_throughput_minutes(conn: ConnOrPool, minutes: int) -> list[asyncpg.Record]:
    """Per-minute buckets (oldest first, current minute last, zero-filled) of jobs that
    succeeded ("completed") and failed, over the last `minutes` clock minutes."""
    return await conn.fetch(
        """
        WITH b AS (
            SELECT generate_series(date_trunc('minute', now()) - ($1 - 1) * interval '1 minute',
                date_trunc('minute', now()), interval '1 minute') AS minute
        ), f AS (
            SELECT date_trunc('minute', finished_at) AS minute,
                count(*) FILTER (WHERE status = 'succeeded') AS completed,
                count(*) FILTER (WHERE status = 'failed') AS failed
            FROM jobs
            WHERE finished_at >= date_trunc('minute', now()) - ($1 - 1) * interval '1 minute'
              AND status IN ('succeeded', 'failed')
            GROUP BY 1
        )
        SELECT b.minute, coalesce(f.completed, 0) AS completed, coalesce(f.failed, 0) AS failed
        FROM b LEFT JOIN f USING (minute) ORDER BY b.minute
        """,
        minutes,
    )


async def metrics_job_totals(conn: ConnOrPool) -> list[asyncpg.Record]:
    """Monotonic totals per (definition_key, queue, status): live rows plus what was pruned.

    Columns: jobs, attempts (runs started), retries (runs after the first), rescues (attempts
    ended by an expired lease). Full GROUP BYs over `jobs` and `job_attempts`: callers cache it.
    """
    return await conn.fetch(
        """
        SELECT definition_key, queue, status, sum(jobs)::bigint AS jobs,
            sum(attempts)::bigint AS attempts, sum(retries)::bigint AS retries,
            sum(rescues)::bigint AS rescues
        FROM (
            SELECT j.definition_key, j.queue, j.status, count(*) AS jobs,
                sum(j.attempt) AS attempts, sum(GREATEST(j.attempt - 1, 0)) AS retries,
                0 AS rescues
            FROM jobs j GROUP BY 1, 2, 3
            UNION ALL
            SELECT j.definition_key, j.queue, j.status, 0, 0, 0, count(*)
            FROM job_attempts a JOIN jobs j ON j.id = a.job_id
            WHERE a.outcome = 'lease_expired' GROUP BY 1, 2, 3
            UNION ALL
            SELECT definition_key, queue, status, jobs, attempts, retries, rescues
            FROM job_counts_pruned
        ) t
        GROUP BY 1, 2, 3
        """
    )


async def metrics_active_by_queue(conn: ConnOrPool) -> list[asyncpg.Record]:
    """(status, definition_key, queue, n) of waiting/queued/running/cancelling jobs (queue
    depth; waiting rows are read through jobs_waiting_idx)."""
    return await conn.fetch(
        """
        SELECT status, definition_key, queue, count(*) AS n FROM jobs
        WHERE status IN ('waiting', 'queued', 'running', 'cancelling')
        GROUP BY status, definition_key, queue
        """
    )


async def metrics_finished_by_queue(conn: ConnOrPool, seconds: float) -> list[asyncpg.Record]:
    """(status, definition_key, queue, n, retried) of jobs finished in the last `seconds`."""
    return await conn.fetch(
        """
        SELECT status, definition_key, queue, count(*) AS n,
            count(*) FILTER (WHERE attempt > 1) AS retried
        FROM jobs WHERE finished_at >= now() - make_interval(secs => $1::float8)
        GROUP BY status, definition_key, queue
        """,
        float(seconds),
    )


async def metrics_histograms(
    conn: ConnOrPool, seconds: float, bounds: Sequence[float]
) -> list[asyncpg.Record]:
    """Cumulative bucket counts (le, duration_n, wait_n) plus one row with le = +Inf carrying
    the sums, for runs finished in the last `seconds`: duration = start to finish, queue wait =
    creation to (last) start."""
    return await conn.fetch(
        """
        WITH f AS (
            SELECT extract(epoch FROM finished_at - started_at)::float8 AS d,
                extract(epoch FROM started_at - created_at)::float8 AS w
            FROM jobs
            WHERE finished_at >= now() - make_interval(secs => $1::float8)
              AND started_at IS NOT NULL AND status IN ('succeeded', 'failed')
        )
        SELECT b.le,
            (SELECT count(*) FROM f WHERE f.d <= b.le) AS duration_n,
            (SELECT count(*) FROM f WHERE f.w <= b.le) AS wait_n,
            NULL::float8 AS duration_sum, NULL::float8 AS wait_sum
        FROM unnest($2::float8[]) AS b(le)
        UNION ALL
        SELECT 'Infinity'::float8, count(*), count(*), coalesce(sum(d), 0), coalesce(sum(w), 0)
        FROM f
        """,
        float(seconds),
        list(bounds),
    )
