"""Broadcast jobs in the database (db/broadcast.py, migration 0017): private queues claimed by
their worker only, the parent summed in the statement that ends its last child, a cancelled
parent cancelling its children, and the rescue pass failing children whose worker is gone."""

from __future__ import annotations

import asyncpg

from jobserver.core.broadcast import broadcast_jobs
from jobserver.db.broadcast import broadcast_fail_orphans, broadcast_workers
from jobserver.db.job_runs import Failure, job_claim_available, job_complete_many, job_fail_many
from jobserver.db.jobs import NewJob, job_cancel, job_insert_many
from jobserver.db.workers import worker_register, worker_set_status
from jobserver.scheduler.rescuer import Rescuer

REF = "echo@1"


async def broadcast(pool: asyncpg.Pool, workers: list[str], **kw: object) -> list[NewJob]:
    """Insert a broadcast of echo@1 to `workers`: the children, then the parent."""
    jobs = broadcast_jobs(NewJob("echo", 1, 3, {"x": 1}, **kw), workers)  # type: ignore[arg-type]
    async with pool.acquire() as conn:
        await job_insert_many(conn, jobs)
    return jobs


async def claim(
    pool: asyncpg.Pool | asyncpg.Connection, worker: str, queues: list[str] | None = None
) -> list[asyncpg.Record]:
    return await job_claim_available(pool, worker, 100, [REF], queues, 60)


async def succeed(
    pool: asyncpg.Pool | asyncpg.Connection, worker: str, row: asyncpg.Record
) -> None:
    done = await job_complete_many(pool, worker, [row["id"]], [row["attempt"]], ["1"], [0.0])
    assert done == [row["id"]]


async def parent_row(pool: asyncpg.Pool | asyncpg.Connection, job: NewJob) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job.id)
    assert row is not None
    return row


async def test_a_private_queue_is_claimed_by_its_worker_only(pool: asyncpg.Pool) -> None:
    *children, parent = await broadcast(pool, ["w1", "w2"])
    assert [c.queue for c in children] == ["@w1", "@w2"]
    assert (await parent_row(pool, parent))["status"] == "waiting"
    assert await claim(pool, "w3") == []  # every queue: never another worker's private one
    assert await claim(pool, "w3", ["@w1", "@w2"]) == []  # nor by naming it
    [mine] = await claim(pool, "w1", ["other"])  # its own, whatever queues it serves
    assert mine["id"] == children[0].id and mine["max_attempts"] == 1
    [second] = await claim(pool, "w2")
    assert second["id"] == children[1].id
    assert await claim(pool, "w2") == []  # the parent is never claimed


async def test_the_last_child_ends_the_parent_in_its_own_statement(pool: asyncpg.Pool) -> None:
    *_, parent = await broadcast(pool, ["w1", "w2"])
    [a] = await claim(pool, "w1")
    [b] = await claim(pool, "w2")
    await succeed(pool, "w1", a)
    row = await parent_row(pool, parent)
    assert row["status"] == "waiting" and row["waiting_on"] == 1
    async with pool.acquire() as conn, conn.transaction():
        await succeed(conn, "w2", b)
        row = await parent_row(conn, parent)
        assert row["status"] == "succeeded"  # before the commit, in the same transaction
        assert (await parent_row(pool, parent))["status"] == "waiting"  # others: not yet
    assert row["result"] == {
        "workers": {"w1": "succeeded", "w2": "succeeded"},
        "succeeded": 2,
        "failed": 0,
    }
    assert row["finished_at"] is not None
    events = [
        r[0]
        for r in await pool.fetch(
            "SELECT event FROM job_events WHERE job_id = $1 ORDER BY id", parent.id
        )
    ]
    assert events == ["succeeded"]


