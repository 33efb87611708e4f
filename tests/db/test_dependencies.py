"""Job dependencies in the database: waiting jobs, the settle trigger, add_parents and
parent_results (db/dependencies.py, migration 0014)."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

from jobserver.db.dependencies import NotWaiting, UnknownParent, add_parents, parent_results
from jobserver.db.job_runs import Failure, job_claim_available, job_complete_many, job_fail_many
from jobserver.db.jobs import NewJob, job_cancel, job_insert_many, job_insert_returning
from jobserver.db.maintenance import job_expire_queued

W = "w1"


def job(name: str | None = None, *parents: uuid.UUID, policy: str | None = None) -> NewJob:
    return NewJob(
        "echo",
        1,
        1,
        {"n": name},
        name=name,
        depends_on=list(parents) or None,
        on_parent_failure=policy,
    )


async def statuses(conn: asyncpg.Connection | asyncpg.Pool, *jobs: NewJob) -> list[str]:
    rows = await conn.fetch(
        "SELECT id, status FROM jobs WHERE id = ANY($1::uuid[])", [j.id for j in jobs]
    )
    by_id = {r["id"]: r["status"] for r in rows}
    return [by_id[j.id] for j in jobs]


async def claim(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    return await job_claim_available(conn, W, 100, ["echo@1"], None, 60)


async def succeed(conn: asyncpg.Connection | asyncpg.Pool, rows: list[asyncpg.Record]) -> None:
    ids = [r["id"] for r in rows]
    done = await job_complete_many(
        conn, W, ids, [r["attempt"] for r in rows], ['{"ok": true}'] * len(ids), [0.0] * len(ids)
    )
    assert done == ids


async def test_batch_with_parents_waits_and_is_never_claimed(pool: asyncpg.Pool) -> None:
    a = job("a")
    b = job("b", a.id)
    async with pool.acquire() as conn:
        await job_insert_many(conn, [a, b])
    assert await statuses(pool, a, b) == ["queued", "waiting"]
    row = await pool.fetchrow("SELECT * FROM jobs WHERE id = $1", b.id)
    assert row["depends_on"] == [a.id] and row["waiting_on"] == 1
    assert row["on_parent_failure"] == "cancel"
    assert await pool.fetchval("SELECT has_dependents FROM jobs WHERE id = $1", a.id)
    claimed = await claim(pool)
    assert [r["id"] for r in claimed] == [a.id]
    assert await claim(pool) == []  # b waits


async def test_diamond_settles_in_order(pool: asyncpg.Pool) -> None:
    a = job("a")
    b, c = job("b", a.id), job("c", a.id)
    d = job("d", b.id, c.id)
    async with pool.acquire() as conn:
        await job_insert_many(conn, [a, b, c, d])
    order = []
    for _ in range(3):
        rows = await claim(pool)
        order.append(sorted(r["params"]["n"] for r in rows))
        await succeed(pool, rows)
    assert order == [["a"], ["b", "c"], ["d"]]
    assert await statuses(pool, a, b, c, d) == ["succeeded"] * 4
    # the parents noted for settling never outlive the statement that ended them
    assert await pool.fetchval("SELECT count(*) FROM job_settle_queue") == 0
    results = await parent_results(pool, d.id)
    assert [(r["id"], r["name"], r["status"]) for r in results] == [
        (b.id, "b", "succeeded"),
        (c.id, "c", "succeeded"),
    ]
    assert results[0]["result"] == {"ok": True}


async def test_child_is_queued_in_the_ack_transaction(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """The ack that ends the last parent queues the child before it commits; a concurrent
    snapshot sees neither the parent's success nor the queued child until then."""
    a = job("a")
    b = job("b", a.id)
    async with pool.acquire() as conn:
        await job_insert_many(conn, [a, b])
    [row] = await claim(pool)
    ack = await asyncpg.connect(database_url)
    other = await asyncpg.connect(database_url)
    try:
        tx = ack.transaction()
        await tx.start()
        await succeed(ack, [row])
        assert await statuses(ack, a, b) == ["succeeded", "queued"]  # before commit
        assert await statuses(other, a, b) == ["running", "waiting"]
        await tx.commit()
        assert await statuses(other, a, b) == ["succeeded", "queued"]
        ready = await other.fetchrow(
            "SELECT details FROM job_events WHERE job_id = $1 AND event = 'ready'", b.id
        )
        assert ready is not None and json.loads(ready["details"]) == {"lastParentId": str(a.id)}
    finally:
        await ack.close()
        await other.close()


