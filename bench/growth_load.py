"""The grown table of bench/growth.py: `finished` finished jobs and `queued` queued ones.

Reuses bench/queue_health.py's row mix (its FINISHED_SQL, QUEUED_SQL, HELD_SQL and WORKERS_SQL:
finished jobs spread over the last 7 days, ten queues, 5 % at priority 5, a quarter of the
queued ones delayed up to a day, 300 held by 25 workers) and its load method (the jobs indexes
dropped, the rows inserted on two connections, the indexes rebuilt two at a time, VACUUM
ANALYZE), with the ids the application mints (see V7_ID). On top of it, what the finished
jobs store besides their row: a failed job's closed attempts (one per try) and its stored
events (retry_scheduled per retry, failed, dead_lettered), a cancelled one's `cancelled` event.
Succeeded jobs store nothing else (their attempt and events are derived from the row), so these
tables hold about 5 % of the jobs' count in attempts and 7 % in events, as a real history of
this mix would.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import queue_health
from queue_health import _in_parallel

# The ids the application mints (UUIDv7 from the job's creation time: db/jobs.py new_job_id),
# not the column default (random v4): a claim's or completion's new row version writes an
# entry into the primary key at its id, which for time-ordered ids is near the right edge and
# for random ones anywhere in an index of ten million entries.
V7_ID = (
    "(lpad(to_hex((extract(epoch FROM cr) * 1000)::bigint), 12, '0') || '7'"
    " || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid"
)


def _with_v7_ids(sql: str) -> str:
    out = sql.replace("INSERT INTO jobs (definition_key", "INSERT INTO jobs (id, definition_key")
    out = out.replace("SELECT 'echo', 1, ", f"SELECT {V7_ID}, 'echo', 1, ", 1)
    assert out.count("V7") == 0 and out != sql
    return out


FINISHED_SQL = _with_v7_ids(queue_health.FINISHED_SQL)
QUEUED_SQL = _with_v7_ids(queue_health.QUEUED_SQL)
HELD_SQL = _with_v7_ids(queue_health.HELD_SQL)

ATTEMPTS_SQL = """
INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, error,
    duration_ms)
SELECT j.id, a, 'bench-w1', j.started_at, j.finished_at, 'failed', 'boom', 120
FROM jobs j CROSS JOIN LATERAL generate_series(1, j.attempt) a
WHERE j.status = 'failed'
"""

EVENTS_SQL = """
INSERT INTO job_events (job_id, event, at, worker_id, attempt, details)
SELECT j.id, e.event, j.finished_at, 'bench-w1', e.attempt, e.details
FROM jobs j CROSS JOIN LATERAL (
    SELECT 'retry_scheduled' AS event, a AS attempt, '{"delaySeconds": 1}'::jsonb AS details
    FROM generate_series(1, j.attempt - 1) a
    UNION ALL SELECT 'failed', j.attempt, '{"error": "boom"}'::jsonb
    UNION ALL SELECT 'dead_lettered', j.attempt, NULL
) e
WHERE j.status = 'failed'
UNION ALL
SELECT id, 'cancelled', finished_at, NULL, attempt, NULL FROM jobs WHERE status = 'cancelled'
"""


def log(msg: str) -> None:
    print(f"[growth {time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def load_grown(url: str, finished: int, queued: int) -> dict[str, Any]:
    """Fill the (migrated, empty) database at `url`; returns the figures of the load."""
    held = 300
    t0 = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        indexes = await queue_health.insert_rows(
            conn, url, finished, queued, held, (FINISHED_SQL, QUEUED_SQL, HELD_SQL)
        )
        inserted = time.perf_counter() - t0
        log(
            f"inserted {finished + queued + held:,} jobs in {inserted:.0f} s;"
            f" building {len(indexes)} indexes"
        )
        await _in_parallel(url, indexes)
        indexed = time.perf_counter() - t0
        await conn.execute(ATTEMPTS_SQL)
        await conn.execute(EVENTS_SQL)
        await conn.execute("VACUUM (ANALYZE) jobs")
        await conn.execute("VACUUM (ANALYZE) job_attempts")
        await conn.execute("VACUUM (ANALYZE) job_events")
        counts = dict(await conn.fetch("SELECT status, count(*) FROM jobs GROUP BY status"))
        attempts = await conn.fetchval("SELECT count(*) FROM job_attempts")
        events = await conn.fetchval("SELECT count(*) FROM job_events")
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('jobs'))")
    finally:
        await conn.close()
    total = time.perf_counter() - t0
    log(f"loaded in {total:.0f} s ({size}): {counts}, {attempts:,} attempts, {events:,} events")
    return {
        "finished": finished,
        "queued": queued,
        "held": held,
        "by_status": counts,
        "job_attempts": attempts,
        "job_events": events,
        "insert_s": round(inserted, 1),
        "indexes_s": round(indexed - inserted, 1),
        "total_s": round(total, 1),
        "jobs_total_size": size,
    }


async def load_small(url: str, finished: int, queued: int) -> None:
    """The same mix at a small size (the 'empty' table), without dropping the indexes."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT setseed(0.4)")
        if finished:
            await conn.execute(FINISHED_SQL, finished, 1, finished)
        if queued:
            await conn.execute(QUEUED_SQL, queued)
        await conn.execute(ATTEMPTS_SQL)
        await conn.execute(EVENTS_SQL)
        await conn.execute("VACUUM (ANALYZE) jobs")
    finally:
        await conn.close()


async def add_queued(url: str, n: int) -> None:
    """`n` more queued jobs of the same mix (a quarter delayed), then ANALYZE."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(QUEUED_SQL, n)
        await conn.execute("ANALYZE jobs")
    finally:
        await conn.close()
