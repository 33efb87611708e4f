"""SQL for broadcast jobs: one child job per live worker, and a parent that sums them.

A broadcast parent is `waiting` on its children (`depends_on`, policy 'continue', column
`broadcast` true); each child sits in the private queue `@<worker id>` of one worker, which
only that worker claims (the claim's private-queue rule in db/job_runs.py), with max_attempts
1. The parent's end is the database's (migration 0017): when its last child ends, the
dependencies trigger's step to `queued` is turned into `succeeded` (every child succeeded) or
`failed`, with the sums as its result; a parent cancelled while they run cancels them.

- `broadcast_workers`: the live workers that would run a job of a definition and queue now
- `broadcast_children`: a parent's children (id, worker, status) for its answer
- `broadcast_fail_orphans`: queued children whose worker is gone (the rescuer's pass)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from jobserver.db.conn import Conn, ConnOrPool
from jobserver.db.feed import announce

PRIVATE_PREFIX = "@"  # a private queue: "@" + worker id (a queue name a token cannot give)


def private_queue(worker_id: str) -> str:
    """The queue only `worker_id` claims."""
    return PRIVATE_PREFIX + worker_id


async def broadcast_workers(
    conn: ConnOrPool, ref: str, queue: str, silent_seconds: float
) -> list[str]:
    """Ids of the workers that are active, seen within `silent_seconds`, have the definition
    `ref` ("key@version") and serve `queue` (one of theirs, or they serve every queue)."""
    rows = await conn.fetch(
        """
        SELECT id FROM workers
        WHERE status = 'active' AND last_seen_at > now() - make_interval(secs => $3)
          AND $1 = ANY(definitions) AND (queues IS NULL OR $2 = ANY(queues))
        ORDER BY id
        """,
        ref,
        queue,
        float(silent_seconds),
    )
    return [r[0] for r in rows]


async def broadcast_children(
    conn: ConnOrPool, child_ids: Sequence[uuid.UUID]
) -> list[asyncpg.Record]:
    """(id, worker, status) of a parent's children (its `depends_on`), in that order; a child
    pruned since is left out."""
    return await conn.fetch(
        """
        SELECT c.id, substr(c.queue, 2) AS worker, c.status
        FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n) JOIN jobs c ON c.id = u.id
        ORDER BY u.n
        """,
        list(child_ids),
    )


async def broadcast_fail_orphans(
    conn: Conn, silent_seconds: float, limit: int = 1000
) -> list[uuid.UUID]:
    """Fail up to `limit` queued jobs of private queues whose worker is gone (no row, not
    active or stopping, or not seen for `silent_seconds`): no other worker may run them. Each
    gets a `failed` event naming the worker; its parent's sums follow in this statement (the
    dependencies trigger). Walks jobs_private_queued_idx only."""
    rows = await conn.fetch(
        f"""
        WITH orphans AS (
            SELECT j.id FROM jobs j
            WHERE j.status = 'queued' AND left(j.queue, 1) = '@'
              AND NOT EXISTS (
                SELECT 1 FROM workers w
                WHERE w.id = substr(j.queue, 2) AND w.status IN ('active', 'stopping')
                  AND w.last_seen_at > now() - make_interval(secs => $1))
            ORDER BY j.queue
            LIMIT $2
            FOR UPDATE OF j SKIP LOCKED
        ), done AS (
            UPDATE jobs j SET status = 'failed', finished_at = now(), updated_at = now(),
                last_error = 'worker ' || substr(j.queue, 2) || ' is gone'
            FROM orphans o WHERE j.id = o.id AND j.status = 'queued'
            RETURNING j.id, j.attempt, substr(j.queue, 2) AS worker
        ), ev AS (
            INSERT INTO job_events (job_id, event, worker_id, attempt, details)
            SELECT id, 'failed', worker, attempt,
                jsonb_build_object('error', 'worker ' || worker || ' is gone',
                    'workerId', worker)
            FROM done
        )
        SELECT id FROM done, (SELECT {announce("SELECT id FROM done")} AS fed) f
        """,
        float(silent_seconds),
        limit,
    )
    return [r[0] for r in rows]
