"""The two periodic checks a worker runs about the jobs it holds.

- `heartbeat_once`: every HEARTBEAT_INTERVAL_SECONDS, ONE statement extends the lease of every
  held job (fenced) and the worker's own `workers` row is touched. A held job missing from the
  answer lost its lease: its `ctx.cancelled` is set, its task cancelled after CANCEL_GRACE_MS and
  its result dropped. Rows found `cancelling` are cancelled. A job that swallowed the
  cancellation of its timeout is no longer renewed (`_drop_overdue`), so it is rescued.
- `cancel_check_once`: every CANCEL_CHECK_INTERVAL_MS (only while jobs run), one query reads the
  status of the held jobs: the fallback for a missed cancel NOTIFY, and a quick way to notice a
  lease taken over.

Both only judge jobs that were running (not finished, not being acknowledged) before and after
the query, so a job acknowledged meanwhile is never mistaken for a lost one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from jobserver.db import job_runs, workers
from jobserver.worker import metrics

if TYPE_CHECKING:
    from jobserver.worker.daemon import Worker
    from jobserver.worker.executor import Held

log = logging.getLogger("jobserver.worker")


def _judge(worker: Worker, sent: list[Held], rows: list[tuple[object, str]]) -> None:
    status = {r[0]: r[1] for r in rows}
    for h in sent:
        if h.acking or h.lost or h.handing_back or worker.held.get(h.id) is not h:
            continue
        s = status.get(h.id)
        if s is None:
            worker.lease_lost(h)
        elif s == "cancelling":
            worker.request_cancel(h)


def _drop_overdue(worker: Worker) -> None:
    """A job still running CANCEL_GRACE_MS after its timeout cancelled it swallowed the
    cancellation: a coroutine cannot be killed, so stop renewing its lease instead. The rescuer
    then ends the attempt (`lease_expired`: retried, or failed into the DLQ) and the job can
    never hold its lease forever; its result, should it ever return, is dropped."""
    now = time.monotonic()
    grace = worker.settings.cancel_grace_ms / 1000
    for h in worker.held.values():
        if (
            h.timed_out
            and h.active
            and not (h.acking or h.lost)
            and h.timeout
            and now - (h.ran_at or now) > h.timeout + grace
        ):
            h.lost = True
            metrics.LEASES_LOST.inc()
            log.error(
                "job ignored the cancellation of its timeout; leaving its lease to expire",
                extra={"jobId": str(h.id), "attempt": h.attempt},
            )


async def heartbeat_once(worker: Worker) -> None:
    _drop_overdue(worker)
    sent = [h for h in worker.held.values() if not h.lost]
    async with worker.pool.acquire() as conn:
        rows = await job_runs.job_heartbeat(
            conn,
            worker.worker_id,
            [h.id for h in sent],
            [h.attempt for h in sent],
            worker.settings.lease_duration_seconds,
        )
        await workers.worker_heartbeat(conn, worker.worker_id, worker.running)
    metrics.HEARTBEATS.inc()
    _judge(worker, sent, [(r[0], r[1]) for r in rows])


async def cancel_check_once(worker: Worker) -> None:
    sent = [h for h in worker.held.values() if not (h.acking or h.lost)]
    if not sent:
        return
    async with worker.pool.acquire() as conn:
        rows = await job_runs.job_held_status(
            conn, worker.worker_id, [h.id for h in sent], [h.attempt for h in sent]
        )
    _judge(worker, sent, [(r[0], r[1]) for r in rows])


async def every(
    interval: float, stop: asyncio.Event, fn: Callable[[], Awaitable[None]], name: str
) -> None:
    """Run `fn` every `interval` seconds until `stop` is set; errors are logged and survived."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        try:
            await fn()
        except Exception as e:
            metrics.DB_ERRORS.labels(name).inc()
            log.warning("%s failed: %s", name, e)
