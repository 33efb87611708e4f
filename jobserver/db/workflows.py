"""SQL for stored workflows: `workflows`, `workflow_versions`, `workflow_runs` and
`workflow_run_jobs` (see db/tables.py for what each holds).

A workflow's latest version lives on its row and in `workflow_versions`; an edit writes both
in one transaction. A run's jobs are inserted by the callers through `db.jobs` (the one write
path); here are only the run's own rows, its reads, and its cancel.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from jobserver.db.channels import CANCEL_CHANNEL
from jobserver.db.conn import Conn, ConnOrPool
from jobserver.db.feed import announce

_WORKFLOW = (
    "id, owner, name, description, version, steps, created_by, updated_by, created_at, updated_at"
)
_RUN = (
    "r.id, r.workflow_id, r.version, r.owner, r.input_data, r.priority, r.plan, r.job_id,"
    " r.idempotency_key, r.request_fingerprint, r.created_by, r.created_at, r.cancelled_at,"
    " w.name AS workflow_name, j.status AS job_status, j.started_at AS job_started_at,"
    " j.finished_at AS job_finished_at, j.result AS job_result, j.last_error AS job_error"
)
_RUN_FROM = (
    "workflow_runs r JOIN workflows w ON w.id = r.workflow_id LEFT JOIN jobs j ON j.id = r.job_id"
)


async def workflow_insert(
    conn: Conn,
    workflow_id: uuid.UUID,
    owner: str,
    by: str,
    name: str,
    description: str,
    steps: list[dict[str, Any]],
) -> None:
    """Insert a workflow and its version 1 (caller's transaction). A name the owner already
    uses raises `asyncpg.UniqueViolationError`."""
    await conn.execute(
        "INSERT INTO workflows (id, owner, name, description, steps, created_by, updated_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $6)",
        workflow_id,
        owner,
        name,
        description,
        steps,
        by,
    )
    await conn.execute(
        "INSERT INTO workflow_versions (workflow_id, version, name, description, steps,"
        " created_by) VALUES ($1, 1, $2, $3, $4, $5)",
        workflow_id,
        name,
        description,
        steps,
        by,
    )


async def workflow_get(
    conn: ConnOrPool, workflow_id: uuid.UUID, owner: str | None = None, *, lock: bool = False
) -> asyncpg.Record | None:
    """A live (not deleted) workflow, of `owner` when given."""
    return await conn.fetchrow(
        f"SELECT {_WORKFLOW} FROM workflows WHERE id = $1 AND deleted_at IS NULL"
        f" AND ($2::text IS NULL OR owner = $2){' FOR UPDATE' if lock else ''}",
        workflow_id,
        owner,
    )


async def workflow_update(
    conn: Conn,
    workflow_id: uuid.UUID,
    by: str,
    name: str,
    description: str,
    steps: list[dict[str, Any]],
) -> int:
    """A new version of a workflow (caller's transaction, row locked by the caller); returns
    its number."""
    version: int = await conn.fetchval(
        "UPDATE workflows SET name = $2, description = $3, steps = $4, updated_by = $5,"
        " updated_at = now(), version = version + 1 WHERE id = $1 RETURNING version",
        workflow_id,
        name,
        description,
        steps,
        by,
    )
    await conn.execute(
        "INSERT INTO workflow_versions (workflow_id, version, name, description, steps,"
        " created_by) VALUES ($1, $2, $3, $4, $5, $6)",
        workflow_id,
        version,
        name,
        description,
        steps,
        by,
    )
    return version


async def workflow_delete(conn: ConnOrPool, workflow_id: uuid.UUID) -> None:
    """Soft delete: hidden from reads, its name free again; its versions stay for its runs."""
    await conn.execute(
        "UPDATE workflows SET deleted_at = now(), updated_at = now() WHERE id = $1", workflow_id
    )


async def workflow_list(
    conn: ConnOrPool,
    owner: str | None,
    limit: int,
    after: tuple[str, uuid.UUID] | None,
) -> list[asyncpg.Record]:
    """Live workflows by (name, id)."""
    return await conn.fetch(
        f"SELECT {_WORKFLOW} FROM workflows WHERE deleted_at IS NULL"
        " AND ($1::text IS NULL OR owner = $1)"
        " AND ($2::text IS NULL OR (name, id) > ($2, $3::uuid))"
        " ORDER BY name, id LIMIT $4",
        owner,
        None if after is None else after[0],
        None if after is None else after[1],
        limit,
    )


async def workflow_version_get(
    conn: ConnOrPool, workflow_id: uuid.UUID, version: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT workflow_id, version, name, description, steps, created_by, created_at"
        " FROM workflow_versions WHERE workflow_id = $1 AND version = $2",
        workflow_id,
        version,
    )


async def workflow_run_insert(conn: Conn, **values: Any) -> bool:
    """Insert a run row; False when its (owner, idempotency key) is already taken."""
    cols = list(values)
    args = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    inserted = await conn.fetchval(
        f"INSERT INTO workflow_runs ({', '.join(cols)}) VALUES ({args})"
        " ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
        " RETURNING true",
        *values.values(),
    )
    return bool(inserted)


async def workflow_run_jobs_insert(
    conn: Conn, run_id: uuid.UUID, rows: Sequence[tuple[str, str, int, uuid.UUID]]
) -> None:
    """Record the jobs of a run: (kind, step, item, job id) each."""
    if not rows:
        return
    await conn.execute(
        "INSERT INTO workflow_run_jobs (run_id, kind, step, item, job_id)"
        " SELECT $1, * FROM unnest($2::text[], $3::text[], $4::int[], $5::uuid[])",
        run_id,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
    )


async def workflow_run_get(
    conn: ConnOrPool, run_id: uuid.UUID, owner: str | None = None, *, share: bool = False
) -> asyncpg.Record | None:
    """A run with its workflow's name and its run job's state; `share` locks the run row
    against a concurrent cancel (an expander adding jobs)."""
    lock = " FOR SHARE OF r" if share else ""
    return await conn.fetchrow(
        f"SELECT {_RUN} FROM {_RUN_FROM} WHERE r.id = $1 AND ($2::text IS NULL OR r.owner = $2)"
        + lock,
        run_id,
        owner,
    )


async def workflow_run_by_key(conn: ConnOrPool, owner: str, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_RUN} FROM {_RUN_FROM} WHERE r.owner = $1 AND r.idempotency_key = $2",
        owner,
        key,
    )


async def workflow_run_list(
    conn: ConnOrPool, workflow_id: uuid.UUID, limit: int, before: uuid.UUID | None
) -> list[asyncpg.Record]:
    """A workflow's runs, newest first (run ids are time-ordered)."""
    return await conn.fetch(
        f"SELECT {_RUN} FROM {_RUN_FROM} WHERE r.workflow_id = $1"
        " AND ($2::uuid IS NULL OR r.id < $2) ORDER BY r.id DESC LIMIT $3",
        workflow_id,
        before,
        limit,
    )


async def workflow_run_steps(conn: ConnOrPool, run_id: uuid.UUID) -> list[asyncpg.Record]:
    """Every job of a run with its state (NULL status: pruned since), by step and item."""
    return await conn.fetch(
        "SELECT x.kind, x.step, x.item, x.job_id, j.status, j.attempt, j.max_attempts,"
        " j.created_at, j.started_at, j.finished_at, j.result, j.last_error"
        " FROM workflow_run_jobs x LEFT JOIN jobs j ON j.id = x.job_id"
        " WHERE x.run_id = $1 ORDER BY x.step, x.kind, x.item",
        run_id,
    )


async def workflow_step_outcomes(
    conn: Conn, run_id: uuid.UUID, steps: Sequence[str]
) -> list[asyncpg.Record]:
    """(step, item, status, result) of the jobs of `steps`, in item order."""
    return await conn.fetch(
        "SELECT x.step, x.item, j.status, j.result FROM workflow_run_jobs x"
        " LEFT JOIN jobs j ON j.id = x.job_id"
        " WHERE x.run_id = $1 AND x.kind = 'step' AND x.step = ANY($2::text[])"
        " ORDER BY x.step, x.item",
        run_id,
        list(steps),
    )


async def workflow_step_gates(
    conn: Conn, run_id: uuid.UUID, steps: Sequence[str]
) -> list[asyncpg.Record]:
    """The jobs standing for `steps` now: their own jobs, or their expander while they have
    none (what a new parent is added to)."""
    return await conn.fetch(
        "SELECT x.step, x.job_id FROM workflow_run_jobs x WHERE x.run_id = $1"
        " AND x.step = ANY($2::text[]) AND (x.kind = 'step' OR NOT EXISTS ("
        "   SELECT 1 FROM workflow_run_jobs s WHERE s.run_id = x.run_id AND s.step = x.step"
        "   AND s.kind = 'step')) ORDER BY x.step, x.item",
        run_id,
        list(steps),
    )


async def workflow_step_lock(conn: Conn, run_id: uuid.UUID, step: str) -> bool:
    """Lock a step's expander row (caller's transaction); True when the step already has
    its jobs (a retried expander adds nothing)."""
    await conn.execute(
        "SELECT 1 FROM workflow_run_jobs WHERE run_id = $1 AND kind = 'expand' AND step = $2"
        " FOR UPDATE",
        run_id,
        step,
    )
    made = await conn.fetchval(
        "SELECT true FROM workflow_run_jobs WHERE run_id = $1 AND kind = 'step' AND step = $2"
        " LIMIT 1",
        run_id,
        step,
    )
    return bool(made)


async def workflow_run_cancel(conn: Conn, run_id: uuid.UUID) -> int:
    """Cancel a run (caller's transaction): mark the run (its row lock waits for an expander
    adding jobs), then in one statement cancel every unfinished job of it (queued or waiting:
    cancelled now; running: cancelling, its worker told), with their events. Returns how many
    jobs it changed."""
    await conn.execute(
        "UPDATE workflow_runs SET cancelled_at = coalesce(cancelled_at, now()) WHERE id = $1",
        run_id,
    )
    return int(
        await conn.fetchval(
            f"""
        WITH ids AS (
            SELECT job_id AS id FROM workflow_run_jobs WHERE run_id = $1
            UNION SELECT job_id FROM workflow_runs WHERE id = $1
        ), upd AS (
            UPDATE jobs SET
                status = CASE WHEN status = 'running' THEN 'cancelling' ELSE 'cancelled' END,
                finished_at = CASE WHEN status = 'running' THEN finished_at ELSE now() END,
                cancel_requested_at = now(),
                updated_at = now()
            WHERE id IN (SELECT id FROM ids) AND status IN ('queued', 'waiting', 'running')
            RETURNING id, status, worker_id, attempt
        ), ev AS (
            INSERT INTO job_events (job_id, event, worker_id, attempt)
            SELECT id, CASE WHEN status = 'cancelled' THEN 'cancelled' ELSE 'cancel_requested' END,
                worker_id, attempt
            FROM upd
        ), n AS (
            SELECT pg_notify($2, id::text) FROM upd WHERE status = 'cancelling'
        )
        SELECT (SELECT count(*) FROM upd) + 0 * (SELECT count(*) FROM n)
            + 0 * coalesce({announce("SELECT id FROM upd")}, 0)
        """,
            run_id,
            CANCEL_CHANNEL,
        )
    )
