"""`ControlChannel`: the API's end of the control channel: send a runner command, wait for replies.

    channel = ControlChannel(settings.database_url)     # one per app (CONTROL_KEY)
    sent = await channel.send(pool, target=None, command="status", args={},
                              created_by="admin", expect=["w1", "w2"], timeout=5.0)
    sent.replies      # [Reply(worker_id, reply, answered_at, ms)], in the order they came
    sent.missing      # the expected workers that did not answer within the timeout
    await channel.close()

One LISTEN session on REPLY_CHANNEL per process (db/listener.py, opened on first use) wakes the
request waiting on a command as each reply is written; `ms` is measured from just before the
command is written to the moment its reply's NOTIFY arrives (the round trip through PostgreSQL
and the worker). The wait ends when every expected worker answered or at the timeout. The
replies are then read from `runner_replies`, so the answer holds every reply written in time,
also those of workers not expected and those whose NOTIFY was lost; while the LISTEN session
is down the wait polls `runner_replies` every FALLBACK_POLL seconds instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from jobserver.db.channels import REPLY_CHANNEL
from jobserver.db.listener import Listener
from jobserver.db.runner_commands import runner_command_send, runner_replies_list

# Seconds between reads of runner_replies when no NOTIFY came (a dropped LISTEN session).
FALLBACK_POLL = 0.5
# How long a request waits for the LISTEN session to connect before relying on the polls.
LISTEN_WAIT = 2.0


@dataclass(frozen=True)
class Reply:
    worker_id: str
    reply: dict[str, Any]
    answered_at: datetime
    ms: float  # the round trip, as this process measured it


@dataclass(frozen=True)
class Sent:
    command_id: uuid.UUID
    replies: list[Reply]
    missing: list[str]


@dataclass
class _Wait:
    expect: set[str]
    t0: float
    arrived: dict[str, float] = field(default_factory=dict)  # worker id -> monotonic time
    event: asyncio.Event = field(default_factory=asyncio.Event)
    recheck: bool = False  # the LISTEN session reconnected: read the table

    def complete(self) -> bool:
        return self.expect <= self.arrived.keys()


class ControlChannel:
    def __init__(self, database_url: str | None) -> None:
        self._url = database_url
        self._listener: Listener | None = None
        self._waits: dict[uuid.UUID, _Wait] = {}

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()

    async def _listening(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Whether the LISTEN session is up (started on first use), waiting up to `timeout`."""
        if self._url is None:
            return False
        if self._listener is None:
            self._listener = Listener(
                self._url,
                {REPLY_CHANNEL: self._on_reply},
                on_connect=self._wake_all,
                name="api-replies",
            )
            self._listener.start()
        try:
            await asyncio.wait_for(self._listener.connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _on_reply(self, payload: str) -> None:
        raw_id, _, worker_id = payload.partition(" ")
        try:
            wait = self._waits.get(uuid.UUID(raw_id))
        except ValueError:
            return
        if wait is not None:
            wait.arrived.setdefault(worker_id, time.monotonic())
            wait.event.set()

    def _wake_all(self) -> None:
        """(Re)connected: replies may have been missed; every waiter reads the table once."""
        for wait in self._waits.values():
            wait.recheck = True
            wait.event.set()

    def _connected(self) -> bool:
        return self._listener is not None and self._listener.connected.is_set()

    async def send(
        self,
        pool: asyncpg.Pool,
        *,
        target: str | None,
        command: str,
        args: dict[str, Any],
        created_by: str | None,
        expect: Sequence[str],
        timeout: float,  # noqa: ASYNC109 - how long the replies are waited for
    ) -> Sent:
        """Write the command, wait for the replies of `expect` (at most `timeout` seconds)."""
        listening = await self._listening(min(timeout, LISTEN_WAIT))
        command_id = uuid.uuid4()
        wait = _Wait(set(expect), time.monotonic())
        self._waits[command_id] = wait
        try:
            await runner_command_send(pool, command_id, target, command, args, created_by)
            deadline = wait.t0 + timeout
            while not wait.complete():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                live = listening and self._connected()
                woken = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        wait.event.wait(), left if live else min(left, FALLBACK_POLL)
                    )
                    woken = True
                wait.event.clear()
                recheck, wait.recheck = wait.recheck, False
                if woken and live and not recheck:
                    continue  # a NOTIFY: the arrivals say who answered
                for r in await runner_replies_list(pool, command_id):
                    wait.arrived.setdefault(r["worker_id"], time.monotonic())
            rows = await runner_replies_list(pool, command_id)
        finally:
            del self._waits[command_id]
        now = time.monotonic()
        replies = [
            Reply(
                r["worker_id"],
                r["reply"] if isinstance(r["reply"], dict) else {"value": r["reply"]},
                r["answered_at"],
                round((wait.arrived.get(r["worker_id"], now) - wait.t0) * 1000, 3),
            )
            for r in rows
        ]
        answered = {r.worker_id for r in replies}
        return Sent(command_id, replies, sorted(wait.expect - answered))
