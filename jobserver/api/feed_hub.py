"""`FeedHub`: one API process's end of the job feed, shared by all of its stream subscribers.

    hub = FeedHub(database_url)                      # one per app (FEED_HUB_KEY)
    sub = hub.subscribe(pool, owner=None, queue=None, job_id=None, statuses=None,
                        last_event_id=None)
    message = await sub.next(timeout=15)             # a Message, or None at the timeout
    hub.unsubscribe(sub)
    await hub.close()

The statements that change jobs announce them on FEED_CHANNEL (jobserver/db/feed.py) while
this process's row in `job_feed_readers` is live: the hub writes it when its first subscriber
comes, renews it every RENEW_SECONDS while any remains, and lets it lapse LINGER seconds after
the last one left (a page reloading reconnects within that time and misses nothing), so a
process that nobody watches costs the database nothing. One LISTEN session per process
(db/listener.py) receives the ids; the hub reads those jobs in one query per burst through the
pool (never a connection per subscriber) and hands each subscriber the changes it may see: its
owner's jobs (all of them with view_jobs), narrowed by its filters.

Every change gets an id `<epoch>-<n>` (epoch: this hub's own, n counting up). The last REPLAY
changes are kept, so a client reconnecting with Last-Event-ID gets what it missed; one whose
id is older, or from another process or run, gets `resync` (re-read what you show) instead,
as do all subscribers when the LISTEN session reconnects (NOTIFYs sent meanwhile are lost) and
a subscriber that reads too slowly to keep QUEUE_LIMIT messages.

A job announced again in the state last published for it (its status, progress, attempt and
updated_at all the same: a fast job's announcements read in two bursts after it ended) is not
published twice; the last states of up to REPLAY jobs are remembered for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from jobserver.db.channels import FEED_CHANNEL
from jobserver.db.feed import feed_jobs, feed_reader_drop, feed_reader_renew
from jobserver.db.listener import Listener

log = logging.getLogger("jobserver.api.feed")

RENEW_SECONDS = 20.0  # how often the reader row is renewed while anyone subscribes
READER_TTL = 60.0  # how long a renewal keeps it live (an API killed stops the feed then)
LINGER = 30.0  # how long the feed stays on after the last subscriber left (for reconnects)
REPLAY = 2000  # changes kept for clients that reconnect with Last-Event-ID
QUEUE_LIMIT = 1000  # messages waiting for one subscriber before it gets `resync` instead
READ_BATCH = 2000  # ids read per query


@dataclass(frozen=True)
class Message:
    """One server-sent event: `event` is hello, job or resync; `id` the resume cursor."""

    event: str
    data: dict[str, Any]
    id: str | None = None


END = Message("end", {})  # the hub closed: the stream ends


@dataclass(frozen=True)
class Change:
    seq: int
    owner: str
    queue: str
    job_id: str
    status: str
    data: dict[str, Any]


@dataclass(eq=False)
class Subscription:
    """One stream's view of the feed: who may see what, and what waits to be sent."""

    owner: str | None  # None: every owner's jobs (view_jobs)
    queue: str | None
    job_id: str | None
    statuses: frozenset[str] | None
    queue_: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    overflowed: bool = False

    def sees(self, change: Change) -> bool:
        return (
            (self.owner is None or change.owner == self.owner)
            and (self.queue is None or change.queue == self.queue)
            and (self.job_id is None or change.job_id == self.job_id)
            and (self.statuses is None or change.status in self.statuses)
        )

    def put(self, message: Message) -> None:
        if self.overflowed:
            return
        if self.queue_.qsize() >= QUEUE_LIMIT:
            self.overflowed = True  # drop what waits: the client re-reads instead
            while not self.queue_.empty():
                self.queue_.get_nowait()
            self.queue_.put_nowait(Message("resync", {"reason": "too slow"}))
            return
        self.queue_.put_nowait(message)

    async def next(self, timeout: float) -> Message | None:  # noqa: ASYNC109
        """The next message, or None when none came within `timeout` seconds."""
        try:
            message = await asyncio.wait_for(self.queue_.get(), timeout)
        except TimeoutError:
            return None
        if self.queue_.empty():
            self.overflowed = False
        return message


def change_json(r: asyncpg.Record) -> dict[str, Any]:
    """The `data` of a `job` message: a job's state as it is now."""
    return {
        "id": str(r["id"]),
        "status": r["status"],
        "queue": r["queue"],
        "definitionKey": r["definition_key"],
        "definitionVersion": r["definition_version"],
        "progress": r["progress"],
        "attempt": r["attempt"],
        "updatedAt": r["updated_at"].isoformat() if r["updated_at"] else None,
    }