async def test_one_failed_child_fails_the_parent_with_the_sums(pool: asyncpg.Pool) -> None:
    *_, parent = await broadcast(pool, ["w1", "w2", "w3"])
    rows = {w: (await claim(pool, w))[0] for w in ("w1", "w2", "w3")}
    await succeed(pool, "w1", rows["w1"])
    await succeed(pool, "w3", rows["w3"])
    r = rows["w2"]
    async with pool.acquire() as conn:
        failure = Failure(r["id"], r["attempt"], "failed", "boom", None, 0, 1)
        await job_fail_many(conn, "w2", [failure])
    row = await parent_row(pool, parent)
    assert row["status"] == "failed"
    assert row["result"] == {
        "workers": {"w1": "succeeded", "w2": "failed", "w3": "succeeded"},
        "succeeded": 2,
        "failed": 1,
    }
    assert row["last_error"] == "1 of 3 workers did not succeed"


async def test_cancelling_the_parent_cancels_its_children(pool: asyncpg.Pool) -> None:
    children = (*_, parent) = await broadcast(pool, ["w1", "w2"])
    [running] = await claim(pool, "w1")
    cancelled = await job_cancel(pool, parent.id)
    assert cancelled is not None and cancelled["status"] == "cancelled"
    statuses = {
        r["id"]: r["status"]
        for r in await pool.fetch(
            "SELECT id, status FROM jobs WHERE id = ANY($1)", [c.id for c in children]
        )
    }
    assert statuses[running["id"]] == "cancelling"  # the worker is told, as for any cancel
    assert statuses[children[1].id] == "cancelled"
    assert statuses[parent.id] == "cancelled"
    details = await pool.fetchval(
        "SELECT details FROM job_events WHERE job_id = $1 AND event = 'cancelled'",
        children[1].id,
    )
    assert details["reason"] == "broadcast cancelled"


async def test_live_workers_are_those_with_the_definition_and_queue(pool: asyncpg.Pool) -> None:
    await worker_register(pool, "all", "h", 1, None, [REF], 1)
    await worker_register(pool, "emails", "h", 2, ["emails"], [REF], 1)
    await worker_register(pool, "other-def", "h", 3, None, ["other@1"], 1)
    await worker_register(pool, "stopped", "h", 4, None, [REF], 1)
    await worker_set_status(pool, "stopped", "stopped")
    assert await broadcast_workers(pool, REF, "default", 30) == ["all"]
    assert await broadcast_workers(pool, REF, "emails", 30) == ["all", "emails"]
    await pool.execute("UPDATE workers SET last_seen_at = now() - interval '1 minute'")
    assert await broadcast_workers(pool, REF, "emails", 30) == []


async def test_rescue_fails_queued_children_of_a_gone_worker(pool: asyncpg.Pool) -> None:
    await worker_register(pool, "alive", "h", 1, None, [REF], 1)
    await worker_register(pool, "dead", "h", 2, None, [REF], 1)
    alive, dead, parent = await broadcast(pool, ["alive", "dead"])
    assert await broadcast_fail_orphans(pool, 30) == []  # both live
    [a] = await claim(pool, "alive")
    await succeed(pool, "alive", a)
    await pool.execute("UPDATE workers SET status = 'gone' WHERE id = 'dead'")
    totals = await Rescuer(pool, silent_seconds=30).run_once()
    assert totals["orphaned"] == 1
    row = await pool.fetchrow("SELECT status, last_error FROM jobs WHERE id = $1", dead.id)
    assert (row["status"], row["last_error"]) == ("failed", "worker dead is gone")
    details = await pool.fetchval(
        "SELECT details FROM job_events WHERE job_id = $1 AND event = 'failed'", dead.id
    )
    assert details["workerId"] == "dead"
    p = await parent_row(pool, parent)
    assert p["status"] == "failed"
    assert p["result"] == {
        "workers": {"alive": "succeeded", "dead": "failed"},
        "succeeded": 1,
        "failed": 1,
    }
    assert alive.queue == "@alive"


async def test_a_child_of_a_worker_without_a_row_is_failed_too(pool: asyncpg.Pool) -> None:
    [child, parent] = await broadcast(pool, ["never-registered"])
    assert await broadcast_fail_orphans(pool, 30) == [child.id]
    assert (await parent_row(pool, parent))["status"] == "failed"
