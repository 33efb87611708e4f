"""Claims are fair between owners at equal priority, and per-owner running quotas hold across
claimers: the claim SQL itself (db/job_runs.py), against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg

from jobserver.db import job_runs
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.db.tokens import token_insert
from tests.scheduler.helpers import register_builtin

REFS = ["echo@1"]


async def _submit(pool: asyncpg.Pool, owner: str, n: int, priority: int = 0) -> None:
    jobs = [NewJob("echo", 1, 3, {"i": i}, owner=owner, priority=priority) for i in range(n)]
    async with pool.acquire() as conn:
        await job_insert_many(conn, jobs, notify=False)


async def _claim(pool: asyncpg.Pool, n: int, worker: str = "w1", **kw: object) -> list[str]:
    async with pool.acquire() as conn:
        rows = await job_runs.job_claim_available(conn, worker, n, REFS, None, 30, **kw)  # type: ignore[arg-type]
    return [r["owner"] for r in rows]


async def test_a_newcomer_is_served_in_the_first_claim_despite_a_deep_backlog(
    pool: asyncpg.Pool,
) -> None:
    await register_builtin(pool)
    await _submit(pool, "hog", 2000)  # older than everything the others submit
    await _submit(pool, "small", 3)
    await _submit(pool, "tiny", 1)
    owners = await _claim(pool, 10)
    assert len(owners) == 10
    assert Counter(owners) == {"hog": 6, "small": 3, "tiny": 1}
    # round robin: each owner's first job comes before anyone's second
    assert set(owners[:3]) == {"hog", "small", "tiny"}


async def test_equal_backlogs_share_a_claim_evenly(pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    for owner in ("a", "b", "c", "d"):
        await _submit(pool, owner, 100)
    assert Counter(await _claim(pool, 40)) == {"a": 10, "b": 10, "c": 10, "d": 10}


async def test_priority_still_comes_first(pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    await _submit(pool, "low", 50)
    await _submit(pool, "urgent", 5, priority=5)
    owners = await _claim(pool, 5)
    assert owners == ["urgent"] * 5


async def test_a_claim_comes_back_full_when_some_owners_have_only_delayed_jobs(
    pool: asyncpg.Pool,
) -> None:
    """An owner whose queued jobs are not ready still counts as an owner, but the fill walk
    tops the claim up: a short claim would make the worker wait for the poll interval."""
    await register_builtin(pool)
    await _submit(pool, "busy", 100)
    async with pool.acquire() as conn:
        later = [NewJob("echo", 1, 3, {}, owner=f"idle{i}") for i in range(9)]
        await job_insert_many(conn, later, notify=False)
        await conn.execute(
            "UPDATE jobs SET run_at = now() + interval '1 hour' WHERE owner <> 'busy'"
        )
    assert Counter(await _claim(pool, 50)) == {"busy": 50}


async def test_concurrent_claimers_never_take_a_job_twice(pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    for owner in ("a", "b", "c"):
        await _submit(pool, owner, 300)

    async def drain(worker: str) -> list[str]:
        got: list[str] = []
        for _ in range(100):
            async with pool.acquire() as conn:
                rows = await job_runs.job_claim_available(conn, worker, 25, REFS, None, 30)
            if not rows:
                return got
            got.extend(str(r["id"]) for r in rows)
        return got

    results = await asyncio.gather(*(drain(f"w{i}") for i in range(4)))
    ids = [i for r in results for i in r]
    assert len(ids) == 900 and len(set(ids)) == 900


async def test_an_owner_at_its_running_quota_is_skipped_and_others_still_run(
    pool: asyncpg.Pool,
) -> None:
    await register_builtin(pool)
    await token_insert(pool, "capped", "hash-capped", "js_cap", [], "capped")
    await pool.execute("UPDATE api_tokens SET max_running = 3 WHERE name = 'capped'")
    await _submit(pool, "capped", 100)
    await _submit(pool, "other", 2)
    first = await _claim(pool, 20, owner_quotas=True)
    assert Counter(first) == {"capped": 3, "other": 2}
    # at its quota: the next claim takes nothing of it, nor does another worker
    await _submit(pool, "other", 1)
    assert await _claim(pool, 20, "w2", owner_quotas=True) == ["other"]
    # one ends: exactly one more may start
    await pool.execute(
        "UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE id = ("
        " SELECT id FROM jobs WHERE owner = 'capped' AND status = 'running' LIMIT 1)"
    )
    assert await _claim(pool, 20, owner_quotas=True) == ["capped"]


async def test_the_default_quota_applies_to_token_owners_not_internal_ones(
    pool: asyncpg.Pool,
) -> None:
    await register_builtin(pool)
    await _submit(pool, "team", 10)
    await _submit(pool, "system:scheduler", 10)
    owners = await _claim(pool, 20, owner_default=2)
    assert Counter(owners) == {"team": 2, "system:scheduler": 10}


async def test_concurrent_claimers_hold_an_owner_quota_fleet_wide(pool: asyncpg.Pool) -> None:
    await register_builtin(pool)
    await _submit(pool, "team", 200)
    results = await asyncio.gather(*(_claim(pool, 10, f"w{i}", owner_default=7) for i in range(8)))
    assert sum(len(r) for r in results) == 7
    running = await pool.fetchval("SELECT count(*) FROM jobs WHERE status = 'running'")
    assert running == 7


async def test_owners_beyond_one_claims_walk_get_their_turn_next(pool: asyncpg.Pool) -> None:
    """With more owners than a claim visits, the worker's cursor moves on: every owner is
    served by the next claim, not only the first names again."""
    await register_builtin(pool)
    n = job_runs.MAX_FAIR_OWNERS + 44
    async with pool.acquire() as conn:
        jobs = [NewJob("echo", 1, 3, {}, owner=f"o{i:04d}") for i in range(n) for _ in range(2)]
        await job_insert_many(conn, jobs, notify=False)
    served: set[str] = set()
    cursor = ""
    for _ in range(2):  # the first claim serves MAX_FAIR_OWNERS of them, the second the rest
        async with pool.acquire() as conn:
            rows = await job_runs.job_claim_available(
                conn, "w", job_runs.MAX_FAIR_OWNERS, REFS, None, 30, cursor=cursor
            )
        served |= {r["owner"] for r in rows}
        cursor = job_runs.next_owner_cursor(cursor, rows)
    assert len(served) == n


async def test_a_claim_skips_a_limited_key_another_claimer_holds_instead_of_waiting(
    pool: asyncpg.Pool,
) -> None:
    """Every default worker has a concurrency-limited definition (encode.video): a claim that
    waited for that key's lock would queue behind every other claimer of the fleet. It leaves
    the key's jobs to the holder instead, takes the rest, and the limit still holds."""
    await register_builtin(pool)
    async with pool.acquire() as conn:
        jobs = [NewJob("failing", 1, 3, {"i": i}, owner="t", priority=5) for i in range(10)]
        jobs += [NewJob("echo", 1, 3, {"i": i}, owner="t") for i in range(10)]
        await job_insert_many(conn, jobs, notify=False)
    refs, limits = ["echo@1", "failing@1"], {"failing": 2}

    async def claim(worker: str) -> list[str]:
        async with pool.acquire() as conn:
            rows = await job_runs.job_claim_available(conn, worker, 5, refs, None, 30, limits)
        return [r["definition_key"] for r in rows]

    holder = await pool.acquire()
    try:
        tx = holder.transaction()
        await tx.start()
        # another claimer in the middle of its claim of the limited key
        await holder.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "jobserver.limit:failing"
        )
        # a wait on the lock would never end while the holder's transaction is open
        assert await asyncio.wait_for(claim("w1"), 30) == ["echo"] * 5
        await tx.rollback()
    finally:
        await pool.release(holder)
    # the key is free again: its higher-priority jobs come first, within the limit
    assert await claim("w2") == ["failing", "failing"]
    assert await claim("w3") == ["echo"] * 5  # the limit is full: the rest of the queue
    held = await pool.fetchval(
        "SELECT count(*) FROM jobs WHERE status = 'running' AND definition_key = 'failing'"
    )
    assert held == 2
