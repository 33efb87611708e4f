"""The README's broadcast example runs as written against real API and worker processes: the
submission answers 201 with one child per live worker, a queue nobody serves is a 422 naming
`broadcast`; once the workers ran their children the parent answers succeeded with the sums."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.faults.helpers import Procs
from tests.system.test_readme_examples import block, expected_statuses, prepare, run_blocks
from tests.waiting import wait_for


async def test_the_broadcast_example_runs_as_written(pool: asyncpg.Pool, database_url: str) -> None:
    token = await prepare(pool)
    procs = Procs(database_url)
    try:
        _, base = await procs.api()
        workers = [
            procs.start("jobserver.cli.worker", "--queues", "default", name=n, env={"WORKER_ID": n})
            for n in ("readme-1", "readme-2")
        ]

        async def live() -> bool:
            for w in workers:
                assert w.alive(), w.output()[-3000:]
            n = await pool.fetchval(
                "SELECT count(*) FROM workers WHERE status = 'active'"
                " AND last_seen_at > now() - interval '0.5 seconds'"
            )
            return bool(n == 2)

        await wait_for(live, within=60)
        env = {"B": base, "TOKEN": token}
        names = ("api", "broadcast")
        out, ran = await asyncio.to_thread(run_blocks, names, env, "")
        assert [c.status for c in ran] == [s for n in names for s in expected_statuses(block(n))]
        made, refused = ran[len(expected_statuses(block("api"))) :]
        children = made.body["broadcastChildren"]
        assert sorted(c["workerId"] for c in children) == ["readme-1", "readme-2"], made.body
        assert refused.body["field"] == "broadcast"
        parent = made.body["id"]

        async def done() -> bool:
            status = await pool.fetchval("SELECT status FROM jobs WHERE id = $1::uuid", parent)
            return bool(status == "succeeded")

        await wait_for(done, within=60)
        env.update(EVERY=parent, H=f"Authorization: Bearer {token}")
        out, later = await asyncio.to_thread(run_blocks, ("broadcast-done",), env, "")
        assert [c.status for c in later] == expected_statuses(block("broadcast-done")), out
    finally:
        procs.close()
    [shown] = later
    assert shown.body["result"] == {
        "workers": {"readme-1": "succeeded", "readme-2": "succeeded"},
        "succeeded": 2,
        "failed": 0,
    }
