"""The README's queue health examples run, as written, against real API, worker and scheduler
processes.

The `queues` block submits jobs to `emails`; once the worker has run them (two succeed, one
fails for good, one waits an hour), the `queues-health` block reads the queue list, the
queue's health, the system overview and the stats. Each `curl` answers the status its
`# -> STATUS` comment says, in order, and the answers hold the figures the comments show.
"""

from __future__ import annotations

import asyncio

import asyncpg

from tests.faults.helpers import Procs
from tests.system.test_readme_examples import (
    answer,
    block,
    expected_statuses,
    prepare,
    run_blocks,
)
from tests.waiting import wait_for


async def test_the_queue_health_examples_run_as_written(
    pool: asyncpg.Pool, database_url: str
) -> None:
    token = await prepare(pool)
    procs = Procs(database_url)
    try:
        _, base = await procs.api()
        worker = procs.start("jobserver.cli.worker", name="worker")
        procs.scheduler("scheduler")
        env = {"B": base, "TOKEN": token}
        out, ran = await asyncio.to_thread(run_blocks, ("queues",), env, "")
        assert [c.status for c in ran] == expected_statuses(block("queues")), out

        async def settled() -> bool:
            assert worker.alive(), worker.output()[-3000:]
            done = await pool.fetchval(
                "SELECT count(*) FROM jobs WHERE queue = 'emails'"
                " AND status IN ('succeeded', 'failed')"
            )
            leader = await pool.fetchval(
                "SELECT count(*) FROM scheduler_leader WHERE lease_expires_at > now()"
            )
            return bool(done == 3 and leader == 1)

        await wait_for(settled, within=30)
        env["H"] = f"Authorization: Bearer {token}"  # the second block goes on in the first's shell
        out, ran = await asyncio.to_thread(run_blocks, ("queues-health",), env, "")
        assert [c.status for c in ran] == expected_statuses(block("queues-health")), out
    finally:
        procs.close()
    [listed] = next(c.body for c in ran if c.url.endswith("/v1/queues"))["items"]
    counts = {
        "total": 1,
        "waiting": 0,
        "unclaimed": 0,
        "pending": 0,
        "scheduled": 1,
        "running": 0,
        "stuck": 0,
    }
    assert (listed["name"], listed["status"], listed["counts"]) == ("emails", "healthy", counts)
    assert listed["runners"] == {"active": 1, "total": 1} and listed["alerts"] == []
    health = answer(ran, "/v1/queues/emails/")
    assert health["status"] == "healthy" and health["stuckJobs"] == []
    m = health["metrics"]
    assert (m["succeeded"], m["failed"], m["successRate"], m["jobsPerMinute"]) == (
        2,
        1,
        0.6667,
        0.2,
    )
    assert m["durationSample"] == 3 and m["p50DurationMs"] <= m["p95DurationMs"]
    system = next(c.body for c in ran if c.url.endswith("/v1/health"))
    assert system["status"] == "healthy" and system["scheduler"]["ok"] is True
    assert system["workers"]["active"] == 1
    assert system["queues"] == [{"name": "emails", "status": "healthy", "alerts": 0}]
    stats = answer(ran, "/v1/stats")
    assert (stats["pending"], stats["running"], stats["completed"], stats["failed"]) == (1, 0, 2, 1)
    assert stats["throughput"] == {"lastMinute": 3, "lastHour": 3, "lastDay": 3}
    assert stats["queueType"] == "postgresql" and stats["workers"] == 1
    assert answer(ran, "/v1/queues/nope/")["code"] == "not_found"
