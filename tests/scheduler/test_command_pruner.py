"""Pruner: runner commands (and their replies) go after `commands_seconds` (a day)."""

from __future__ import annotations

import uuid

import asyncpg

from jobserver.db.runner_commands import runner_command_send, runner_reply_insert
from jobserver.scheduler.pruner import DAY, Pruner


async def test_defaults(pool: asyncpg.Pool) -> None:
    assert Pruner(pool).commands_seconds == DAY


async def test_old_runner_commands_go_in_batches(pool: asyncpg.Pool) -> None:
    ids = [uuid.uuid4() for _ in range(5)]
    for i in ids:
        await runner_command_send(pool, i, None, "status", {}, "admin")
        await runner_reply_insert(pool, i, "w1", {"state": "active"})
    await pool.execute(
        "UPDATE runner_commands SET created_at = now() - interval '25 hours' WHERE id = ANY($1)",
        ids[:4],
    )
    result = await Pruner(pool, batch=3).run_once()
    assert result == {"pruned": 0, "runner_commands": 4}
    left = await pool.fetch("SELECT id FROM runner_commands")
    assert [r["id"] for r in left] == [ids[4]]
    assert await pool.fetchval("SELECT count(*) FROM runner_replies") == 1
    assert await Pruner(pool).run_once() == {"pruned": 0}
