"""SQL for what a client does with a job once it has one: lock it to retry it, link a retry to
the job it repeats, delete it.

A retry is written in one transaction (see `jobserver.api.job_actions`): the old row locked
(`job_lock`), the new job inserted through the one insert path (`jobserver.db.jobs`), the old
row's `retried_as` set (`job_mark_retried`) and a `retried` event on each. `job_delete`
removes a job with its events, attempts and blobs (their foreign keys cascade); the rows that
name it (`retried_from`, a schedule's last job, a dead-letter row) keep its id as a plain
reference.
"""

from __future__ import annotations

import uuid

import asyncpg

from jobserver.db.conn import Conn, ConnOrPool
from jobserver.db.jobs import JOB_COLUMNS


async def job_lock(
    conn: Conn, job_id: uuid.UUID, owner: str | None = None
) -> asyncpg.Record | None:
    """The job (`JOB_COLUMNS`), locked until the caller's transaction ends; with `owner`, only
    if it belongs to that owner."""
    return await conn.fetchrow(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND ($2::text IS NULL OR owner = $2)"
        " FOR UPDATE",
        job_id,
        owner,
    )


async def job_exists(conn: ConnOrPool, job_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)", job_id))


async def job_mark_retried(conn: Conn, job_id: uuid.UUID, retry_id: uuid.UUID) -> None:
    """Point the job at its retry (`retried_as`); the retry holds `retried_from` already."""
    await conn.execute(
        "UPDATE jobs SET retried_as = $2, updated_at = now() WHERE id = $1", job_id, retry_id
    )


async def job_delete(conn: Conn, job_id: uuid.UUID) -> bool:
    """Delete the job with its events, attempts and blobs (ON DELETE CASCADE); False when
    absent."""
    result = await conn.execute("DELETE FROM jobs WHERE id = $1", job_id)
    return result.endswith(" 1")
