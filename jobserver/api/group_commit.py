"""Group commit for single submissions: concurrent `POST /v1/jobs` share one transaction.

With fsync and synchronous_commit on, every transaction pays for a WAL flush, and PostgreSQL
serialises the commits of transactions that NOTIFY (a global lock held through the flush), so
one commit per request caps single submissions at a few hundred per second under load.
`GroupCommitter.submit(pool, job)` queues the job and waits; while no group is being written
it starts one at once (no timer, so an idle server answers a lone request as fast as before),
and everything that arrives while a group is in flight goes into the next one. Each group is
one `job_insert_times` statement: one commit, one NOTIFY. A request is answered only after
its group committed, so a 201 still means the row is durable.

Failures stay per request:
- the database is unreachable (`database_unavailable`): every request of the group gets that error
  (a 503), exactly as each would have alone;
- any other error (an idempotency key taken meanwhile, two requests of the group with one key,
  a value the database refuses): the group is retried one job per statement, so only the
  offending request sees its error (its handler then resolves a key conflict to 200/409).

Options: `max_group` (default 500) jobs per statement; `max_in_flight` (default 1) groups
written at once. Requests whose client went away before their group was written are dropped
from it (nobody is waiting for their id).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import asyncpg

from jobserver.api.errors import database_unavailable
from jobserver.db.jobs import NewJob, job_insert_times
from jobserver.db.pool import PoolBusy

log = logging.getLogger("jobserver.api.group_commit")

MAX_GROUP = 500
MAX_IN_FLIGHT = 1

Stored = tuple[datetime, datetime]  # (created_at, run_at) of an inserted job
Insert = Callable[[asyncpg.Pool, Sequence[NewJob]], Awaitable[list[Stored]]]
Pending = tuple[NewJob, "asyncio.Future[Stored]"]


class GroupCommitter:
    """Collects concurrent single submissions into one insert statement per group."""

    def __init__(
        self,
        *,
        max_group: int = MAX_GROUP,
        max_in_flight: int = MAX_IN_FLIGHT,
        insert: Insert = job_insert_times,
    ) -> None:
        self.max_group = max_group
        self.max_in_flight = max_in_flight
        self._insert = insert
        self._pending: list[Pending] = []
        self._writers: set[asyncio.Task[None]] = set()
        # Figures for tests and logs: groups written and jobs in them.
        self.groups = 0
        self.jobs = 0

    async def submit(self, pool: asyncpg.Pool, job: NewJob) -> Stored:
        """Insert `job` (in some group); once committed, return its (created_at, run_at).

        Raises what inserting it alone would raise (e.g. `asyncpg.UniqueViolationError`)."""
        fut: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._pending.append((job, fut))
        if len(self._writers) < self.max_in_flight:
            task = asyncio.create_task(self._write(pool))
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        return await fut

    async def close(self) -> None:
        """Wait for the groups being written (call before closing the pool)."""
        while self._writers:
            await asyncio.gather(*list(self._writers), return_exceptions=True)

    async def _write(self, pool: asyncpg.Pool) -> None:
        while self._pending:
            group = self._pending[: self.max_group]
            del self._pending[: self.max_group]
            group = [(job, fut) for job, fut in group if not fut.done()]
            if group:
                await self._write_group(pool, group)

    async def _write_group(self, pool: asyncpg.Pool, group: list[Pending]) -> None:
        try:
            rows = await self._insert(pool, [job for job, _ in group])
        except asyncio.CancelledError:
            for _, fut in group:
                fut.cancel()
            raise
        except Exception as e:
            if database_unavailable(e) or isinstance(e, PoolBusy):
                for _, fut in group:
                    _fail(fut, e)
                return
            if len(group) == 1:
                _fail(group[0][1], e)
                return
            log.debug("group of %d failed (%s): one by one", len(group), type(e).__name__)
            for job, fut in group:
                await self._write_group(pool, [(job, fut)])
            return
        self.groups += 1
        self.jobs += len(group)
        for (_, fut), stored in zip(group, rows, strict=True):
            if not fut.done():
                fut.set_result(stored)


def _fail(fut: asyncio.Future[Stored], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
