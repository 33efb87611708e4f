"""Procrastinate adapter (psycopg 3 async connector / psycopg_pool).

Worker = app.run_worker_async(concurrency=C) with Procrastinate's defaults
(listen_notify on, 5 s fallback polling, jobs kept with status 'succeeded').
The pool is sized C + 2 (listener + one spare), as Procrastinate's docs advise
a pool at least as large as the concurrency. Completion is verified from
procrastinate_jobs.status = 'succeeded'.
"""

from __future__ import annotations

import asyncio
import time

import peerlib
import procrastinate


def make_app(dsn: str, pool_size: int) -> procrastinate.App:
    connector = procrastinate.PsycopgConnector(
        conninfo=dsn, min_size=min(4, pool_size), max_size=pool_size
    )
    return procrastinate.App(connector=connector)


async def setup(a) -> None:
    app = make_app(a.dsn, 2)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def enqueue_bulk(a) -> None:
    app = make_app(a.dsn, 2)
    noop = app.task(name="noop")(_noop_unused)
    async with app.open_async():
        t0 = time.perf_counter()
        done = 0
        while done < a.n:
            k = min(a.batch, a.n - done)
            await noop.batch_defer_async(*({} for _ in range(k)))
            done += k
        dt = time.perf_counter() - t0
    peerlib.emit({"enqueued": done, "enqueue_s": dt})


async def _noop_unused(**kwargs) -> None:  # only for deferring
    return None


async def worker(a) -> None:
    sink = peerlib.LatencySink(a.latency_file)
    app = make_app(a.dsn, a.concurrency + 2)

    @app.task(name="noop")
    async def noop(**kwargs) -> None:
        if kwargs:
            sink.record(kwargs)

    async with app.open_async():
        peerlib.worker_ready()
        await app.run_worker_async(concurrency=a.concurrency)


async def enqueue_paced(a) -> None:
    app = make_app(a.dsn, 2)
    noop = app.task(name="noop")(_noop_unused)
    async with app.open_async():

        async def one(payload: dict) -> None:
            await noop.defer_async(**payload)

        res = await peerlib.paced(a.n, a.rate, a.tag, one)
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
    # Re-import so the App is built in an importable module rather than __main__
    # (Procrastinate warns about apps defined in __main__).
    import peer_procrastinate

    peer_procrastinate.main()