async def test_failure_cancels_the_cascade_and_continue_runs(pool: asyncpg.Pool) -> None:
    a = job("a")
    b = job("b", a.id)  # cancel (default)
    c = job("c", b.id)  # cancelled in turn
    k = job("k", a.id, policy="continue")
    async with pool.acquire() as conn:
        await job_insert_many(conn, [a, b, c, k])
    [row] = await claim(pool)
    async with pool.acquire() as conn:
        await job_fail_many(
            conn,
            W,
            [Failure(row["id"], row["attempt"], "failed", "boom", None, 0, 1.0, final=True)],
        )
    assert await statuses(pool, a, b, c, k) == ["failed", "cancelled", "cancelled", "queued"]
    ev = await pool.fetchrow(
        "SELECT details FROM job_events WHERE job_id = $1 AND event = 'cancelled'", b.id
    )
    assert ev["details"]["parentId"] == str(a.id) and ev["details"]["parentStatus"] == "failed"
    ev = await pool.fetchrow(
        "SELECT details FROM job_events WHERE job_id = $1 AND event = 'cancelled'", c.id
    )
    assert ev["details"]["parentId"] == str(b.id)
    assert "parent" in await pool.fetchval("SELECT last_error FROM jobs WHERE id = $1", c.id)


async def test_retry_scheduled_is_not_a_final_failure(pool: asyncpg.Pool) -> None:
    a = NewJob("echo", 1, 3, {})
    b = job("b", a.id)
    async with pool.acquire() as conn:
        await job_insert_many(conn, [a, b])
    [row] = await claim(pool)
    async with pool.acquire() as conn:
        await job_fail_many(conn, W, [Failure(row["id"], 1, "failed", "boom", None, 0, 1.0)])
    assert await statuses(pool, a, b) == ["queued", "waiting"]


async def test_stored_parents_already_ended(pool: asyncpg.Pool) -> None:
    ok, bad = job("ok"), job("bad")
    async with pool.acquire() as conn:
        await job_insert_many(conn, [ok, bad])
    await pool.execute("UPDATE jobs SET status = 'succeeded' WHERE id = $1", ok.id)
    await job_cancel(pool, bad.id)
    x = job("x", ok.id)  # satisfied at once
    y = job("y", ok.id, bad.id)  # cancelled at once
    z = job("z", y.id)  # in the batch, cancelled with y
    q = job("q", bad.id, policy="continue")
    async with pool.acquire() as conn:
        rows = await job_insert_returning(conn, [x, y, z, q])
    assert [r["status"] for r in rows] == ["queued", "waiting", "waiting", "waiting"]  # as inserted
    assert [x.status, y.status, z.status, q.status] == [
        "queued",
        "cancelled",
        "cancelled",
        "queued",
    ]
    assert await statuses(pool, x, y, z, q) == ["queued", "cancelled", "cancelled", "queued"]


async def test_unknown_parent_writes_nothing(pool: asyncpg.Pool) -> None:
    a = job("a")
    missing = uuid.uuid4()
    b = job("b", a.id, missing)
    async with pool.acquire() as conn:
        with pytest.raises(UnknownParent) as err:
            await job_insert_many(conn, [a, b])
    assert err.value.child_id == b.id and err.value.position == 1
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 0
    assert await pool.fetchval("SELECT count(*) FROM job_dependencies") == 0