class FeedHub:
    def __init__(self, database_url: str | None) -> None:
        """`database_url`: the LISTEN session's own connection; None: one held from the
        pool of the first subscriber."""
        self._url = database_url
        self.epoch = secrets.token_hex(6)
        self._reader = f"api-{self.epoch}"
        self._subs: set[Subscription] = set()
        self._pool: asyncpg.Pool | None = None
        self._listener: Listener | None = None
        self._pending: dict[uuid.UUID, None] = {}  # ids announced, not yet read (in order)
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()  # a subscriber came or went
        self._seq = 0
        self._replay: deque[Change] = deque(maxlen=REPLAY)
        self._last: OrderedDict[str, dict[str, Any]] = OrderedDict()  # job id -> data published
        self._tasks: list[asyncio.Task[None]] = []
        self._connected_once = False
        self._closed = False
        self.linger_seconds = LINGER

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def listening(self) -> bool:
        return self._listener is not None and self._listener.connected.is_set()

    def subscribe(
        self,
        pool: asyncpg.Pool,
        *,
        owner: str | None,
        queue: str | None,
        job_id: str | None,
        statuses: Iterable[str] | None,
        last_event_id: str | None,
    ) -> Subscription:
        """A new subscription; its first messages are what it missed since `last_event_id`
        (or `resync` when that is no longer known). Starts the feed on the first one."""
        sub = Subscription(owner, queue, job_id, frozenset(statuses) if statuses else None)
        if last_event_id:
            self._replay_to(sub, last_event_id)
        self._subs.add(sub)
        self._changed.set()
        self._pool = pool
        if not self._tasks and not self._closed:
            self._start()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        if not self._subs:
            self._changed.set()

    def _replay_to(self, sub: Subscription, last_event_id: str) -> None:
        epoch, _, raw = last_event_id.partition("-")
        seen = int(raw) if raw.isdigit() else -1
        oldest = self._replay[0].seq if self._replay else self._seq + 1
        if epoch != self.epoch or seen < 0 or seen > self._seq or seen < oldest - 1:
            sub.put(Message("resync", {"reason": "unknown cursor"}))
            return
        for change in self._replay:
            if change.seq > seen and sub.sees(change):
                sub.put(self._message(change))

    def _message(self, change: Change) -> Message:
        return Message("job", change.data, f"{self.epoch}-{change.seq}")

    # -------------------------------------------------------------- the feed

    def _start(self) -> None:
        source: str | asyncpg.Pool | None = self._url or self._pool
        assert source is not None
        self._listener = Listener(
            source, {FEED_CHANNEL: self._on_notify}, on_connect=self._on_connect, name="api-feed"
        )
        self._listener.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read_loop(), name="api-feed-read"),
            loop.create_task(self._renew_loop(), name="api-feed-renew"),
        ]

    def _on_notify(self, payload: str) -> None:
        for raw in payload.split(","):
            try:
                self._pending[uuid.UUID(raw)] = None
            except ValueError:
                continue
        self._wake.set()

    def _on_connect(self) -> None:
        """(Re)connected: after a drop, NOTIFYs were lost meanwhile; everyone re-reads."""
        if self._connected_once:
            for sub in self._subs:
                sub.put(Message("resync", {"reason": "feed reconnected"}))
        self._connected_once = True

    async def _read_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                ids = list(self._pending)[:READ_BATCH]
                for i in ids:
                    del self._pending[i]
                if self._pool is None:
                    continue
                try:
                    rows = await feed_jobs(self._pool, ids)
                except Exception as e:  # the database is away: those changes are lost
                    log.warning("feed: reading %d changed jobs failed (%s)", len(ids), e)
                    for sub in self._subs:
                        sub.put(Message("resync", {"reason": "feed read failed"}))
                    continue
                self._publish(rows)

    def _publish(self, rows: list[asyncpg.Record]) -> None:
        for r in rows:
            job_id, data = str(r["id"]), change_json(r)
            if self._last.get(job_id) == data:
                continue  # announced again, unchanged: already told
            self._last[job_id] = data
            self._last.move_to_end(job_id)
            if len(self._last) > REPLAY:
                self._last.popitem(last=False)
            self._seq += 1
            change = Change(self._seq, r["owner"], r["queue"], job_id, r["status"], data)
            self._replay.append(change)
            message = self._message(change)
            for sub in self._subs:
                if sub.sees(change):
                    sub.put(message)

    async def _renew_loop(self) -> None:
        """Keep this process's reader row live while it has subscribers, and for
        `linger_seconds` after the last one left (woken by `_changed` then, or every
        RENEW_SECONDS): a client that reconnects within that time misses nothing."""
        live = False
        while True:
            try:
                if self._subs and self._pool is not None:
                    await feed_reader_renew(self._pool, self._reader, READER_TTL)
                    live = True
                elif live and self._pool is not None:
                    await feed_reader_renew(self._pool, self._reader, self.linger_seconds)
                    live = False
            except Exception as e:  # tried again at the next turn
                log.warning("feed: renewing the reader row failed (%s)", e)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), RENEW_SECONDS)

    async def ready(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Whether the feed is on (LISTEN session up and the reader row written), waiting up
        to `timeout`: a stream says hello only then, so nothing committed after its hello
        is missed."""
        if self._listener is None or self._pool is None:
            return False
        try:
            await asyncio.wait_for(self._listener.connected.wait(), timeout)
            await feed_reader_renew(self._pool, self._reader, READER_TTL)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        return True

    async def close(self) -> None:
        """Stop the feed (at shutdown): every subscriber gets an `end` message (not sent: the
        stream closes on it)."""
        self._closed = True
        for sub in self._subs:
            sub.queue_.put_nowait(END)
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._listener is not None:
            await self._listener.stop()
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(feed_reader_drop(self._pool, self._reader), 2)
