"""The README's dependsOn example runs as written against real API and worker processes: the
batch answers 201, the last job waits for its two parents, a cycle is a 422; then a worker runs
the three in order and the last one's templated message holds its parents' results."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.faults.helpers import Procs
from tests.system.test_readme_examples import block, expected_statuses, prepare, run_blocks
from tests.waiting import wait_for


async def test_the_dependencies_example_runs_as_written(
    pool: asyncpg.Pool, database_url: str
) -> None:
    token = await prepare(pool)
    procs = Procs(database_url)
    try:
        _, base = await procs.api()
        env = {"B": base, "TOKEN": token}
        names = ("api", "dependencies")
        out, ran = await asyncio.to_thread(run_blocks, names, env, "")
        assert [c.status for c in ran] == [s for n in names for s in expected_statuses(block(n))]
        made, shown, cycle = ran[len(expected_statuses(block("api"))) :]
        fetch, transform, notify = made.body["jobIds"]
        assert shown.body["status"] == "waiting" and shown.body["dependsOn"] == [fetch, transform]
        assert cycle.body["field"] == "jobs[0].dependsOn"
        worker = procs.start("jobserver.cli.worker", name="worker")

        async def done() -> bool:
            assert worker.alive(), worker.output()[-3000:]
            n = await pool.fetchval(
                "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[]) AND status = 'succeeded'",
                [fetch, transform, notify],
            )
            return bool(n == 3)

        await wait_for(done, within=60)
        env.update(NOTIFY=notify, H=f"Authorization: Bearer {token}")
        out, later = await asyncio.to_thread(run_blocks, ("dependencies-done",), env, "")
        assert [c.status for c in later] == expected_statuses(block("dependencies-done")), out
    finally:
        procs.close()
    _, logs = later
    assert [e["message"] for e in logs.body["items"]] == ["fetched 42 rows, sorted"]
    order = await pool.fetch(
        "SELECT id FROM jobs WHERE id = ANY($1::uuid[]) ORDER BY started_at",
        [fetch, transform, notify],
    )
    assert [str(r["id"]) for r in order] == [fetch, transform, notify]
