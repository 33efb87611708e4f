"""SQL for `jobs` as clients see them: submission, reads, listing and cancellation.

Worker-side transitions (claim, heartbeat, complete, fail, hand back) live in `job_runs.py`;
maintenance (rescue, expire, prune) in `maintenance.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from jobserver.db.channels import JOBS_CHANNEL


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


async def job_insert_many(
    conn: asyncpg.Connection, jobs: Sequence[NewJob], *, notify: bool = True
) -> list[uuid.UUID]:
    """Insert jobs and their `created` events in one round trip each, then NOTIFY once.

    Run it inside a transaction (the caller's, for enqueue-in-your-transaction): the NOTIFY is
    delivered only when that transaction commits. Idempotency conflicts raise
    `asyncpg.UniqueViolationError`; callers that accept repeats resolve them first.
    """
    if not jobs:
        return []
    cols = list(
        zip(
            *(
                (
                    j.id,
                    j.definition_key,
                    j.definition_version,
                    j.queue,
                    j.params,
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
    await conn.execute(
        """
        WITH ins AS (
            INSERT INTO jobs (id, definition_key, definition_version, queue, params, priority,
                max_attempts, run_at, expires_at, timeout_seconds, owner, idempotency_key,
                request_fingerprint, schedule_name, scheduled_for, redriven_from)
            SELECT i, dk, dv, q, p, pr, ma, COALESCE(ra, now()), ea, ts, o, ik, rf, sn, sf, rd
            FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::jsonb[], $6::int[],
                $7::int[], $8::timestamptz[], $9::timestamptz[], $10::float8[], $11::text[],
                $12::text[], $13::text[], $14::text[], $15::timestamptz[], $16::uuid[])
                AS t(i, dk, dv, q, p, pr, ma, ra, ea, ts, o, ik, rf, sn, sf, rd)
            RETURNING id, created_at
        )
        INSERT INTO job_events (job_id, event, at)
        SELECT id, 'created', created_at FROM ins
        """,
        *[list(c) for c in cols],
    )
    if notify:
        queues = {j.queue for j in jobs}
        await conn.execute(
            "SELECT pg_notify($1, $2)", JOBS_CHANNEL, queues.pop() if len(queues) == 1 else "*"
        )
    return [j.id for j in jobs]
