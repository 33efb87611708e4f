"""Claims and concurrency-limited definitions: while none of their jobs is about, claims leave
them out and stay one statement (the limited claim is a transaction of four round trips); a
limited job still starts soon behind a deep queue of other jobs, within its limit."""

from __future__ import annotations

import itertools

import asyncpg

from tests.worker.conftest import submit, wait_for


async def _count(db: asyncpg.Pool, sql: str, *args: object) -> int:
    return int(await db.fetchval(sql, *args))


async def test_claims_skip_the_limited_transaction_while_no_limited_job_is_queued(
    db: asyncpg.Pool, start_worker
) -> None:
    ids = await submit(db, "test.ledger", [{} for _ in range(600)])
    w = await start_worker(concurrency=5, prefetch_max=5)  # many small claims

    async def done() -> bool:
        return await _count(
            db, "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'succeeded'", ids
        ) == len(ids)

    await wait_for(done, within=60)
    # the registry has test.limited: every claim used to be a limited one
    assert w.claims.limited_calls * 3 < w.claim_calls, (w.claims.limited_calls, w.claim_calls)


async def test_a_limited_job_starts_behind_a_deep_queue_and_keeps_its_limit(
    db: asyncpg.Pool, start_worker
) -> None:
    backlog = await submit(db, "test.ledger", [{"sleep": 0.002} for _ in range(4000)])
    w = await start_worker(concurrency=10)

    async def some_ran() -> bool:
        return await _count(db, "SELECT count(*) FROM ledger") >= 200

    await wait_for(some_ran, within=60)
    limited = await submit(db, "test.limited", [{"sleep": 0.02} for _ in range(6)], priority=5)

    async def limited_done() -> bool:
        return await _count(
            db, "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'succeeded'", limited
        ) == len(limited)

    await wait_for(limited_done, within=60)
    # they did not wait for the backlog to drain
    left = await _count(
        db, "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'queued'", backlog
    )
    assert left > 0, "the limited jobs ran only once the backlog was gone"
    rows = await db.fetch(
        "SELECT l.started_at, l.ended_at FROM ledger l WHERE l.job_id = ANY($1)", limited
    )
    assert len(rows) == len(limited)
    for a, b, c in itertools.combinations(rows, 3):  # never 3 at once: its limit is 2
        assert not (
            max(a["started_at"], b["started_at"], c["started_at"])
            < min(a["ended_at"], b["ended_at"], c["ended_at"])
        )
    assert w.running <= 10
