"""An outcome waits in the ack buffer only while it could share the write with another."""

from __future__ import annotations

import asyncpg

from tests.worker.conftest import REGISTRY, status_is, submit, wait_for


async def test_an_idle_worker_writes_an_outcome_at_once(db: asyncpg.Pool, fast_settings) -> None:
    from jobserver.worker.worker import Worker

    # acknowledgements would wait 30 s in the buffer: only "nothing else runs" writes one sooner
    w = Worker(fast_settings, REGISTRY, concurrency=4, ack_delay=30.0)
    await w.start()
    try:
        [first] = await submit(db, "echo", [{}])
        await wait_for(lambda: status_is(db, first, "succeeded"), within=10)
        # while another job runs, an outcome waits for company (the delay) as before
        [long] = await submit(db, "test.sleep", [{"seconds": 60}])
        await wait_for(lambda: status_is(db, long, "running"))
        [second] = await submit(db, "echo", [{}])

        async def buffered() -> bool:
            return w.acks.backlog() == 1

        await wait_for(buffered)
        assert await status_is(db, second, "running")
    finally:
        await w.stop(grace=0)
