"""SQL for the worker side of `jobs`: claim, heartbeat, progress, and the batched outcomes.

Every write about a held job is fenced: it applies only while the row is `running` or
`cancelling`, held by this worker id, at this attempt. A write that matches nothing changed
nothing; callers compare the ids returned with the ids sent to find fenced-off jobs.

Events written here: started, progress, custom (ctx.emit_event: details {"name", "data"}),
succeeded, retry_scheduled, timed_out, failed, dead_lettered, cancelled, handed_back,
hook_failed. Attempt rows (`job_attempts`) are opened by the claim and closed by the outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from jobserver.db.dlq import dlq_insert_from_jobs

# Settings for the session that claims. Right after a bulk insert, before autovacuum has analyzed
# `jobs`, the planner believes the table is tiny and plans the claim as a bitmap scan of every
# ready row plus a sort (tens of ms per claim at 20k rows). The claim must always walk
# jobs_ready_idx in order and stop after LIMIT rows, so its dedicated session rules the others out.
CLAIM_SESSION_SETTINGS = {"enable_seqscan": "off", "enable_bitmapscan": "off"}

# The fence every worker write repeats; $1 is always the worker id.
_HELD = "j.status IN ('running', 'cancelling') AND j.worker_id = $1"

_CLAIM = """
WITH caps AS (
    -- free slots per concurrency-limited definition key, counted across the whole fleet
    SELECT l.k, l.lim - (SELECT count(*) FROM jobs r
                         WHERE r.status IN ('running', 'cancelling') AND r.definition_key = l.k)
           AS free
    FROM unnest($6::text[], $7::int[]) AS l(k, lim)
),
picked AS (
    -- ready rows on the partial index jobs_ready_idx, in claim order, skipping rows others hold
    SELECT j.id, j.definition_key, j.priority, j.run_at FROM jobs j
    WHERE j.status = 'queued' AND j.run_at <= now()
      AND (j.expires_at IS NULL OR j.expires_at > now())
      AND (j.definition_key || '@' || j.definition_version) = ANY($3::text[])
      AND ($4::text[] IS NULL OR j.queue = ANY($4::text[]))
      AND j.definition_key <> ALL (SELECT k FROM caps WHERE free <= 0)
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT $2
    FOR UPDATE OF j SKIP LOCKED
),
allowed AS (
    -- at most `free` rows of each limited definition; unlimited ones pass untouched
    SELECT p.id FROM (
        SELECT id, definition_key, row_number() OVER (
            PARTITION BY definition_key ORDER BY priority DESC, run_at, id) AS rn
        FROM picked) p
    LEFT JOIN caps c ON c.k = p.definition_key
    WHERE c.k IS NULL OR p.rn <= c.free
),
claimed AS (
    UPDATE jobs j SET status = 'running', worker_id = $1, attempt = j.attempt + 1,
        lease_expires_at = now() + make_interval(secs => $5), started_at = now(),
        updated_at = now()
    FROM allowed WHERE j.id = allowed.id
    RETURNING j.id, j.definition_key, j.definition_version, j.params, j.attempt,
        j.max_attempts, j.timeout_seconds, j.priority, j.run_at
),
opened AS (
    -- an attempt number handed back earlier is reused, so its old row is overwritten
    INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, outcome)
    SELECT id, attempt, $1, now(), 'running' FROM claimed
    ON CONFLICT (job_id, attempt) DO UPDATE SET worker_id = EXCLUDED.worker_id,
        started_at = EXCLUDED.started_at, finished_at = NULL, outcome = 'running',
        error = NULL, traceback = NULL, result = NULL, duration_ms = NULL
),
events AS (
    INSERT INTO job_events (job_id, event, worker_id, attempt)
    SELECT id, 'started', $1, attempt FROM claimed
)
SELECT id, definition_key, definition_version, params, attempt, max_attempts, timeout_seconds
FROM claimed ORDER BY priority DESC, run_at, id
"""


async def job_claim_available(
    conn: asyncpg.Connection,
    worker_id: str,
    limit: int,
    refs: Sequence[str],
    queues: Sequence[str] | None,
    lease_seconds: float,
    limits: dict[str, int] | None = None,
) -> list[asyncpg.Record]:
    """Claim up to `limit` ready jobs of `refs` ("key@version") in one round trip.

    Without `limits` this is one autocommit statement. With `limits` ({definition key:
    concurrencyLimit}) it runs in a transaction that first takes one advisory lock per limited
    key (sorted, so claimers never deadlock), so the count of running jobs and the claim are
    atomic across every worker of the fleet.
    """
    if limit <= 0:
        return []
    qs = list(queues) if queues else None
    if not limits:
        return await conn.fetch(
            _CLAIM, worker_id, limit, list(refs), qs, float(lease_seconds), [], []
        )
    keys = sorted(limits)
    async with conn.transaction():
        await conn.execute(
            """
            SELECT pg_advisory_xact_lock(hashtextextended('jobserver.limit:' || k, 0))
            FROM (SELECT unnest($1::text[]) AS k ORDER BY 1) s
            """,
            keys,
        )
        return await conn.fetch(
            _CLAIM,
            worker_id,
            limit,
            list(refs),
            qs,
            float(lease_seconds),
            keys,
            [limits[k] for k in keys],
        )


async def job_heartbeat(
    conn: asyncpg.Connection,
    worker_id: str,
    ids: Sequence[uuid.UUID],
    attempts: Sequence[int],
    lease_seconds: float,
) -> list[asyncpg.Record]:
    """Extend the lease of every job this worker holds in one statement.

    Returns (id, status) of the rows still held; a sent id missing from the answer was lost
    (rescued or taken over) and its result must be dropped.
    """
    if not ids:
        return []
    return await conn.fetch(
        f"""
        UPDATE jobs j SET lease_expires_at = now() + make_interval(secs => $4)
        FROM unnest($2::uuid[], $3::int[]) AS h(id, attempt)
        WHERE j.id = h.id AND j.attempt = h.attempt AND {_HELD}
        RETURNING j.id, j.status
        """,
        worker_id,
        list(ids),
        list(attempts),
        float(lease_seconds),
    )


async def job_held_status(
    conn: asyncpg.Connection, worker_id: str, ids: Sequence[uuid.UUID], attempts: Sequence[int]
) -> list[asyncpg.Record]:
    """(id, status) of the given jobs still held by this worker at these attempts.

    The cancel fallback: `cancelling` rows are jobs to cancel, missing rows were lost.
    """
    if not ids:
        return []
    return await conn.fetch(
        f"""
        SELECT j.id, j.status FROM jobs j
        JOIN unnest($2::uuid[], $3::int[]) AS h(id, attempt) ON j.id = h.id
        WHERE j.attempt = h.attempt AND {_HELD}
        """,
        worker_id,
        list(ids),
        list(attempts),
    )


async def job_progress(
    conn: asyncpg.Connection,
    worker_id: str,
    job_id: uuid.UUID,
    attempt: int,
    progress_json: str,
) -> bool:
    """Store progress on the job and as a `progress` event; False when fenced off."""
    row = await conn.fetchval(
        f"""
        WITH p AS (
            UPDATE jobs j SET progress = $4::text::jsonb, updated_at = now()
            WHERE j.id = $2 AND j.attempt = $3 AND {_HELD}
            RETURNING j.id
        ), ev AS (
            INSERT INTO job_events (job_id, event, worker_id, attempt, details)
            SELECT id, 'progress', $1, $3, $4::text::jsonb FROM p
        )
        SELECT count(*) FROM p
        """,
        worker_id,
        job_id,
        attempt,
        progress_json,
    )
    return bool(row)


async def job_event_emit(
    conn: asyncpg.Connection,
    worker_id: str,
    job_id: uuid.UUID,
    attempt: int,
    event: str,
    details_json: str | None,
) -> bool:
    """Write one event about a held job (custom events, hook failures); False when fenced off."""
    row = await conn.fetchval(
        f"""
        WITH ev AS (
            INSERT INTO job_events (job_id, event, worker_id, attempt, details)
            SELECT j.id, $4, $1, $3, $5::text::jsonb FROM jobs j
            WHERE j.id = $2 AND j.attempt = $3 AND {_HELD}
            RETURNING 1
        )
        SELECT count(*) FROM ev
        """,
        worker_id,
        job_id,
        attempt,
        event,
        details_json,
    )
    return bool(row)


async def job_complete_many(
    conn: asyncpg.Connection,
    worker_id: str,
    ids: Sequence[uuid.UUID],
    attempts: Sequence[int],
    results_json: Sequence[str],
    durations_ms: Sequence[float],
) -> list[uuid.UUID]:
    """Mark many jobs succeeded in one statement: result, attempt row closed, `succeeded` event.

    `results_json` are JSON texts (already validated by the worker). Returns the ids written;
    the others were fenced off.
    """
    if not ids:
        return []
    rows = await conn.fetch(
        f"""
        WITH d AS (
            SELECT * FROM unnest($2::uuid[], $3::int[], $4::text[], $5::float8[])
                AS d(id, attempt, result, ms)
        ), done AS (
            UPDATE jobs j SET status = 'succeeded', result = d.result::jsonb,
                finished_at = now(), lease_expires_at = NULL, updated_at = now()
            FROM d WHERE j.id = d.id AND j.attempt = d.attempt AND {_HELD}
            RETURNING j.id, j.attempt
        ), att AS (
            UPDATE job_attempts a SET finished_at = now(), outcome = 'succeeded',
                duration_ms = d.ms
            FROM done JOIN d ON d.id = done.id
            WHERE a.job_id = done.id AND a.attempt = done.attempt
        ), ev AS (
            INSERT INTO job_events (job_id, event, worker_id, attempt)
            SELECT id, 'succeeded', $1, attempt FROM done
        )
        SELECT id FROM done
        """,
        worker_id,
        list(ids),
        list(attempts),
        list(results_json),
        list(durations_ms),
    )
    return [r[0] for r in rows]


@dataclass(frozen=True)
class Failure:
    """One failed attempt to record: `delay_seconds` is used only when attempts remain."""

    job_id: uuid.UUID
    attempt: int
    outcome: str  # failed | timed_out
    error: str
    traceback: str | None
    delay_seconds: float
    duration_ms: float


async def job_fail_many(
    conn: asyncpg.Connection, worker_id: str, failures: Sequence[Failure]
) -> list[asyncpg.Record]:
    """Record failed attempts: retry later when attempts remain, else fail and dead-letter.

    One transaction: the jobs update (queued with run_at = now + delay, or failed), the attempt
    rows (error, traceback), the events (timed_out, retry_scheduled / failed + dead_lettered)
    and the DLQ copy of the jobs failed for good. Returns (id, status) of the rows written.
    """
    if not failures:
        return []
    cols = list(
        zip(
            *(
                (
                    f.job_id,
                    f.attempt,
                    f.outcome,
                    f.error,
                    f.traceback,
                    f.delay_seconds,
                    f.duration_ms,
                )
                for f in failures
            ),
            strict=True,
        )
    )
    async with conn.transaction():
        rows = await conn.fetch(
            f"""
            WITH d AS (
                SELECT * FROM unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::text[],
                    $7::float8[], $8::float8[]) AS d(id, attempt, outcome, error, tb, delay, ms)
            ), done AS (
                UPDATE jobs j SET
                    status = CASE WHEN j.attempt < j.max_attempts THEN 'queued' ELSE 'failed' END,
                    run_at = CASE WHEN j.attempt < j.max_attempts
                        THEN now() + make_interval(secs => d.delay) ELSE j.run_at END,
                    finished_at = CASE WHEN j.attempt < j.max_attempts THEN NULL ELSE now() END,
                    worker_id = CASE WHEN j.attempt < j.max_attempts THEN NULL ELSE j.worker_id END,
                    lease_expires_at = NULL, last_error = d.error, updated_at = now()
                FROM d WHERE j.id = d.id AND j.attempt = d.attempt AND {_HELD}
                RETURNING j.id, j.attempt, j.status, j.run_at
            ), att AS (
                UPDATE job_attempts a SET finished_at = now(), outcome = d.outcome,
                    error = d.error, traceback = d.tb, duration_ms = d.ms
                FROM done JOIN d ON d.id = done.id
                WHERE a.job_id = done.id AND a.attempt = done.attempt
            ), ev AS (
                INSERT INTO job_events (job_id, event, worker_id, attempt, details)
                SELECT done.id, e.event, $1, done.attempt, e.details
                FROM done JOIN d ON d.id = done.id
                CROSS JOIN LATERAL (VALUES
                    ('timed_out', jsonb_build_object('error', d.error), d.outcome = 'timed_out'),
                    ('retry_scheduled', jsonb_build_object('delaySeconds', d.delay,
                        'runAt', done.run_at, 'error', d.error), done.status = 'queued'),
                    ('failed', jsonb_build_object('error', d.error), done.status = 'failed'),
                    ('dead_lettered', NULL::jsonb, done.status = 'failed')
                ) AS e(event, details, wanted)
                WHERE e.wanted
            )
            SELECT id, status FROM done
            """,
            worker_id,
            *[list(c) for c in cols],
        )
        dead = [r["id"] for r in rows if r["status"] == "failed"]
        if dead:
            await dlq_insert_from_jobs(conn, dead)
    return rows


async def job_cancel_ack_many(
    conn: asyncpg.Connection,
    worker_id: str,
    ids: Sequence[uuid.UUID],
    attempts: Sequence[int],
    durations_ms: Sequence[float],
) -> list[uuid.UUID]:
    """End jobs the worker stopped on request: cancelled, attempt row closed, `cancelled` event."""
    if not ids:
        return []
    rows = await conn.fetch(
        f"""
        WITH d AS (
            SELECT * FROM unnest($2::uuid[], $3::int[], $4::float8[]) AS d(id, attempt, ms)
        ), done AS (
            UPDATE jobs j SET status = 'cancelled', finished_at = now(),
                lease_expires_at = NULL, updated_at = now()
            FROM d WHERE j.id = d.id AND j.attempt = d.attempt AND {_HELD}
            RETURNING j.id, j.attempt
        ), att AS (
            UPDATE job_attempts a SET finished_at = now(), outcome = 'cancelled',
                duration_ms = d.ms
            FROM done JOIN d ON d.id = done.id
            WHERE a.job_id = done.id AND a.attempt = done.attempt
        ), ev AS (
            INSERT INTO job_events (job_id, event, worker_id, attempt)
            SELECT id, 'cancelled', $1, attempt FROM done
        )
        SELECT id FROM done
        """,
        worker_id,
        list(ids),
        list(attempts),
        list(durations_ms),
    )
    return [r[0] for r in rows]


async def job_hand_back_many(
    conn: asyncpg.Connection,
    worker_id: str,
    ids: Sequence[uuid.UUID],
    attempts: Sequence[int],
) -> list[asyncpg.Record]:
    """Give unfinished jobs back at shutdown without using an attempt.

    A running job returns to `queued` (attempt - 1, attempt row outcome `handed_back`, event
    `handed_back`); the next claim reuses the attempt number. A job whose cancel was requested
    (`cancelling`) ends `cancelled` instead. Returns (id, status) of the rows written.
    """
    if not ids:
        return []
    return await conn.fetch(
        f"""
        WITH d AS (
            SELECT * FROM unnest($2::uuid[], $3::int[]) AS d(id, attempt)
        ), done AS (
            UPDATE jobs j SET
                status = CASE WHEN j.status = 'cancelling' THEN 'cancelled' ELSE 'queued' END,
                attempt = CASE WHEN j.status = 'cancelling' THEN j.attempt ELSE j.attempt - 1 END,
                finished_at = CASE WHEN j.status = 'cancelling' THEN now() END,
                worker_id = CASE WHEN j.status = 'cancelling' THEN j.worker_id END,
                lease_expires_at = NULL, updated_at = now()
            FROM d WHERE j.id = d.id AND j.attempt = d.attempt AND {_HELD}
            RETURNING j.id, d.attempt, j.status
        ), att AS (
            UPDATE job_attempts a SET finished_at = now(),
                outcome = CASE WHEN done.status = 'queued' THEN 'handed_back' ELSE 'cancelled' END
            FROM done WHERE a.job_id = done.id AND a.attempt = done.attempt
        ), ev AS (
            INSERT INTO job_events (job_id, event, worker_id, attempt)
            SELECT id, CASE WHEN status = 'queued' THEN 'handed_back' ELSE 'cancelled' END, $1,
                attempt
            FROM done
        )
        SELECT id, status FROM done
        """,
        worker_id,
        list(ids),
        list(attempts),
    )
