"""The job list in priority order, against real PostgreSQL: three bands read off indexes
(above 0 and below 0 from jobs_priority_idx, 0 by primary key) give exactly the order of a
plain `ORDER BY priority, id`, through keyset pages that cross the bands, page numbers and
filters; and a page reads about a page of rows, not the table (the whole-table sort took
37.8 s at 10 million rows)."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import asyncpg

from jobserver.db.jobs import JobFilter, NewJob, _priority_page, job_insert_many, job_list


async def _fill(pool: asyncpg.Pool, priorities: list[int], owners: tuple[str, ...]) -> None:
    jobs = [
        NewJob("echo", 1, 3, {}, priority=p, owner=owners[i % len(owners)])
        for i, p in enumerate(priorities)
    ]
    async with pool.acquire() as conn:
        await job_insert_many(conn, jobs)


async def _expected(pool: asyncpg.Pool, descending: bool, owner: str | None) -> list[uuid.UUID]:
    d = "DESC" if descending else "ASC"
    rows = await pool.fetch(
        f"SELECT id FROM jobs WHERE ($1::text IS NULL OR owner = $1) ORDER BY priority {d}, id {d}",
        owner,
    )
    return [r["id"] for r in rows]


async def _walk(pool: asyncpg.Pool, flt: JobFilter, descending: bool, limit: int) -> list[Any]:
    out: list[Any] = []
    after = None
    for _ in range(1000):
        rows = await job_list(
            pool, flt, sort_by="priority", descending=descending, after=after, limit=limit
        )
        out.extend(r["id"] for r in rows)
        if len(rows) < limit:
            return out
        after = (rows[-1]["priority"], rows[-1]["id"])
    raise AssertionError("the walk did not end")


async def test_priority_order_is_the_plain_order_through_every_page(pool: asyncpg.Pool) -> None:
    rng = random.Random(19)
    priorities = [rng.choice([-3, -1, 0, 0, 0, 0, 0, 2, 5]) for _ in range(157)]
    await _fill(pool, priorities, ("alice", "bob"))
    for owner in (None, "alice"):
        flt = JobFilter(owner=owner)
        for descending in (True, False):
            expected = await _expected(pool, descending, owner)
            for limit in (1, 7, 40, 500):
                assert await _walk(pool, flt, descending, limit) == expected, (
                    owner,
                    descending,
                    limit,
                )
            for offset in (0, 5, 60, 150):  # page numbers
                rows = await job_list(
                    pool, flt, sort_by="priority", descending=descending, limit=9, offset=offset
                )
                assert [r["id"] for r in rows] == expected[offset : offset + 9]


async def test_a_table_without_default_priorities_and_one_with_nothing_else(
    pool: asyncpg.Pool,
) -> None:
    await _fill(pool, [4, -4, 4, -2], ("alice",))
    assert await _walk(pool, JobFilter(), True, 3) == await _expected(pool, True, None)
    await pool.execute("DELETE FROM jobs")
    await _fill(pool, [0] * 12, ("alice",))
    assert await _walk(pool, JobFilter(), False, 5) == await _expected(pool, False, None)


def _rows_read(plan: dict[str, Any]) -> int:
    """Rows the plan's scans of jobs returned, over all loops."""
    own = 0
    if plan.get("Relation Name") == "jobs":
        own = int(plan["Actual Rows"] * plan["Actual Loops"]) + int(
            plan.get("Rows Removed by Filter", 0)
        )
    return own + sum(_rows_read(p) for p in plan.get("Plans", []))


async def test_a_page_reads_about_a_page_of_rows(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO jobs (id, definition_key, definition_version, max_attempts, params, owner,"
        " priority)"
        " SELECT gen_random_uuid(), 'echo', 1, 3, '{}', 'alice',"
        " CASE WHEN g % 100 = 0 THEN 3 WHEN g % 100 = 1 THEN -3 ELSE 0 END"
        " FROM generate_series(1, 30000) g"
    )
    await pool.execute("ANALYZE jobs")
    for descending in (True, False):
        for after in (None, (3, uuid.UUID(int=2**127)), (0, uuid.UUID(int=2**127))):
            sql, *args = _priority_page(JobFilter(), descending, after, 25, 0)
            raw = await pool.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
            plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
            assert _rows_read(plan) <= 100, (descending, after, _rows_read(plan), plan)
