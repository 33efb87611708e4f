"""jobserver adapter for the peer benchmark: the same sub-commands as the other peers.

setup installs the schema (Alembic) and registers `bench.noop@1`; enqueue-bulk uses the Python
API (`job_insert_many`, 1,000 per transaction); worker runs the real `jobserver-worker` with its
default configuration (MAX_CONCURRENT_EXECUTIONS=10) — `--tuned` raises the concurrency to 100;
enqueue-paced inserts one job per transaction. Completion is read from jobs.status.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import peerlib

from jobserver.db import migrate
from jobserver.db.definitions import definition_upsert
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.db.pool import connect
from jobserver.registry import registry

HERE = os.path.dirname(os.path.abspath(__file__))


def new_job(params: object) -> NewJob:
    return NewJob(definition_key="bench.noop", definition_version=1, max_attempts=3, params=params)


async def setup(a) -> None:
    await migrate.upgrade_async(a.dsn)
    import bench_defs  # noqa: F401  (registers bench.noop@1)

    conn = await connect(a.dsn)
    try:
        for d in registry.all():
            await definition_upsert(conn, d.metadata())
    finally:
        await conn.close()


async def enqueue_bulk(a) -> None:
    conn = await connect(a.dsn)
    t0 = time.perf_counter()
    done = 0
    while done < a.n:
        k = min(a.batch, a.n - done)
        async with conn.transaction():
            await job_insert_many(conn, [new_job({}) for _ in range(k)])
        done += k
    dt = time.perf_counter() - t0
    await conn.close()
    peerlib.emit({"enqueued": done, "enqueue_s": dt})


def worker(a) -> None:
    env = dict(os.environ)
    env["DATABASE_URL"] = a.dsn
    env["MAX_CONCURRENT_EXECUTIONS"] = "100" if a.tuned else str(a.concurrency)
    env["BENCH_LATENCY_FILE"] = a.latency_file
    env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("LOG_LEVEL", "WARNING")
    argv = [sys.executable, "-m", "jobserver.cli.worker", "--module", "bench_defs"]
    os.execve(sys.executable, argv, env)


async def enqueue_paced(a) -> None:
    conn = await connect(a.dsn)

    async def one(payload: dict) -> None:
        # one statement (insert + NOTIFY) is atomic on its own: one round trip, no BEGIN/COMMIT
        await job_insert_many(conn, [new_job(payload)])

    res = await peerlib.paced(a.n, a.rate, a.tag, one)
    await conn.close()
    peerlib.emit(res)


def main() -> None:
    a = peerlib.parse_args()
    if a.cmd == "worker":
        worker(a)
        return
    fn = {"setup": setup, "enqueue-bulk": enqueue_bulk, "enqueue-paced": enqueue_paced}[a.cmd]
    asyncio.run(fn(a))


if __name__ == "__main__":
    main()
