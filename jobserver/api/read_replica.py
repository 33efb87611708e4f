"""Reads from a streaming replica (DATABASE_READ_URL), keeping read-your-writes.

With DATABASE_READ_URL set, the API opens a second pool on that server (`ReadReplica`, under
`READ_REPLICA_KEY`) and the routes marked `Route.replica_reads` (job lists and counts, one job
with its events and attempts, metrics, queues, stats and health: what the dashboard shows)
read through it: their handlers take `read_pool(request)`, which is the replica's pool when
`serve_read` chose it for the request and the primary's otherwise. Writes, authentication
(a revoked token must stop working at once), idempotency and claims stay on the primary.

Read-your-writes, across any number of API processes:
- every write (POST, PUT, PATCH, DELETE answered 2xx) carries `X-Jobserver-Lsn`: the primary's
  WAL insert position read after the write committed (`CommitPositions`: writes that finish
  while one read is in flight share the next one, so a group of submissions costs one);
- a read that sends a position back in `X-Jobserver-Min-Lsn` (the Python client does it by
  itself) is served by the replica once it has replayed that far, waiting at most
  READ_REPLICA_MAX_WAIT_MS (polling its replay position, one poll shared by all waiters, and
  remembering the last one seen), else by the primary;
- within one process, each owner's last write position is remembered for
  READ_YOUR_WRITES_WINDOW_MS, so a client that sends no header reads its own writes the same
  way;
- a 404 from the replica is asked of the primary again before it is answered (a job just
  written elsewhere), and so is any failure the replica causes: it is then left alone for
  READ_REPLICA_RETRY_MS (reads go to the primary, never a 500 for the replica's sake).

A header that is not a position (`16/B374D848`) is a 422 naming it. A read URL that is not a
standby (a primary, or a standby since promoted) counts as caught up.

Figures for tests and logs: `served` (reads the replica answered), `to_primary` (reads that
went to the primary: the replica lagging, down or failing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web

from jobserver.api.errors import ApiError, invalid
from jobserver.api.keys import POOL_KEY, PRINCIPAL_KEY, READ_POOL_KEY, READ_REPLICA_KEY
from jobserver.config import Settings
from jobserver.core.errors import RuleError
from jobserver.db.replication import (
    lsn_parse,
    lsn_text,
    wal_insert_position,
    wal_replay_position,
)

log = logging.getLogger("jobserver.api.read_replica")

LSN_HEADER = "X-Jobserver-Lsn"
MIN_LSN_HEADER = "X-Jobserver-Min-Lsn"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
POLL_SECONDS = 0.002  # between two reads of the replica's replay position while one waits
MAX_OWNERS = 100_000  # remembered writers; past it the expired ones are dropped
CAUGHT_UP = 1 << 64  # the replay position of a server that is not a standby

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CommitPositions:
    """The primary's WAL insert position, read after a commit: every caller gets a position
    read after it called, and callers that arrive while one read is in flight share the
    next one (a group commit's requests cost one read between them)."""

    def __init__(self) -> None:
        self._next: asyncio.Future[int] | None = None
        self._reader: asyncio.Task[None] | None = None
        self.reads = 0

    async def after_commit(self, pool: asyncpg.Pool) -> int:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        fut = self._next
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(pool))
        return await asyncio.shield(fut)

    async def _read(self, pool: asyncpg.Pool) -> None:
        try:
            while (fut := self._next) is not None:
                self._next = None  # later callers wait for the next read
                try:
                    self.reads += 1
                    fut.set_result(await wal_insert_position(pool))
                except Exception as e:
                    fut.set_exception(e)
                    fut.exception()  # retrieved: its callers may all have gone
        finally:
            self._reader = None


