"""A 1,000-job fan-out/fan-in workflow vs 1,000 independent no-op jobs, end to end on one worker.

    .venv/bin/python bench/workflows.py [--jobs 1000] [--rounds 3] [--out FILE] [--quick]

On its own throwaway cluster (fsync and synchronous_commit on, as bench/extra.py), one
in-process worker (concurrency 50) and the real API app in-process:

- plain:    `--jobs` echo@1 jobs in one POST /v1/jobs/batch; the time from the request to
            the last one succeeded (read back from the database)
- workflow: a stored workflow of two steps, `each` (echo@1, forEach over the run's inputData
            list of `--jobs` items) and `merge` (echo@1, reads `{{steps.each.result}}`: the
            fan-in, made by its expander once every child ended), started by POST
            /v1/workflows/{id}/runs; the time from the request to the run's job succeeded
            (`jobs` + 3 jobs: the children, merge's expander, merge, the run's job)

Each round runs both on an emptied jobs table; the median of `--rounds` is reported with the
ratio workflow/plain (the issue's target: within 2x). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jobserver.api.app import create_app
from jobserver.auth import create_token
from jobserver.config import Settings
from jobserver.db import migrate
from jobserver.db.definitions import definition_upsert
from jobserver.db.pool import create_pool
from jobserver.registry import load_modules
from jobserver.testing.cluster import LocalCluster
from jobserver.worker.worker import Worker

SETTINGS = {
    "shared_buffers": "256MB",
    "max_connections": "200",
    "fsync": "on",
    "synchronous_commit": "on",
}


async def wait_until(pool: asyncpg.Pool, sql: str, *args: Any, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not await pool.fetchval(sql, *args):
        if time.monotonic() > deadline:
            raise TimeoutError(sql)
        await asyncio.sleep(0.005)


async def one_round(
    client: TestClient, pool: asyncpg.Pool, token: str, wid: str, n: int
) -> tuple[float, float]:
    headers = {"Authorization": f"Bearer {token}"}
    await pool.execute("TRUNCATE jobs, job_events, job_dependencies CASCADE")
    body = {
        "jobs": [
            {"definitionKey": "echo", "definitionVersion": 1, "params": {"message": str(i)}}
            for i in range(n)
        ]
    }
    t0 = time.perf_counter()
    async with client.post("/v1/jobs/batch", json=body, headers=headers) as r:
        assert r.status == 201, await r.text()
    await wait_until(pool, "SELECT count(*) = $1 FROM jobs WHERE status = 'succeeded'", n)
    plain = time.perf_counter() - t0

    await pool.execute("TRUNCATE jobs, job_events, job_dependencies CASCADE")
    t0 = time.perf_counter()
    async with client.post(
        f"/v1/workflows/{wid}/runs",
        headers=headers,
        json={"inputData": {"items": [str(i) for i in range(n)]}},
    ) as r:
        assert r.status == 201, await r.text()
        run = await r.json()
    await wait_until(
        pool, "SELECT status = 'succeeded' FROM jobs WHERE id = $1::uuid", run["jobId"]
    )
    flow = time.perf_counter() - t0
    done = await pool.fetchval("SELECT count(*) FROM jobs WHERE status = 'succeeded'")
    assert done == n + 3, done
    phases = await pool.fetch(
        "SELECT CASE WHEN name LIKE 'each[%' THEN 'children' ELSE name END AS part,"
        " extract(epoch FROM min(started_at) - min(t0)) AS started,"
        " extract(epoch FROM max(finished_at) - min(t0)) AS finished"
        " FROM jobs, (SELECT min(created_at) AS t0 FROM jobs) s GROUP BY 1 ORDER BY 3"
    )
    hops = await pool.fetch(
        "SELECT j.name, extract(epoch FROM j.created_at - s.t0) AS created,"
        " extract(epoch FROM (SELECT max(e.at) FROM job_events e"
        "  WHERE e.job_id = j.id AND e.event = 'ready') - s.t0) AS ready,"
        " extract(epoch FROM j.started_at - s.t0) AS started,"
        " extract(epoch FROM j.finished_at - s.t0) AS finished"
        " FROM jobs j, (SELECT min(created_at) AS t0 FROM jobs) s"
        " WHERE j.name NOT LIKE 'each[%' ORDER BY j.finished_at"
    )
    print(
        "  hops (s from the run's insert: created/ready/started/finished):",
        "; ".join(
            f"{h['name']} {h['created']:.3f}/{(h['ready'] or 0):.3f}/{h['started']:.3f}"
            f"/{h['finished']:.3f}"
            for h in hops
        ),
        flush=True,
    )
    print(
        "  workflow phases (s from the run's insert):",
        ", ".join(f"{r['part']} {r['started']:.3f}-{r['finished']:.3f}" for r in phases),
        flush=True,
    )
    return plain, flow


async def main_async(a: argparse.Namespace) -> dict[str, Any]:
    with LocalCluster(settings=SETTINGS) as cluster:
        url = cluster.url()
        await migrate.upgrade_async(url)
        settings = Settings(database_url=url, worker_id="bench-worker", poll_interval_ms=100)
        pool = await create_pool(url, settings, max_size=20)
        registry = load_modules()
        async with pool.acquire() as conn:
            for d in registry.all():
                await definition_upsert(conn, d.metadata())
        token = await create_token(pool, "bench", ["manage_jobs"], "bench")
        app = create_app(replace(settings, host="127.0.0.1"), pool)
        client = TestClient(TestServer(app))
        await client.start_server()
        worker = Worker(settings, registry, concurrency=50)
        await worker.start()
        try:
            steps = [
                {
                    "name": "each",
                    "jobType": "echo@1",
                    "forEach": "input.items",
                    "params": {"message": "{{item}}"},
                },
                {
                    "name": "merge",
                    "jobType": "echo@1",
                    "dependsOn": ["each"],
                    "params": {"all": "{{steps.each.result}}"},
                },
            ]
            async with client.post(
                "/v1/workflows",
                json={"name": "fan", "steps": steps},
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                assert r.status == 201, await r.text()
                wid = (await r.json())["id"]
            await one_round(client, pool, token, wid, min(a.jobs, 100))  # warm up
            plains, flows = [], []
            for i in range(a.rounds):
                p, f = await one_round(client, pool, token, wid, a.jobs)
                plains.append(p)
                flows.append(f)
                print(f"round {i + 1}: plain {p:.3f} s, workflow {f:.3f} s", flush=True)
        finally:
            await worker.stop(grace=0)
            await client.close()
            await pool.close()
    plain, flow = statistics.median(plains), statistics.median(flows)
    return {
        "jobs": a.jobs,
        "rounds": a.rounds,
        "plain_seconds": round(plain, 3),
        "workflow_seconds": round(flow, 3),
        "ratio": round(flow / plain, 2),
        "plain_runs": [round(x, 3) for x in plains],
        "workflow_runs": [round(x, 3) for x in flows],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: proves it works")
    a = ap.parse_args()
    if a.quick:
        a.jobs, a.rounds = 100, 1
    result = asyncio.run(main_async(a))
    print(f"| workload | {a.jobs} jobs (s, median of {a.rounds}) |\n| --- | --- |")
    print(f"| independent no-op jobs | {result['plain_seconds']} |")
    print(f"| fan-out/fan-in workflow | {result['workflow_seconds']} |")
    print(f"| ratio | {result['ratio']}x (target <= 2x) |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
