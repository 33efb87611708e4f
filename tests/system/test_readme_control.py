"""The README's runner control examples run, as written, against a real API and worker process.

The `control` block pings the one worker, asks its status, pauses and resumes a queue and the
worker's own claims, reloads it and finally shuts it down: every `curl` answers the status its
`# -> STATUS` comment says, in order, the answers hold what the block shows, and the worker
process exits 0.
"""

from __future__ import annotations

import asyncio

import asyncpg

from tests.faults.helpers import Procs
from tests.system.test_readme_examples import answer, block, expected_statuses, prepare, run_blocks
from tests.waiting import wait_for


async def test_the_runner_control_examples_run_as_written(
    pool: asyncpg.Pool, database_url: str
) -> None:
    token = await prepare(pool)
    procs = Procs(database_url)
    try:
        _, base = await procs.api()
        worker = procs.start("jobserver.cli.worker", name="worker", env={"WORKER_ID": "w-readme"})

        async def listening() -> bool:
            assert worker.alive(), worker.output()[-3000:]
            # registered, and its LISTEN session up: it has read the paused queues once
            return (
                bool(await pool.fetchval("SELECT count(*) FROM workers WHERE status = 'active'"))
                and '"worker started"' in worker.output()
            )

        await wait_for(listening, within=30)
        env = {"B": base, "TOKEN": token}
        out, ran = await asyncio.to_thread(run_blocks, ("control",), env, "")
        assert [c.status for c in ran] == expected_statuses(block("control")), out
        code = await asyncio.to_thread(worker.wait, 30)
        assert code == 0, worker.output()[-3000:]
    finally:
        procs.close()
    ping = answer(ran, "/ping")
    assert (ping["runnerId"], ping["answered"], ping["reply"]) == ("w-readme", True, {"pong": True})
    paused = answer(ran, "/v1/queues/emails/pause")
    assert (paused["acknowledged"], paused["reason"]) == (["w-readme"], "SMTP maintenance")
    assert answer(ran, "/v1/queues/paused")["items"][0]["queue"] == "emails"
    assert answer(ran, "/v1/queues/emails/resume")["changed"] is True
    assert answer(ran, "/shutdown")["reply"]["mode"] == "graceful"
    assert await pool.fetchval("SELECT status FROM workers WHERE id = 'w-readme'") == "stopped"
