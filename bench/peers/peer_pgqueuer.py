"""PgQueuer adapter (asyncpg driver, one connection per process, as `pgq run` uses).

Worker = pgqueuer.run(factory, batch_size=C) -- the programmatic form of
`pgq run module:factory --batch-size C` with its other defaults
(max_concurrent_tasks unlimited, durable tables, dequeue_timeout 30 s).
--tuned raises batch_size to 100 (PGQ_TUNED_BATCH): dequeue and log in bigger batches.
Completion is verified from pgqueuer_log (status 'successful').
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time

import asyncpg
import peerlib
import pgqueuer
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.queries import Queries


async def setup(a) -> None:
    conn = await asyncpg.connect(a.dsn)
    try:
        await Queries(AsyncpgDriver(conn)).install()
    finally:
        await conn.close()


async def enqueue_bulk(a) -> None:
    conn = await asyncpg.connect(a.dsn)
    q = Queries(AsyncpgDriver(conn))
    t0 = time.perf_counter()
    done = 0
    while done < a.n:
        k = min(a.batch, a.n - done)
        await q.enqueue(["noop"] * k, [None] * k, [0] * k)
        done += k
    dt = time.perf_counter() - t0
    await conn.close()
    peerlib.emit({"enqueued": done, "enqueue_s": dt})


async def worker(a) -> None:
    sink = peerlib.LatencySink(a.latency_file)

    @contextlib.asynccontextmanager
    async def factory():
        conn = await asyncpg.connect(a.dsn)
        pgq = PgQueuer.from_asyncpg_connection(conn)

        @pgq.entrypoint("noop")
        async def noop(job: Job) -> None:
            if job.payload:
                sink.record(json.loads(job.payload))

        peerlib.worker_ready()
        try:
            yield pgq
        finally:
            await conn.close()

    batch = int(os.environ.get("PGQ_TUNED_BATCH", "100")) if a.tuned else a.concurrency
    await pgqueuer.run(factory, batch_size=batch)


async def enqueue_paced(a) -> None:
    conn = await asyncpg.connect(a.dsn)
    q = Queries(AsyncpgDriver(conn))

    async def one(payload: dict) -> None:
        await q.enqueue("noop", json.dumps(payload).encode())

    res = await peerlib.paced(a.n, a.rate, a.tag, one)
    await conn.close()
    peerlib.emit(res)


def main() -> None:
    a = peerlib.parse_args()
    fn = {
        "setup": setup,
        "enqueue-bulk": enqueue_bulk,
        "worker": worker,
        "enqueue-paced": enqueue_paced,
    }[a.cmd]
    asyncio.run(fn(a))


if __name__ == "__main__":
    main()
