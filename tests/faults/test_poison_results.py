"""Scenario: poison results. One worker process runs 1,000 ordinary jobs with poison ones among
them: results (and events, progress messages) holding NUL or a lone surrogate, or over
MAX_RESULT_BYTES, which PostgreSQL cannot store. Before the worker checked them, one such result
failed the whole acknowledgement batch, which was retried forever: every other job of the worker
stayed `running` with a renewed lease and SIGTERM no longer stopped it. Now every ordinary job
succeeds, every poison job fails with `result_not_storable`, nothing stays running, and the
worker stops on SIGTERM.
"""

from __future__ import annotations

import signal

import asyncpg
import pytest

from jobserver.db.jobs import NewJob, job_insert_many
from tests.faults.conftest import Row
from tests.faults.helpers import Procs, active_workers, all_terminal, audit, scaled, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.scenario("poison results")]

NORMAL = scaled(1000, 10000)
KINDS = ["nul", "key", "surrogate", "big", "event", "progress"]
EACH = scaled(5, 20)  # poison jobs of each kind
CAP = 64 * 1024


async def test_poison_results_fail_alone(db: asyncpg.Pool, procs: Procs, report: Row) -> None:
    w = procs.worker("poison-w", "--concurrency", "20", env={"MAX_RESULT_BYTES": str(CAP)})
    await wait_for(lambda: active_workers(db, ["poison-w"]), within=20)
    # poison spread through the ordinary jobs, so they share acknowledgement batches
    jobs = [NewJob("faults.work", 1, 3, params={"ms": 1}) for _ in range(NORMAL)]
    step = NORMAL // (len(KINDS) * EACH)
    for n in range(len(KINDS) * EACH):
        kind = KINDS[n % len(KINDS)]
        jobs.insert(n * (step + 1) + 3, NewJob("faults.poison", 1, 2, params={"kind": kind}))
    async with db.acquire() as conn, conn.transaction():
        ids = await job_insert_many(conn, jobs)
    poison = [i for i, j in zip(ids, jobs, strict=True) if j.definition_key == "faults.poison"]
    normal = [i for i, j in zip(ids, jobs, strict=True) if j.definition_key == "faults.work"]

    await wait_for(lambda: all_terminal(db, ids), within=scaled(60, 300))
    a = await audit(db, ids)
    report.accepted, report.terminal, report.duplicates = a.accepted, a.terminal, a.duplicates
    report.why = a.why()
    a.assert_clean()
    assert await db.fetchval(
        "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'succeeded'", normal
    ) == len(normal)
    rows = await db.fetch(
        "SELECT params->>'kind' AS kind, status, attempt, last_error FROM jobs WHERE id = ANY($1)",
        poison,
    )
    for r in rows:
        assert (r["status"], r["attempt"]) == ("failed", 2), dict(r)
        assert r["last_error"].startswith("result_not_storable: "), dict(r)
    errors = {r["kind"]: r["last_error"] for r in rows}
    assert errors["key"] == "result_not_storable: result holds a NUL character at a\\u0000b"
    assert "over the limit of 65536" in errors["big"]
    assert not await db.fetchval(
        "SELECT count(*) FROM jobs WHERE status IN ('running', 'cancelling')"
    )

    w.signal(signal.SIGTERM)
    rc = w.wait(20)
    assert rc == 0, w.output()[-3000:]
    assert await db.fetchval("SELECT status FROM workers WHERE id = 'poison-w'") == "stopped"
    report.note = (
        f"{len(poison)} poison results ({', '.join(KINDS)}) among {len(normal)} jobs on one"
        " worker: all poison failed with result_not_storable, the worker stopped on SIGTERM"
    )