async def test_cancel_and_expiry_of_waiting_jobs_settle_dependents(pool: asyncpg.Pool) -> None:
    a = job("a")
    b = job("b", a.id)
    c = job("c", b.id)
    d = job("d", b.id, policy="continue")
    async with pool.acquire() as conn:
        await job_insert_many(conn, [a, b, c, d])
    cancelled = await job_cancel(pool, b.id)
    assert cancelled is not None and cancelled["status"] == "cancelled"
    assert await statuses(pool, a, b, c, d) == ["queued", "cancelled", "cancelled", "queued"]
    e = job("e", a.id)
    f = job("f", e.id)
    async with pool.acquire() as conn:
        await job_insert_many(conn, [e, f])
    await pool.execute("UPDATE jobs SET expires_at = now() - interval '1 s' WHERE id = $1", e.id)
    async with pool.acquire() as conn:
        assert await job_expire_queued(conn) == [e.id]
    assert await statuses(pool, e, f) == ["expired", "cancelled"]


async def test_deleting_an_unfinished_parent_does_not_strand_its_child(
    pool: asyncpg.Pool,
) -> None:
    a = job("a")
    b = job("b", a.id, policy="continue")
    async with pool.acquire() as conn:
        await job_insert_many(conn, [a, b])
    await pool.execute("DELETE FROM jobs WHERE id = $1", a.id)
    assert await statuses(pool, b) == ["queued"]
    assert await pool.fetchval("SELECT count(*) FROM job_dependencies") == 0


async def test_pruned_parent_keeps_the_child_waiting_on_the_others(pool: asyncpg.Pool) -> None:
    a, b = job("a"), job("b")
    c = job("c", a.id, b.id)
    async with pool.acquire() as conn:
        await job_insert_many(conn, [a, b, c])
    rows = await claim(pool)
    await succeed(pool, [r for r in rows if r["id"] == a.id])
    await pool.execute("DELETE FROM jobs WHERE id = $1", a.id)  # pruned
    assert await statuses(pool, c) == ["waiting"]
    await succeed(pool, [r for r in rows if r["id"] == b.id])
    assert await statuses(pool, c) == ["queued"]
    results = await parent_results(pool, c.id)
    assert [(r["id"], r["status"]) for r in results] == [(a.id, None), (b.id, "succeeded")]


async def test_add_parents(pool: asyncpg.Pool) -> None:
    a = job("a")
    fan_in = job("in", a.id)
    async with pool.acquire() as conn:
        await job_insert_many(conn, [a, fan_in])
    [row] = await claim(pool)
    items = [job(f"i{i}", a.id) for i in range(5)]
    async with pool.acquire() as conn, conn.transaction():
        await job_insert_many(conn, items)
        await add_parents(conn, fan_in.id, [i.id for i in items])
        await succeed(conn, [row])
        assert await statuses(conn, fan_in) == ["waiting"]
    assert await pool.fetchval("SELECT waiting_on FROM jobs WHERE id = $1", fan_in.id) == 5
    rows = await claim(pool)
    assert len(rows) == 5
    await succeed(pool, rows[:4])
    assert await statuses(pool, fan_in) == ["waiting"]
    await succeed(pool, rows[4:])
    assert await statuses(pool, fan_in) == ["queued"]
    names = [r["name"] for r in await parent_results(pool, fan_in.id)]
    assert names == ["a", "i0", "i1", "i2", "i3", "i4"]
    async with pool.acquire() as conn:
        with pytest.raises(NotWaiting):
            await add_parents(conn, fan_in.id, [a.id])


async def test_add_parents_failed_parent_and_unknown(pool: asyncpg.Pool) -> None:
    a, bad = job("a"), job("bad")
    child = job("c", a.id)
    async with pool.acquire() as conn:
        await job_insert_many(conn, [a, bad, child])
    async with pool.acquire() as conn:
        with pytest.raises(UnknownParent):
            await add_parents(conn, child.id, [uuid.uuid4()])
    await job_cancel(pool, bad.id)
    async with pool.acquire() as conn:
        await add_parents(conn, child.id, [bad.id])
    assert await statuses(pool, child) == ["cancelled"]


