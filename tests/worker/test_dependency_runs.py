"""Jobs with parents run by real workers: a diamond in order, each step once; a failing
parent cancels its dependents (cascade) while `continue` runs; `{{parents.<name>.result}}`
in templated params; a `kill -9` of the worker mid-chain: the chain completes after rescue,
each step succeeded exactly once."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.db.maintenance import job_rescue_expired
from jobserver.worker.worker import Worker
from tests.worker.conftest import Proc, job, wait_for


def step(tag: str, *parents: NewJob, **params: Any) -> NewJob:
    return NewJob(
        "test.step",
        1,
        3,
        {"tag": tag, **params},
        name=tag,
        depends_on=[p.id for p in parents] or None,
        on_parent_failure=params.pop("policy", None),
    )


async def insert(pool: asyncpg.Pool, *jobs: NewJob) -> None:
    async with pool.acquire() as conn:
        await job_insert_many(conn, list(jobs))


async def ended(pool: asyncpg.Pool, *jobs: NewJob) -> bool:
    n = await pool.fetchval(
        "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[])"
        " AND status IN ('succeeded', 'failed', 'cancelled', 'expired')",
        [j.id for j in jobs],
    )
    return bool(n == len(jobs))


async def runs(pool: asyncpg.Pool, j: NewJob) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT attempt, started_at, ended_at FROM ledger WHERE job_id = $1 ORDER BY attempt", j.id
    )


async def test_diamond_runs_in_order_each_step_once(
    db: asyncpg.Pool, start_worker: Callable[..., Awaitable[Worker]]
) -> None:
    a = step("a")
    b, c = step("b", a), step("c", a)
    d = step("d", b, c)
    await insert(db, a, b, c, d)
    await start_worker(concurrency=4)
    await wait_for(lambda: ended(db, a, b, c, d), within=30)
    for j in (a, b, c, d):
        assert (await job(db, j.id))["status"] == "succeeded"
    la, lb, lc, ld = [await runs(db, j) for j in (a, b, c, d)]
    assert [len(x) for x in (la, lb, lc, ld)] == [1, 1, 1, 1]
    assert lb[0]["started_at"] >= la[0]["ended_at"] and lc[0]["started_at"] >= la[0]["ended_at"]
    assert ld[0]["started_at"] >= max(lb[0]["ended_at"], lc[0]["ended_at"])
    result = (await job(db, d.id))["result"]
    assert result["parents"] == [
        {"name": "b", "status": "succeeded", "tag": "b"},
        {"name": "c", "status": "succeeded", "tag": "c"},
    ]


async def test_failing_parent_cancels_and_continue_runs(
    db: asyncpg.Pool, start_worker: Callable[..., Awaitable[Worker]]
) -> None:
    a = step("a", fail=True)
    b = step("b", a)
    c = step("c", b)
    k = step("k", a, policy="continue")
    await insert(db, a, b, c, k)
    await start_worker()
    await wait_for(lambda: ended(db, a, b, c, k), within=30)
    assert [(await job(db, j.id))["status"] for j in (a, b, c, k)] == [
        "failed",
        "cancelled",
        "cancelled",
        "succeeded",
    ]
    assert await runs(db, b) == [] and await runs(db, c) == []
    assert (await job(db, k.id))["result"]["parents"] == [
        {"name": "a", "status": "failed", "tag": None}
    ]


async def test_templated_params_read_parents(
    db: asyncpg.Pool, start_worker: Callable[..., Awaitable[Worker]]
) -> None:
    a = step("a")
    log = NewJob(
        "log.message",
        1,
        1,
        {"message": "parent said {{parents.a.result.tag}} ({{parents.a.status}})"},
        depends_on=[a.id],
    )
    await insert(db, a, log)
    await start_worker()
    await wait_for(lambda: ended(db, a, log), within=30)
    row = await job(db, log.id)
    assert row["status"] == "succeeded", row["last_error"]
    message = await db.fetchval("SELECT message FROM audit_log WHERE job_id = $1", log.id)
    assert message == "parent said a (succeeded)"


async def test_kill_9_mid_chain_completes_each_step_once(
    db: asyncpg.Pool, spawn: Callable[..., Proc]
) -> None:
    a = step("a")
    b = step("b", a, sleepFirst=60)
    c = step("c", b)
    await insert(db, a, b, c)
    proc = spawn()

    async def b_running() -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM ledger WHERE job_id = $1", b.id))

    await wait_for(b_running, within=30)
    proc.signal(signal.SIGKILL)
    proc.wait(10)
    assert (await job(db, c.id))["status"] == "waiting"

    async def rescued() -> bool:
        async with db.acquire() as conn:
            await job_rescue_expired(conn)
        return bool((await job(db, b.id))["status"] == "queued")

    await wait_for(rescued, within=30)
    spawn()
    await wait_for(lambda: ended(db, a, b, c), within=30)
    rows = [await job(db, j.id) for j in (a, b, c)]
    assert [r["status"] for r in rows] == ["succeeded"] * 3
    assert [r["attempt"] for r in rows] == [1, 2, 1]
    la, lb, lc = [await runs(db, j) for j in (a, b, c)]
    assert len(la) == 1 and len(lc) == 1
    assert [r["ended_at"] is not None for r in lb] == [False, True]  # attempt 1 died
    assert lc[0]["started_at"] >= lb[1]["ended_at"]
