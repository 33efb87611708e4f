"""The README's core reference block runs as written against a real API and worker process: the
reference's `process.data` example is accepted and succeeds, and the metrics answers carry the
reference's fields (rates as fractions, throughput's `data`, flat figures per definition)."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.faults.helpers import Procs
from tests.system.test_readme_examples import answer, block, expected_statuses, prepare, run_blocks
from tests.waiting import wait_for


async def test_the_core_reference_examples_run_as_written(
    pool: asyncpg.Pool, database_url: str
) -> None:
    token = await prepare(pool)
    procs = Procs(database_url)
    try:
        _, base = await procs.api()
        worker = procs.start("jobserver.cli.worker", name="worker")
        env = {"B": base, "TOKEN": token}
        out, ran = await asyncio.to_thread(run_blocks, ("reference",), env, "")
        assert [c.status for c in ran] == expected_statuses(block("reference")), out
        job_id = answer(ran, "/v1/jobs")["jobId"]

        async def finished() -> bool:
            assert worker.alive(), worker.output()[-3000:]
            status = await pool.fetchval("SELECT status FROM jobs WHERE id = $1::uuid", job_id)
            return status in ("succeeded", "failed")

        await wait_for(finished, within=30)
        row = await pool.fetchrow("SELECT status, result FROM jobs WHERE id = $1::uuid", job_id)
        # after the job: the same requests again see it
        out, again = await asyncio.to_thread(run_blocks, ("reference",), env, "")
        assert [c.status for c in again] == expected_statuses(block("reference")), out
    finally:
        procs.close()
    assert row["status"] == "succeeded", row
    assert "sales-2024" in str(row["result"])
    perf = answer(again, "metrics/performance")
    assert perf["successRate"] == 1.0 and perf["successRatePercent"] == 100.0
    [data] = answer(again, "metrics/definitions")["definitions"]
    assert (data["definitionKey"], data["total"], data["successRate"]) == ("process.data", 2, 1.0)
    assert data["byStatus"]["succeeded"] >= 1  # the second job may be run already
    points = answer(again, "metrics/throughput")["data"]
    assert len(points) == 24 and sum(p["completed"] for p in points) >= 1
    assert points[-1]["period"].endswith(":00:00.000Z")
