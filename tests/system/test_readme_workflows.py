"""The README's workflow example runs as written against real API and worker processes: the
workflow is created (a cycle is a 422), a run starts at once; a worker runs the fan-out and
the fan-in, and the run's answer and the report step's log line show the results in order."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.faults.helpers import Procs
from tests.system.test_readme_examples import block, expected_statuses, prepare, run_blocks
from tests.waiting import wait_for


async def test_the_workflow_example_runs_as_written(pool: asyncpg.Pool, database_url: str) -> None:
    token = await prepare(pool)
    procs = Procs(database_url)
    try:
        _, base = await procs.api()
        env = {"B": base, "TOKEN": token}
        names = ("api", "workflows")
        out, ran = await asyncio.to_thread(run_blocks, names, env, "")
        assert [c.status for c in ran] == [s for n in names for s in expected_statuses(block(n))]
        made, cycle, started = ran[len(expected_statuses(block("api"))) :]
        assert made.body["version"] == 1
        assert cycle.body["field"] == "steps[1].dependsOn[0]"
        run_job = started.body["jobId"]
        worker = procs.start("jobserver.cli.worker", name="worker")

        async def done() -> bool:
            assert worker.alive(), worker.output()[-3000:]
            status = await pool.fetchval("SELECT status FROM jobs WHERE id = $1::uuid", run_job)
            return bool(status == "succeeded")

        await wait_for(done, within=60)
        env.update(RUN=str(started.body["runId"]), H=f"Authorization: Bearer {token}")
        out, later = await asyncio.to_thread(run_blocks, ("workflows-done",), env, "")
        assert [c.status for c in later] == expected_statuses(block("workflows-done")), out
    finally:
        procs.close()
    shown, _, logs = later
    assert shown.body["status"] == "completed"
    assert shown.body["steps"][0]["forEach"]["total"] == 2
    assert [e["message"] for e in logs.body["items"]] == [
        'greeted: [{"message":"hello Ada"},{"message":"hello Linus"}]'
    ]
