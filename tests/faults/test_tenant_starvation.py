"""Scenario: tenant starvation. One worker process, two tenants.

Before the hardening, claims took the oldest ready jobs whoever owned them: a tenant that
queued a deep backlog (or long jobs at a high priority) held every slot, and another tenant's
job waited until the backlog drained. Now claims share each round between owners at equal
priority, and an owner at its running quota (`--max-running`) is skipped, so:

1. a tenant at its quota with slow jobs and a deep backlog keeps exactly its quota running,
   and the other tenant's job starts in the next claim (the first tenant's queue has not moved);
2. without quotas, a tenant's 1,000-job backlog submitted first does not keep the other
   tenant's jobs waiting: they all start while most of the backlog is still queued.
"""

from __future__ import annotations

import asyncpg
import pytest

from jobserver.auth import create_token
from jobserver.db.jobs import NewJob, job_insert_many
from tests.faults.conftest import Row
from tests.faults.helpers import Procs, active_workers, scaled, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.scenario("tenant starvation")]


async def _submit(db: asyncpg.Pool, owner: str, n: int, ms: int) -> list[object]:
    jobs = [NewJob("faults.work", 1, 1, params={"ms": ms}, owner=owner) for _ in range(n)]
    async with db.acquire() as conn:
        return list(await job_insert_many(conn, jobs))


async def _count(db: asyncpg.Pool, owner: str, status: str) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM jobs WHERE owner = $1 AND status = $2", owner, status
        )
    )


async def test_the_other_tenant_runs_while_one_is_at_its_quota(
    db: asyncpg.Pool, procs: Procs, report: Row
) -> None:
    await create_token(db, "hog", [], "hog", max_running=2)
    procs.worker("tenants-w", "--concurrency", "4")
    await wait_for(lambda: active_workers(db, ["tenants-w"]), within=20)
    # the attack: long jobs at the top of the queue, far more than the worker's slots
    await _submit(db, "hog", 50, 60_000)
    await wait_for(lambda: _count(db, "hog", "running"), within=10)
    queued_before = await _count(db, "hog", "queued")
    [other] = await _submit(db, "neighbour", 1, 1)

    async def done() -> bool:
        status = await db.fetchval("SELECT status FROM jobs WHERE id = $1", other)
        return status == "succeeded"

    await wait_for(done, within=10)
    assert await _count(db, "hog", "running") == 2  # its quota, never more
    assert await _count(db, "hog", "queued") == queued_before == 48
    # and fairness without quotas: a deep backlog first, then the other tenant's jobs
    await db.execute("UPDATE api_tokens SET max_running = NULL")
    await db.execute("UPDATE jobs SET status = 'cancelled', finished_at = now()")
    backlog = scaled(1000, 5000)
    await _submit(db, "bulk", backlog, 20)
    await wait_for(lambda: _count(db, "bulk", "succeeded"), within=20)
    theirs = await _submit(db, "neighbour", 5, 1)

    async def all_started() -> bool:
        return bool(
            await db.fetchval(
                "SELECT count(*) = 5 FROM jobs WHERE id = ANY($1) AND status = 'succeeded'",
                theirs,
            )
        )

    await wait_for(all_started, within=20)
    left = await _count(db, "bulk", "queued")
    assert left > backlog // 2, f"only {left} of {backlog} left: the neighbour waited"
    report.accepted = 1 + 5
    report.terminal = 1 + 5
    report.note = (
        f"hog at its quota of 2 with {queued_before} queued: the neighbour's job ran next, the"
        f" hog's queue unmoved; {backlog}-job backlog: the neighbour's 5 jobs ran with {left}"
        " of it still queued"
    )