class ReadReplica:
    """The replica's pool, how far it has replayed, whether it is usable, and each owner's
    last write in this process (see the module doc)."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.max_wait = settings.read_replica_max_wait_ms / 1000
        self.retry_after = settings.read_replica_retry_ms / 1000
        self.window = settings.read_your_writes_window_ms / 1000
        self.commits = CommitPositions()
        self.replayed = 0  # the replay position last read
        self._down_until = 0.0
        self._owners: dict[str, tuple[int, float]] = {}  # owner -> (position, remembered until)
        self._poll: asyncio.Task[int] | None = None
        self.served = 0
        self.to_primary = 0

    # -- writes
    def remember(self, owner: str, position: int) -> None:
        if self.window <= 0:
            return
        now = time.monotonic()
        if len(self._owners) >= MAX_OWNERS:
            self._owners = {o: e for o, e in self._owners.items() if e[1] > now}
        previous = self._owners.get(owner)
        if previous is not None and previous[0] > position and previous[1] > now:
            position = previous[0]
        self._owners[owner] = (position, now + self.window)

    def last_write(self, owner: str) -> int:
        entry = self._owners.get(owner)
        if entry is None:
            return 0
        if entry[1] <= time.monotonic():
            del self._owners[owner]
            return 0
        return entry[0]

    # -- reads
    def usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, exc: BaseException) -> None:
        """The replica failed a read: leave it alone for READ_REPLICA_RETRY_MS."""
        if self.usable():
            log.warning("read replica failed (%s): reads go to the primary", type(exc).__name__)
        self._down_until = time.monotonic() + self.retry_after

    async def caught_up(self, position: int) -> bool:
        """Whether the replica has replayed `position`, waiting for it at most max_wait."""
        if position <= self.replayed:
            return True
        deadline = time.monotonic() + self.max_wait
        while True:
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0) + 1.0):
                    replayed = await asyncio.shield(self._replay_poll())
            except TimeoutError:
                return False  # slow to answer: the primary serves this one
            if replayed >= position:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(POLL_SECONDS, left))

    def _replay_poll(self) -> asyncio.Task[int]:
        """The replay position, one read shared by every waiter."""
        if self._poll is None:
            self._poll = asyncio.create_task(self._read_replay())
            self._poll.add_done_callback(self._polled)
        return self._poll

    def _polled(self, task: asyncio.Task[int]) -> None:
        self._poll = None
        if not task.cancelled():
            task.exception()

    async def _read_replay(self) -> int:
        position = await wal_replay_position(self.pool)
        self.replayed = max(self.replayed, CAUGHT_UP if position is None else position)
        return self.replayed

    async def close(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
        await self.pool.close()


def read_pool(request: web.Request) -> asyncpg.Pool:
    """The pool a read route's handler reads through (the replica's when chosen for it)."""
    return request.get(READ_POOL_KEY) or request.app[POOL_KEY]


def _wanted(request: web.Request, replica: ReadReplica) -> int:
    """The write position this read must see: the client's header, or its owner's last write
    in this process, whichever is later (0: none)."""
    wanted = 0
    raw = request.headers.get(MIN_LSN_HEADER)
    if raw is not None:
        parsed = lsn_parse(raw)
        if parsed is None:
            raise invalid(MIN_LSN_HEADER, "must be a WAL position such as 16/B374D848")
        wanted = parsed
    principal = request.get(PRINCIPAL_KEY)
    if principal is not None:
        wanted = max(wanted, replica.last_write(principal.owner))
    return wanted


def _replica_failure(exc: BaseException) -> bool:
    """A failure the replica may have caused and the primary may not: ask the primary."""
    if isinstance(exc, ApiError):
        return exc.status in (404, 503)
    return not isinstance(exc, web.HTTPException | RuleError)


async def serve_read(handler: Handler, request: web.Request) -> web.StreamResponse:
    """Run a read route's handler on the replica when it can answer it, else on the primary
    (see the module doc)."""
    replica = request.app.get(READ_REPLICA_KEY)
    if replica is None:
        return await handler(request)
    wanted = _wanted(request, replica)
    if not replica.usable() or not await _caught_up(replica, wanted):
        replica.to_primary += 1
        return await handler(request)
    request[READ_POOL_KEY] = replica.pool
    try:
        response = await handler(request)
    except Exception as e:
        if not _replica_failure(e):
            raise
        if not (isinstance(e, ApiError) and e.status == 404):
            replica.failed(e)  # down, busy, cancelled by recovery, or anything else: a break
        del request[READ_POOL_KEY]
        replica.to_primary += 1
        return await handler(request)
    replica.served += 1
    return response


async def _caught_up(replica: ReadReplica, wanted: int) -> bool:
    try:
        return await replica.caught_up(wanted)
    except Exception as e:  # the replica cannot be asked: the primary answers
        replica.failed(e)
        return False


async def mark_write(request: web.Request, response: web.StreamResponse) -> None:
    """Put the commit's WAL position on a successful write's answer and remember it for the
    writer (no header when it cannot be read: the write itself stands)."""
    replica = request.app.get(READ_REPLICA_KEY)
    if (
        replica is None
        or request.method not in WRITE_METHODS
        or not 200 <= response.status < 300
        or response.prepared
    ):
        return
    try:
        position = await replica.commits.after_commit(request.app[POOL_KEY])
    except Exception as e:
        log.warning("no WAL position for a write's answer (%s)", type(e).__name__)
        return
    response.headers[LSN_HEADER] = lsn_text(position)
    principal = request.get(PRINCIPAL_KEY)
    if principal is not None:
        replica.remember(principal.owner, position)
