"""jobs_queue_queued_idx (queue health) has a predicate in the "C" collation so that no claim
can use it: a claim of a queue the statistics think small would read and sort every ready row
of that queue there, or scan the whole index, instead of walking the claim indexes in order
(db/tables.py). The schema diff does not read the predicate's collation: this test pins it,
and checks the plans of claims with and without a queue filter, custom and generic.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from jobserver.db import job_runs
from jobserver.db.pool import connect
from jobserver.db.queues import WAITING
from tests.scheduler.helpers import register_builtin


async def test_the_queue_index_predicate_is_in_the_c_collation(pool: asyncpg.Pool) -> None:
    definition = await pool.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'jobs_queue_queued_idx'"
    )
    assert definition.endswith("""(queue, run_at) WHERE ((status COLLATE "C") = 'queued'::text)""")


async def test_no_claim_plan_uses_the_queue_index(pool: asyncpg.Pool, database_url: str) -> None:
    await register_builtin(pool)
    # one big queue and one the statistics call tiny: the plan that would read `tiny`'s rows
    # through the queue index is the cheapest-looking one for it
    await pool.execute(
        "INSERT INTO jobs (definition_key, definition_version, queue, max_attempts)"
        " SELECT 'echo', 1, CASE WHEN g % 1000 = 0 THEN 'tiny' ELSE 'big' END, 3"
        " FROM generate_series(1, 20000) g"
    )
    await pool.execute("ANALYZE jobs")
    conn = await connect(database_url, server_settings=job_runs.CLAIM_SESSION_SETTINGS)
    try:
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.execute(f"SET plan_cache_mode = {mode}")
            cases = [(["tiny"], None), (["big"], None), (["tiny", "big"], ["big"]), (None, None)]
            for queues, paused in cases:
                async with conn.transaction():
                    plan = await conn.fetchval(
                        "EXPLAIN (FORMAT JSON) " + job_runs._CLAIM,
                        "w-plan",
                        10,
                        ["echo@1"],
                        queues,
                        60.0,
                        "",
                        job_runs.MAX_FAIR_OWNERS,
                        paused,
                    )
                text = plan if isinstance(plan, str) else json.dumps(plan)
                assert "jobs_queue_queued_idx" not in text, (mode, queues, paused)
                assert "jobs_owner_queued_idx" in text or "jobs_ready_idx" in text
    finally:
        await conn.close()


async def test_queue_health_reads_waiting_jobs_through_the_index(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """The queries of db/queues.py match the predicate (on a small table the planner may still
    prefer a sequential scan: off here, so only usable indexes are left)."""
    await pool.execute(
        "INSERT INTO jobs (definition_key, definition_version, queue, max_attempts, status)"
        " SELECT 'echo', 1, 'q' || (g % 7), 3, CASE WHEN g % 10 = 0 THEN 'queued'"
        " ELSE 'succeeded' END FROM generate_series(1, 20000) g"
    )
    await pool.execute("ANALYZE jobs")
    conn = await connect(
        database_url, server_settings={"enable_seqscan": "off", "enable_bitmapscan": "off"}
    )
    try:
        plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + WAITING, 1001, 1001)
    finally:
        await conn.close()
    text = plan if isinstance(plan, str) else json.dumps(plan)
    assert text.count("jobs_queue_queued_idx") == 5, text  # 2 name probes, 2 counts, the oldest
    assert "jobs_ready_idx" not in text and "jobs_owner_queued_idx" not in text


async def test_the_claim_session_plans_its_claim_once(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """The worker's claim session keeps one generic plan of the claim (CLAIM_SESSION_SETTINGS):
    re-planning each claim cost more than executing it in a burn-down with waiting jobs in the
    table. Claims that find rows and claims that find none use that same plan."""
    await register_builtin(pool)
    await pool.execute(
        "INSERT INTO jobs (definition_key, definition_version, queue, max_attempts)"
        " SELECT 'echo', 1, 'default', 3 FROM generate_series(1, 30)"
    )
    conn = await connect(database_url, server_settings=job_runs.CLAIM_SESSION_SETTINGS)
    try:
        taken = 0
        for _ in range(8):
            rows = await job_runs.job_claim_available(conn, "w-generic", 5, ["echo@1"], None, 60.0)
            taken += len(rows)
        assert taken == 30
        plans = await conn.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            job_runs._CLAIM,
        )
        assert plans is not None
        assert plans["custom_plans"] == 0
        assert plans["generic_plans"] == 8
    finally:
        await conn.close()


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


async def test_a_claim_plan_made_on_an_empty_table_stays_good(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """The claim session's one plan is made from the statistics of its first claim: made
    while `jobs` looked empty, it must still read only the chosen rows once the table holds
    thousands (a nested loop over a walk of the primary key read it all once per row)."""
    await register_builtin(pool)
    await pool.execute("VACUUM ANALYZE jobs")
    conn = await connect(database_url, server_settings=job_runs.CLAIM_SESSION_SETTINGS)
    try:
        assert await job_runs.job_claim_available(conn, "w-empty", 50, ["echo@1"], None, 60.0) == []
        await pool.execute(
            "INSERT INTO jobs (definition_key, definition_version, queue, max_attempts)"
            " SELECT 'echo', 1, 'default', 3 FROM generate_series(1, 5000)"
        )
        name = await conn.fetchval(
            "SELECT name FROM pg_prepared_statements WHERE statement = $1", job_runs._CLAIM
        )
        async with conn.transaction():
            plan = await conn.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}"
                f"('w-empty', 50, ARRAY['echo@1'], NULL, 60.0, '', {job_runs.MAX_FAIR_OWNERS},"
                " NULL)"
            )
        tree = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
        claimed = [n for n in _nodes(tree) if n.get("Operation") == "Update"]
        assert claimed and claimed[0]["Actual Rows"] == 50
        pkey_reads = [
            n["Actual Rows"] * n["Actual Loops"]
            for n in _nodes(tree)
            if n.get("Index Name") == "jobs_pkey"
        ]
        assert pkey_reads and max(pkey_reads) <= 50, pkey_reads
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("owners", "finished", "queued"),
    [(2, 40_000, 6_000), (100, 0, 30_000)],
    ids=["two owners, mostly finished", "a hundred owners, all queued"],
)
async def test_a_limited_claim_of_several_owners_walks_the_ready_index_in_order(
    pool: asyncpg.Pool, database_url: str, owners: int, finished: int, queued: int
) -> None:
    """The limited claim's fill walk (several owners) reads jobs_ready_idx in claim order and
    stops after its LIMIT: written `owner IN (SELECT ...)`, the planner fed a hash semi-join
    with every ready row of those owners and sorted them (708,000 rows, 4.1 s, at a million
    queued jobs)."""
    await register_builtin(pool)
    await pool.execute(
        "INSERT INTO jobs (definition_key, definition_version, queue, max_attempts, owner,"
        " status, finished_at)"
        " SELECT 'echo', 1, 'default', 3, 'team-' || (i % $1), 'succeeded', now()"
        " FROM generate_series(1, $2) i",
        owners,
        finished,
    )
    await pool.execute(
        "INSERT INTO jobs (definition_key, definition_version, queue, max_attempts, owner)"
        " SELECT 'echo', 1, 'default', 3, 'team-' || (i % $1) FROM generate_series(1, $2) i",
        owners,
        queued,
    )
    await pool.execute("VACUUM ANALYZE jobs")
    conn = await connect(database_url, server_settings=job_runs.CLAIM_SESSION_SETTINGS)
    try:
        refs, limits = ["echo@1", "failing@1"], {"failing": 2}
        rows = await job_runs.job_claim_available(conn, "w", 200, refs, None, 60.0, limits)
        assert len(rows) == 200
        name = await conn.fetchval(
            "SELECT name FROM pg_prepared_statements WHERE statement = $1",
            job_runs._CLAIM_LIMITED,
        )
        assert name, "the limited claim is a prepared statement of the session"
        async with conn.transaction():
            plan = await conn.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}"
                f"('w', 200, ARRAY['echo@1', 'failing@1'], NULL, 60.0, '',"
                f" {job_runs.MAX_FAIR_OWNERS}, ARRAY['failing'], ARRAY[2], NULL, ARRAY[]::text[],"
                " NULL)"
            )
        tree = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
        reads = [
            n["Actual Rows"] * n["Actual Loops"]
            for n in _nodes(tree)
            if n.get("Relation Name") == "jobs" or n.get("Index Name", "").startswith("jobs")
        ]
        assert reads and max(reads) <= 1000, reads  # the claim's 200 and the owners' probes
    finally:
        await conn.close()