async def test_fan_in_acked_in_batches_counts_each_parent_once(pool: asyncpg.Pool) -> None:
    """Parents that succeed in one statement lower their child once, by their number (a
    statement-level trigger); a parent that succeeded before the child's insert is neither
    counted nor marked, and one ready event names a parent of the last statement."""
    done_first = job("p0")
    async with pool.acquire() as conn:
        await job_insert_many(conn, [done_first])
    await succeed(pool, await claim(pool))
    parents = [job(f"p{i}") for i in range(1, 8)]
    async with pool.acquire() as conn:
        await job_insert_many(conn, parents)
    fan_in = job("all", done_first.id, *(p.id for p in parents))
    async with pool.acquire() as conn:
        await job_insert_many(conn, [fan_in])
    row = await pool.fetchrow(
        "SELECT status, waiting_on, depends_on FROM jobs WHERE id = $1", fan_in.id
    )
    assert (row["status"], row["waiting_on"]) == ("waiting", 7)
    assert len(row["depends_on"]) == 8
    assert not await pool.fetchval("SELECT has_dependents FROM jobs WHERE id = $1", done_first.id)
    rows = await claim(pool)
    assert sorted(r["id"] for r in rows) == sorted(p.id for p in parents)
    first, rest = rows[:4], rows[4:]
    await succeed(pool, first)  # one statement, four parents
    assert await pool.fetchval("SELECT waiting_on FROM jobs WHERE id = $1", fan_in.id) == 3
    assert await statuses(pool, fan_in) == ["waiting"]
    await succeed(pool, rest)
    row = await pool.fetchrow("SELECT status, waiting_on FROM jobs WHERE id = $1", fan_in.id)
    assert (row["status"], row["waiting_on"]) == ("queued", 0)
    ready = await pool.fetch(
        "SELECT details FROM job_events WHERE job_id = $1 AND event = 'ready'", fan_in.id
    )
    assert len(ready) == 1
    last = uuid.UUID(ready[0]["details"]["lastParentId"])
    assert last in {r["id"] for r in rest}
    assert len(await parent_results(pool, fan_in.id)) == 8


async def test_a_parent_that_ended_is_neither_locked_nor_an_edge(pool: asyncpg.Pool) -> None:
    a, f = job("a"), job("f")
    async with pool.acquire() as conn:
        await job_insert_many(conn, [a, f])
    rows = await claim(pool)
    await succeed(pool, [r for r in rows if r["id"] == a.id])
    async with pool.acquire() as conn:
        await job_fail_many(
            conn, W, [Failure(f.id, 1, "failed", "boom", None, 0.0, 1.0, final=True)]
        )
    before = await pool.fetch("SELECT id, xmin::text FROM jobs ORDER BY id")
    b = job("b", a.id)  # a succeeded: b is queued at once, a is not written
    c = job("c", a.id, f.id, policy="continue")  # f failed: counted as done at once
    async with pool.acquire() as conn:
        await job_insert_many(conn, [b, c])
    assert await statuses(pool, b, c) == ["queued", "queued"]
    assert (
        await pool.fetch(
            "SELECT id, xmin::text FROM jobs WHERE id <> ALL($1) ORDER BY id", [b.id, c.id]
        )
        == before
    )
    edges = await pool.fetch("SELECT child_id, parent_id FROM job_dependencies")
    assert [(e["child_id"], e["parent_id"]) for e in edges] == [(c.id, f.id)]
    assert [p["id"] for p in await parent_results(pool, c.id)] == [a.id, f.id]


async def test_deleting_jobs_removes_their_edges(pool: asyncpg.Pool) -> None:
    a, b = job("a"), job("b")
    c = job("c", a.id, b.id)
    d = job("d", c.id)
    async with pool.acquire() as conn:
        await job_insert_many(conn, [a, b, c, d])
    assert await pool.fetchval("SELECT count(*) FROM job_dependencies") == 3
    await pool.execute("DELETE FROM jobs WHERE id = $1", c.id)  # a child and a parent
    edges = await pool.fetch("SELECT child_id, parent_id FROM job_dependencies")
    assert edges == []
    assert await statuses(pool, d) == ["cancelled"]  # its unfinished parent went
    e = job("e", a.id)
    async with pool.acquire() as conn:
        await job_insert_many(conn, [e])
    await pool.execute("TRUNCATE jobs CASCADE")
    assert await pool.fetchval("SELECT count(*) FROM job_dependencies") == 0
