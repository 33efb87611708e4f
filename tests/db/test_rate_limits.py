"""The rated claim against PostgreSQL: N starts per period per bucket, the start log written in
the claim's transaction, buckets independent, concurrent claimers serialized per bucket, the
ordinary claim never taking a limited job, and the pruner dropping old starts."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import asyncpg
import pytest

from jobserver.core.errors import RuleError
from jobserver.core.rate_limits import RateLimit, bucket_of, job_rate
from jobserver.db import job_runs
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.db.pool import connect
from jobserver.db.rate_limit_starts import rate_limit_starts_prune
from jobserver.db.tokens import token_insert

REF = "rl.job@1"


async def _insert(
    pool: asyncpg.Pool,
    n: int,
    bucket: str | None,
    limit: int = 3,
    period: float = 60.0,
    key: str = "rl.job",
    owner: str = "anonymous",
) -> list[uuid.UUID]:
    jobs = [
        NewJob(
            definition_key=key,
            definition_version=1,
            max_attempts=1,
            params={"n": i},
            rate_bucket=bucket,
            rate_limit=limit if bucket else None,
            rate_period=period if bucket else None,
            owner=owner,
        )
        for i in range(n)
    ]
    async with pool.acquire() as conn:
        return await job_insert_many(conn, jobs)


async def _rated(conn: Any, want: int = 10, refs: list[str] | None = None) -> tuple[list[Any], Any]:
    claim = await job_runs.job_claim_rated(conn, "w1", want, refs or [REF], None, 30.0)
    return claim.rows, claim.next_in


def test_bucket_from_a_path_or_a_template() -> None:
    params = {"customer": {"id": 7}, "region": "eu"}
    assert bucket_of("k", RateLimit(1, 1.0), params) == "k"
    assert bucket_of("k", RateLimit(1, 1.0, "customer.id"), params) == "k:7"
    assert bucket_of("k", RateLimit(1, 1.0, "{{customer.id}}/{{ region }}"), params) == "k:7/eu"
    with pytest.raises(RuleError) as e:
        bucket_of("k", RateLimit(1, 1.0, "customer.name"), params, "jobs[2]")
    assert e.value.field == "jobs[2].params.customer.name"


def test_a_job_may_only_lower_its_definitions_limit() -> None:
    declared = RateLimit(10, 1.0)
    assert job_rate(None, "k", declared, {}) == ("k", 10, 1.0)
    assert job_rate({"limit": 3, "periodSeconds": 5}, "k", declared, {}) == ("k", 3, 5.0)
    for own, field in (
        ({"limit": 11, "periodSeconds": 1}, "rateLimit.limit"),
        ({"limit": 10, "periodSeconds": 0.5}, "rateLimit.periodSeconds"),
    ):
        with pytest.raises(RuleError) as e:
            job_rate(own, "k", declared, {})
        assert e.value.field == field
    with pytest.raises(RuleError) as e:
        job_rate({"limit": 1, "periodSeconds": 1}, "k", None, {})
    assert e.value.field == "rateLimit"
    assert job_rate(None, "k", None, {}) is None


async def test_claim_takes_n_per_period_and_says_when_the_next_slot_opens(
    pool: asyncpg.Pool,
) -> None:
    await _insert(pool, 8, "rl.job", limit=3, period=60.0)
    async with pool.acquire() as conn:
        plain = await job_runs.job_claim_available(conn, "w1", 10, [REF], None, 30.0)
        assert plain == []  # the ordinary claim never takes a rate-limited job
        rows, next_in = await _rated(conn)
        assert len(rows) == 3
        assert next_in is not None and 55 < next_in <= 60
        rows2, next_in2 = await _rated(conn)
        assert rows2 == [] and next_in2 is not None and next_in2 <= next_in
    assert await pool.fetchval("SELECT count(*) FROM rate_limit_starts") == 3
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE status = 'queued'") == 5
    same = await pool.fetchval(
        "SELECT count(*) FROM jobs j WHERE status = 'running'"
        " AND started_at IN (SELECT started_at FROM rate_limit_starts)"
    )
    assert same == 3  # the log holds the claim's own start time


async def test_old_starts_leave_the_window(pool: asyncpg.Pool) -> None:
    await _insert(pool, 4, "rl.job", limit=2, period=60.0)
    await pool.execute(
        "INSERT INTO rate_limit_starts (bucket, started_at, expires_at)"
        " SELECT 'rl.job', now() - interval '2 minutes', now() - interval '1 minute'"
        " FROM generate_series(1, 5)"
    )
    async with pool.acquire() as conn:
        rows, _ = await _rated(conn)
    assert len(rows) == 2  # the old starts are outside the period
    async with pool.acquire() as conn:
        assert await rate_limit_starts_prune(conn) == 5
    assert await pool.fetchval("SELECT count(*) FROM rate_limit_starts") == 2


async def test_buckets_per_key_are_independent(pool: asyncpg.Pool) -> None:
    for customer in ("a", "b", "c"):
        await _insert(pool, 4, f"rl.job:{customer}", limit=2)
    async with pool.acquire() as conn:
        rows, next_in = await _rated(conn, want=100)
    assert len(rows) == 6 and next_in is not None
    per = await pool.fetch(
        "SELECT rate_bucket, count(*) AS n FROM jobs WHERE status = 'running' GROUP BY 1"
    )
    assert {r["rate_bucket"]: r["n"] for r in per} == {"rl.job:a": 2, "rl.job:b": 2, "rl.job:c": 2}


async def test_only_our_rated_definitions_and_unlimited_jobs_stay_ordinary(
    pool: asyncpg.Pool,
) -> None:
    await _insert(pool, 2, "rl.other", key="rl.other")
    await _insert(pool, 2, None)
    async with pool.acquire() as conn:
        rows, next_in = await _rated(conn)
        assert rows == [] and next_in is None
        plain = await job_runs.job_claim_available(conn, "w1", 10, [REF], None, 30.0)
    assert len(plain) == 2


async def test_concurrent_claimers_never_exceed_the_limit(
    pool: asyncpg.Pool, database_url: str
) -> None:
    await _insert(pool, 40, "rl.job", limit=7, period=60.0)
    conns = [
        await connect(database_url, server_settings=job_runs.CLAIM_SESSION_SETTINGS)
        for _ in range(6)
    ]
    try:
        results = await asyncio.gather(
            *(
                job_runs.job_claim_rated(c, f"w{i}", 5, [REF], None, 30.0)
                for i, c in enumerate(conns)
            )
        )
    finally:
        for c in conns:
            await c.close()
    assert sum(len(r.rows) for r in results) == 7
    assert await pool.fetchval("SELECT count(*) FROM rate_limit_starts") == 7


async def test_a_lowered_job_counts_against_the_whole_bucket(pool: asyncpg.Pool) -> None:
    await _insert(pool, 3, "rl.job", limit=5, period=60.0)
    await _insert(pool, 3, "rl.job", limit=1, period=120.0)  # lowered jobs, same bucket
    async with pool.acquire() as conn:
        rows, _ = await _rated(conn, want=100)
        more, _ = await _rated(conn, want=100)
    # the three at 5/60 s start; the lowered ones (1/120 s) see those starts in their window
    assert len(rows) == 3 and more == []
    limits = await pool.fetch("SELECT rate_limit FROM jobs WHERE status = 'running'")
    assert [r[0] for r in limits] == [5, 5, 5]


async def _owners_running(pool: asyncpg.Pool) -> Counter[str]:
    rows = await pool.fetch("SELECT owner FROM jobs WHERE status = 'running'")
    return Counter(r[0] for r in rows)


async def test_the_rated_claim_is_fair_between_owners(pool: asyncpg.Pool) -> None:
    await _insert(pool, 50, "rl.job", limit=1000, owner="hog")  # older than the others
    await _insert(pool, 3, "rl.job", limit=1000, owner="small")
    await _insert(pool, 1, "rl.job", limit=1000, owner="tiny")
    async with pool.acquire() as conn:
        rows, _ = await _rated(conn, want=10)
    owners = [r[8] for r in rows]
    assert Counter(owners) == {"hog": 6, "small": 3, "tiny": 1}
    # round robin: each owner's first job comes before anyone's second
    assert set(owners[:3]) == {"hog", "small", "tiny"}
    # and the bucket's N slots are shared the same way
    await pool.execute("DELETE FROM jobs")
    await pool.execute("DELETE FROM rate_limit_starts")
    for owner, n in (("hog", 50), ("small", 3), ("tiny", 1)):
        await _insert(pool, n, "rl.job", limit=4, owner=owner)
    async with pool.acquire() as conn:
        rows, next_in = await _rated(conn, want=10)
    assert len(rows) == 4 and next_in is not None
    assert {r[8] for r in rows} == {"hog", "small", "tiny"}


async def test_the_rated_claim_holds_an_owners_running_quota(pool: asyncpg.Pool) -> None:
    await token_insert(pool, "capped", "hash-capped", "js_cap", [], "capped")
    await pool.execute("UPDATE api_tokens SET max_running = 3 WHERE name = 'capped'")
    # two of its unlimited jobs already run: one slot of its quota is left
    await _insert(pool, 2, None, owner="capped")
    async with pool.acquire() as conn:
        plain = await job_runs.job_claim_available(
            conn, "w1", 10, [REF], None, 30.0, owner_quotas=True
        )
    assert len(plain) == 2
    await _insert(pool, 10, "rl.job", limit=100, owner="capped")
    await _insert(pool, 2, "rl.job", limit=100, owner="other")
    async with pool.acquire() as conn:
        rows, _ = await _rated(conn, want=20)
        assert Counter(r[8] for r in rows) == {"capped": 1, "other": 2}
        # at its quota: nothing more of it, whoever claims
        again = await job_runs.job_claim_rated(conn, "w2", 20, [REF], None, 30.0)
        assert again.rows == [] and again.next_in is None and again.capped
    assert await _owners_running(pool) == {"capped": 3, "other": 2}
    # the default quota (OWNER_MAX_RUNNING) applies to token owners, not internal ones
    await _insert(pool, 5, "rl.job", limit=100, owner="team")
    await _insert(pool, 5, "rl.job", limit=100, owner="system:scheduler")
    async with pool.acquire() as conn:
        rows, _, _ = await job_runs.job_claim_rated(
            conn, "w1", 20, [REF], None, 30.0, owner_default=2
        )
    assert Counter(r[8] for r in rows) == {"team": 2, "system:scheduler": 5}


async def test_rated_and_ordinary_claimers_hold_an_owner_quota_fleet_wide(
    pool: asyncpg.Pool, database_url: str
) -> None:
    await _insert(pool, 40, None, owner="team")
    await _insert(pool, 40, "rl.job", limit=1000, owner="team")
    conns = [
        await connect(database_url, server_settings=job_runs.CLAIM_SESSION_SETTINGS)
        for _ in range(8)
    ]

    async def claim(i: int, c: Any) -> int:
        if i % 2:
            rows, _, _ = await job_runs.job_claim_rated(
                c, f"w{i}", 10, [REF], None, 30.0, owner_default=7
            )
            return len(rows)
        return len(
            await job_runs.job_claim_available(c, f"w{i}", 10, [REF], None, 30.0, owner_default=7)
        )

    try:
        taken = await asyncio.gather(*(claim(i, c) for i, c in enumerate(conns)))
    finally:
        for c in conns:
            await c.close()
    assert sum(taken) == 7
    assert await _owners_running(pool) == {"team": 7}


async def test_a_full_concurrency_limit_answers_capped_not_a_rate_slot(pool: asyncpg.Pool) -> None:
    await _insert(pool, 3, "rl.job", limit=100)
    async with pool.acquire() as conn:
        first = await job_runs.job_claim_rated(conn, "w1", 10, [REF], None, 30.0, {"rl.job": 1})
        assert len(first.rows) == 1 and first.next_in is None
        held = await job_runs.job_claim_rated(conn, "w1", 10, [REF], None, 30.0, {"rl.job": 1})
    # nothing to wait for in the log: the worker looks again when a held job ends
    assert held.rows == [] and held.next_in is None and held.capped
