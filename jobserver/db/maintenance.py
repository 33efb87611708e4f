"""SQL for the scheduler's maintenance transitions of `jobs` and `workers`.

- `job_rescue_expired`: held jobs (running/cancelling) whose lease passed go back to `queued`
  (attempts left), `failed` + DLQ copy (attempts used up) or `cancelled` (a cancel was pending).
- `job_expire_queued`: queued jobs past `expires_at` become `expired`.
- `job_prune_finished`: finished jobs older than their status' retention are deleted (events and
  attempts cascade); failed jobs stay while an un-redriven DLQ row refers to them.
- `worker_mark_gone`: workers silent for too long become `gone`.

Each takes a batch size, locks its rows with SKIP LOCKED (so it never waits on a worker), and
re-checks its condition in the UPDATE itself, so a row that changed meanwhile is left alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from jobserver.db.channels import JOBS_CHANNEL
from jobserver.db.conn import Conn
from jobserver.db.dlq import dlq_insert_from_jobs
from jobserver.db.feed import announce

_RESCUE = f"""
WITH expired AS (
    -- held rows whose lease passed, oldest first, skipping rows a worker is writing right now
    SELECT id, status AS old_status, worker_id AS old_worker FROM jobs
    WHERE status IN ('running', 'cancelling') AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), done AS (
    -- the fence: re-checked on the locked row, so a job that finished meanwhile is untouched
    UPDATE jobs j SET
        status = CASE WHEN j.status = 'cancelling' THEN 'cancelled'
                      WHEN j.attempt < j.max_attempts THEN 'queued' ELSE 'failed' END,
        run_at = CASE WHEN j.status = 'running' AND j.attempt < j.max_attempts
                      THEN now() ELSE j.run_at END,
        finished_at = CASE WHEN j.status = 'running' AND j.attempt < j.max_attempts
                      THEN NULL ELSE now() END,
        worker_id = CASE WHEN j.status = 'running' AND j.attempt < j.max_attempts
                      THEN NULL ELSE j.worker_id END,
        last_error = CASE WHEN j.status = 'cancelling' THEN j.last_error
                      ELSE 'lease expired (worker ' || coalesce(j.worker_id, '?') || ')' END,
        lease_expires_at = NULL,
        updated_at = now()
    FROM expired e
    WHERE j.id = e.id AND j.status IN ('running', 'cancelling') AND j.lease_expires_at < now()
    RETURNING j.id, j.attempt, j.status, e.old_worker, j.started_at
), att AS (
    -- a running attempt has no stored row (db/attempts.py derives it): store it closed
    INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, finished_at, outcome,
        error)
    SELECT id, attempt, old_worker, COALESCE(started_at, now()), now(), 'lease_expired',
        'lease expired'
    FROM done
    ON CONFLICT (job_id, attempt) DO UPDATE SET worker_id = EXCLUDED.worker_id,
        started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
        outcome = 'lease_expired', error = 'lease expired'
    WHERE job_attempts.outcome IN ('running', 'handed_back')
), ev AS (
    INSERT INTO job_events (job_id, event, worker_id, attempt, details)
    SELECT done.id, e.event, done.old_worker, done.attempt, e.details
    FROM done CROSS JOIN LATERAL (VALUES
        (1, 'lease_expired', jsonb_build_object('workerId', done.old_worker, 'rescuedBy', $2::text),
            true),
        (2, 'rescued', NULL::jsonb, done.status = 'queued'),
        (2, 'cancelled', jsonb_build_object('reason', 'lease expired'), done.status = 'cancelled'),
        (2, 'failed', jsonb_build_object('error', 'lease expired'), done.status = 'failed'),
        (3, 'dead_lettered', NULL::jsonb, done.status = 'failed')
    ) AS e(ord, event, details, wanted)
    WHERE e.wanted
    ORDER BY done.id, e.ord
)
SELECT id, status FROM done, (SELECT {announce("SELECT id FROM done")} AS fed) f
"""


@dataclass
class RescueResult:
    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    cancelled: list[uuid.UUID] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.requeued) + len(self.failed) + len(self.cancelled)


async def job_rescue_expired(
    conn: Conn, limit: int = 1000, rescuer: str = "scheduler"
) -> RescueResult:
    """Rescue up to `limit` jobs whose lease expired, in one transaction with their DLQ copies.

    Events: `lease_expired`, then `rescued` (re-queued), `cancelled` (cancel was pending) or
    `failed` + `dead_lettered`. The attempt is stored closed with outcome `lease_expired`.
    Re-queued jobs wake idle workers with one NOTIFY.
    """
    out = RescueResult()
    async with conn.transaction():
        rows = await conn.fetch(_RESCUE, limit, rescuer)
        for r in rows:
            {"queued": out.requeued, "failed": out.failed, "cancelled": out.cancelled}[
                r["status"]
            ].append(r["id"])
        if out.failed:
            await dlq_insert_from_jobs(conn, out.failed)
        if out.requeued:
            await conn.execute("SELECT pg_notify($1, '*')", JOBS_CHANNEL)
    return out


async def job_expire_queued(conn: Conn, limit: int = 1000) -> list[uuid.UUID]:
    """Queued (or waiting) jobs whose `expires_at` passed become `expired` (event `expired`);
    an expired parent's dependents are settled by their policy in the same statement (the
    trigger of db/dependencies.py)."""
    rows = await conn.fetch(
        f"""
        WITH e AS (
            SELECT id FROM jobs
            WHERE status IN ('queued', 'waiting') AND expires_at IS NOT NULL
                AND expires_at < now()
            ORDER BY expires_at LIMIT $1
            FOR UPDATE SKIP LOCKED
        ), done AS (
            UPDATE jobs j SET status = 'expired', finished_at = now(), updated_at = now()
            FROM e WHERE j.id = e.id AND j.status IN ('queued', 'waiting')
                AND j.expires_at < now()
            RETURNING j.id, j.attempt, j.expires_at
        ), ev AS (
            INSERT INTO job_events (job_id, event, attempt, details)
            SELECT id, 'expired', attempt, jsonb_build_object('expiresAt', expires_at) FROM done
        )
        SELECT id FROM done, (SELECT {announce("SELECT id FROM done")} AS fed) f
        """,
        limit,
    )
    return [r["id"] for r in rows]


async def job_prune_finished(
    conn: Conn,
    *,
    succeeded_seconds: float,
    cancelled_seconds: float,
    failed_seconds: float,
    limit: int = 1000,
) -> dict[str, int]:
    """Delete one batch of finished jobs past their retention; returns counts by status.

    Walks `jobs_finished_idx` from the oldest finished row. Failed jobs whose DLQ row is still
    waiting (not redriven) are kept whatever their age.
    """
    rows = await conn.fetch(
        """
        WITH r AS (
            SELECT now() - make_interval(secs => $1::float8) AS ok,
                   now() - make_interval(secs => $2::float8) AS cancelled,
                   now() - make_interval(secs => $3::float8) AS failed
        ), victims AS (
            SELECT j.id, (SELECT count(*) FROM job_attempts a
                          WHERE a.job_id = j.id AND a.outcome = 'lease_expired') AS rescues
            FROM jobs j, r
            WHERE j.finished_at IS NOT NULL
              AND j.finished_at < GREATEST(r.ok, r.cancelled, r.failed)
              AND ((j.status = 'succeeded' AND j.finished_at < r.ok)
                OR (j.status IN ('cancelled', 'expired') AND j.finished_at < r.cancelled)
                OR (j.status = 'failed' AND j.finished_at < r.failed
                    AND NOT EXISTS (SELECT 1 FROM dead_letter_jobs d
                                    WHERE d.id = j.id AND d.redriven_at IS NULL)))
            ORDER BY j.finished_at
            LIMIT $4
            FOR UPDATE OF j SKIP LOCKED
        ), gone AS (
            DELETE FROM jobs j USING victims v WHERE j.id = v.id
            RETURNING j.status, j.definition_key, j.queue, j.attempt, v.rescues
        ), tally AS (
            -- keeps the Prometheus job counters monotonic (see jobserver.db.metrics)
            INSERT INTO job_counts_pruned AS t (definition_key, queue, status, jobs, attempts,
                retries, rescues)
            SELECT definition_key, queue, status, count(*), sum(attempt),
                sum(GREATEST(attempt - 1, 0)), sum(rescues)
            FROM gone GROUP BY 1, 2, 3
            ON CONFLICT (definition_key, queue, status) DO UPDATE SET
                jobs = t.jobs + EXCLUDED.jobs, attempts = t.attempts + EXCLUDED.attempts,
                retries = t.retries + EXCLUDED.retries, rescues = t.rescues + EXCLUDED.rescues
        )
        SELECT status FROM gone
        """,
        float(succeeded_seconds),
        float(cancelled_seconds),
        float(failed_seconds),
        limit,
    )
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts


async def worker_mark_gone(conn: Conn, silent_seconds: float) -> list[str]:
    """Workers (active or stopping) not seen for `silent_seconds` become `gone`."""
    rows = await conn.fetch(
        """
        UPDATE workers SET status = 'gone'
        WHERE status IN ('active', 'stopping')
          AND last_seen_at < now() - make_interval(secs => $1)
        RETURNING id
        """,
        float(silent_seconds),
    )
    return [r["id"] for r in rows]
