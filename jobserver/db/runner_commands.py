"""SQL for the control channel: `runner_commands` and their `runner_replies`.

A command is one row (target worker id, or NULL for every live worker; the command name; its
args) written and announced in one statement: NOTIFY CONTROL_CHANNEL with "<id> <target>"
(target "*" when NULL), delivered when the statement's transaction commits. Each worker that
acts on it writes one reply row, announced on REPLY_CHANNEL with "<command id> <worker id>";
a second reply of the same worker to the same command is ignored. The scheduler's pruner
deletes commands (and their replies, ON DELETE CASCADE) after a day.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from jobserver.db.channels import CONTROL_CHANNEL, REPLY_CHANNEL
from jobserver.db.conn import ConnOrPool


async def runner_command_send(
    conn: ConnOrPool,
    command_id: uuid.UUID,
    target: str | None,
    command: str,
    args: dict[str, Any],
    created_by: str | None,
) -> asyncpg.Record:
    """Write a command and announce it; returns (id, created_at). The caller picks the id, so
    it can wait for replies before the command exists."""
    row = await conn.fetchrow(
        """
        WITH c AS (
            INSERT INTO runner_commands (id, target, command, args, created_by)
            VALUES ($1, $2, $3, $4, $5)
            RETURNING id, target, created_at
        )
        SELECT c.id, c.created_at,
            pg_notify($6, c.id::text || ' ' || coalesce(c.target, '*')) AS notified
        FROM c
        """,
        command_id,
        target,
        command,
        args,
        created_by,
        CONTROL_CHANNEL,
    )
    assert row is not None
    return row


async def runner_command_get(conn: ConnOrPool, command_id: uuid.UUID) -> asyncpg.Record | None:
    """One command: id, target, command, args, created_at, created_by."""
    return await conn.fetchrow(
        "SELECT id, target, command, args, created_at, created_by FROM runner_commands"
        " WHERE id = $1",
        command_id,
    )


async def runner_commands_unanswered(
    conn: ConnOrPool, worker_id: str, within_seconds: float, limit: int = 100
) -> list[asyncpg.Record]:
    """Commands for this worker (or for all) it has not answered, written in the last
    `within_seconds` and since the worker (re)started, oldest first: what a worker whose
    LISTEN session was down may have missed."""
    return await conn.fetch(
        """
        SELECT c.id, c.target, c.command, c.args, c.created_at, c.created_by
        FROM runner_commands c
        WHERE c.created_at >= greatest(now() - make_interval(secs => $2::float8),
                                       (SELECT w.started_at FROM workers w WHERE w.id = $1))
          AND (c.target IS NULL OR c.target = $1)
          AND NOT EXISTS (SELECT 1 FROM runner_replies r
                          WHERE r.command_id = c.id AND r.worker_id = $1)
        ORDER BY c.created_at
        LIMIT $3
        """,
        worker_id,
        within_seconds,
        limit,
    )


async def runner_reply_insert(
    conn: ConnOrPool, command_id: uuid.UUID, worker_id: str, reply: dict[str, Any]
) -> bool:
    """Record a worker's reply and announce it; False when it was already recorded or the
    command is gone (pruned)."""
    row = await conn.fetchrow(
        """
        WITH r AS (
            INSERT INTO runner_replies (command_id, worker_id, reply)
            SELECT c.id, $2, $3 FROM runner_commands c WHERE c.id = $1
            ON CONFLICT (command_id, worker_id) DO NOTHING
            RETURNING command_id
        )
        SELECT pg_notify($4, r.command_id::text || ' ' || $2) AS notified FROM r
        """,
        command_id,
        worker_id,
        reply,
        REPLY_CHANNEL,
    )
    return row is not None


async def runner_replies_list(conn: ConnOrPool, command_id: uuid.UUID) -> list[asyncpg.Record]:
    """The replies to a command: worker_id, reply, answered_at, in the order they came."""
    return await conn.fetch(
        "SELECT worker_id, reply, answered_at FROM runner_replies WHERE command_id = $1"
        " ORDER BY answered_at, worker_id",
        command_id,
    )


async def runner_commands_prune(conn: ConnOrPool, *, older_than_seconds: float, limit: int) -> int:
    """Delete up to `limit` commands (and their replies) written more than
    `older_than_seconds` ago, oldest first on runner_commands_created_idx; returns how many."""
    result: str = await conn.execute(
        """
        DELETE FROM runner_commands WHERE id IN (
            SELECT id FROM runner_commands
            WHERE created_at < now() - make_interval(secs => $1::float8)
            ORDER BY created_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        """,
        older_than_seconds,
        limit,
    )
    return int(result.split()[-1])
