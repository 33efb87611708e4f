"""The control channel's SQL (db/runner_commands.py, db/paused_queues.py) and the claim's
`skip_queues`, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from jobserver.db import job_runs
from jobserver.db.channels import CONTROL_CHANNEL, REPLY_CHANNEL
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.db.paused_queues import (
    paused_queue_list,
    paused_queue_names,
    paused_queue_pause,
    paused_queue_resume,
)
from jobserver.db.pool import connect
from jobserver.db.runner_commands import (
    runner_command_get,
    runner_command_send,
    runner_commands_prune,
    runner_commands_unanswered,
    runner_replies_list,
    runner_reply_insert,
)
from jobserver.db.workers import worker_list, worker_live_ids, worker_register, worker_set_status
from tests.scheduler.helpers import register_builtin


async def _listen(database_url: str, channel: str) -> tuple[asyncpg.Connection, asyncio.Queue[str]]:
    conn = await connect(database_url)
    got: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener(channel, lambda _c, _p, _ch, payload: got.put_nowait(payload))
    return conn, got


async def test_a_command_and_its_replies_are_announced(
    pool: asyncpg.Pool, database_url: str
) -> None:
    control, commands = await _listen(database_url, CONTROL_CHANNEL)
    replies, answers = await _listen(database_url, REPLY_CHANNEL)
    try:
        one, every = uuid.uuid4(), uuid.uuid4()
        await runner_command_send(pool, one, "w1", "ping", {}, "admin")
        await runner_command_send(pool, every, None, "status", {"queue": "emails"}, None)
        assert await asyncio.wait_for(commands.get(), 5) == f"{one} w1"
        assert await asyncio.wait_for(commands.get(), 5) == f"{every} *"
        row = await runner_command_get(pool, every)
        assert row is not None
        assert (row["target"], row["command"], row["args"]) == (None, "status", {"queue": "emails"})

        assert await runner_reply_insert(pool, one, "w1", {"pong": True})
        assert not await runner_reply_insert(pool, one, "w1", {"pong": "again"})  # once
        assert not await runner_reply_insert(pool, uuid.uuid4(), "w1", {})  # no such command
        assert await asyncio.wait_for(answers.get(), 5) == f"{one} w1"
        assert answers.empty()
        [reply] = await runner_replies_list(pool, one)
        assert (reply["worker_id"], reply["reply"]) == ("w1", {"pong": True})
    finally:
        await control.close()
        await replies.close()


async def test_unanswered_commands_since_the_worker_started(pool: asyncpg.Pool) -> None:
    before = uuid.uuid4()
    await runner_command_send(pool, before, None, "status", {}, None)
    await pool.execute("UPDATE runner_commands SET created_at = now() - interval '1 minute'")
    await worker_register(pool, "w1", "h", 1, None, [], 1)
    mine, everyone, theirs, answered = (uuid.uuid4() for _ in range(4))
    await runner_command_send(pool, mine, "w1", "ping", {}, None)
    await runner_command_send(pool, everyone, None, "status", {}, None)
    await runner_command_send(pool, theirs, "w2", "ping", {}, None)
    await runner_command_send(pool, answered, None, "reload", {}, None)
    await runner_reply_insert(pool, answered, "w1", {})
    rows = await runner_commands_unanswered(pool, "w1", 30.0)
    assert [r["id"] for r in rows] == [mine, everyone]
    assert await runner_commands_unanswered(pool, "w1", 0.0) == []


async def test_old_commands_are_pruned_with_their_replies(pool: asyncpg.Pool) -> None:
    ids = [uuid.uuid4() for _ in range(5)]
    for i in ids:
        await runner_command_send(pool, i, None, "status", {}, None)
        await runner_reply_insert(pool, i, "w1", {"ok": True})
    await pool.execute(
        "UPDATE runner_commands SET created_at = now() - interval '2 days' WHERE id = ANY($1)",
        ids[:3],
    )
    assert await runner_commands_prune(pool, older_than_seconds=86400, limit=2) == 2
    assert await runner_commands_prune(pool, older_than_seconds=86400, limit=2) == 1
    assert await runner_commands_prune(pool, older_than_seconds=86400, limit=2) == 0
    assert await pool.fetchval("SELECT count(*) FROM runner_commands") == 2
    assert await pool.fetchval("SELECT count(*) FROM runner_replies") == 2


async def test_pause_and_resume_a_queue(pool: asyncpg.Pool) -> None:
    row, created = await paused_queue_pause(pool, "emails", "admin", "maintenance")
    assert created and (row["queue"], row["paused_by"], row["reason"]) == (
        "emails",
        "admin",
        "maintenance",
    )
    again, created = await paused_queue_pause(pool, "emails", "other", "another reason")
    assert not created and (again["paused_by"], again["reason"]) == ("admin", "maintenance")
    assert again["paused_at"] == row["paused_at"]
    await paused_queue_pause(pool, "alerts", None, None)
    assert await paused_queue_names(pool) == ["alerts", "emails"]
    assert [r["queue"] for r in await paused_queue_list(pool)] == ["alerts", "emails"]
    assert [r["queue"] for r in await paused_queue_list(pool, limit=1, after="alerts")] == [
        "emails"
    ]
    gone = await paused_queue_resume(pool, "emails")
    assert gone is not None and gone["reason"] == "maintenance"
    assert await paused_queue_resume(pool, "emails") is None
    assert await paused_queue_names(pool) == ["alerts"]


async def test_a_claim_skips_the_queues_it_is_given(pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    async with pool.acquire() as conn:
        await job_insert_many(
            conn,
            [NewJob("echo", 1, 3, {}, queue=q) for q in ("emails", "default", "emails", "sms")],
            notify=False,
        )
        rows = await job_runs.job_claim_available(
            conn, "w1", 10, ["echo@1"], None, 30, skip_queues=["emails", "sms"]
        )
        assert len(rows) == 1
        # the limited claim (a concurrency limit) skips them the same way
        rows = await job_runs.job_claim_available(
            conn, "w1", 10, ["echo@1"], None, 30, {"echo": 100}, skip_queues=["emails"]
        )
        assert len(rows) == 1
    left = await pool.fetch("SELECT queue FROM jobs WHERE status = 'queued' ORDER BY queue")
    assert [r["queue"] for r in left] == ["emails", "emails"]


async def test_live_workers_and_the_queue_filter(pool: asyncpg.Pool) -> None:
    await worker_register(pool, "all", "h", 1, None, [], 1)
    await worker_register(pool, "emails", "h", 2, ["emails"], [], 1)
    await worker_register(pool, "other", "h", 3, ["other"], [], 1)
    await worker_register(pool, "stopped", "h", 4, None, [], 1)
    await worker_set_status(pool, "stopped", "stopped")
    assert await worker_live_ids(pool) == ["all", "emails", "other"]
    assert await worker_live_ids(pool, "emails") == ["all", "emails"]
    rows = await worker_list(pool, queue="emails")
    assert sorted(r["id"] for r in rows) == ["all", "emails", "stopped"]
