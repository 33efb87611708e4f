"""A LISTEN session that survives database restarts, shared by the worker and the scheduler.

    listener = Listener(url_or_pool, {JOBS_CHANNEL: on_jobs, CANCEL_CHANNEL: on_cancel},
                        on_connect=catch_up)
    listener.start()
    ...
    await listener.stop()

Each channel gets a callback taking the NOTIFY payload. The session is a connection of its own
when given a database URL, or one held from the pool when given a pool (given back on stop or
on a drop). When the session drops it reconnects with back-off (0.1 s doubling to 5 s) and
calls `on_connect` after every (re)connection, so the owner can catch up on what it missed
meanwhile. A dead socket is noticed by a `SELECT 1` every `ping_seconds` (default 5).

`connected` is set while the session listens; `backend_pid` is the session's server process
(tests terminate it to check the reconnect). Failures are logged at warning, once per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from jobserver.db.pool import connect

log = logging.getLogger("jobserver.db.listener")

NotifyFn = Callable[[str], None]
Session = asyncpg.Connection | PoolConnectionProxy


class Listener:
    def __init__(
        self,
        source: str | asyncpg.Pool,
        channels: Mapping[str, NotifyFn],
        *,
        on_connect: Callable[[], None] | None = None,
        ping_seconds: float = 5.0,
        name: str = "listener",
    ) -> None:
        self._source = source
        self._channels = {channel: _Relay(fn) for channel, fn in channels.items()}
        self._on_connect = on_connect
        self._ping = ping_seconds
        self._name = name
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connecting = False
        self.connected = asyncio.Event()
        self.backend_pid: int | None = None

    def start(self) -> None:
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        """Stop listening and close (or give back) the session; safe to call twice."""
        self._stop.set()
        task, self._task = self._task, None
        if task is None:
            return
        if self._connecting:
            task.cancel()  # a connect to a database that does not answer ends now
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # our caller is cancelled, not the listener

    async def _open(self) -> Session:
        self._connecting = True
        try:
            if isinstance(self._source, str):
                return await connect(self._source, timeout=5)
            return await self._source.acquire(timeout=5)
        finally:
            self._connecting = False

    async def _close(self, conn: Session, dropped: Callable[[Any], None]) -> None:
        if not isinstance(conn, PoolConnectionProxy):
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception as e:
                log.warning("%s: closing the LISTEN session failed (%s)", self._name, e)
            return
        assert not isinstance(self._source, str)
        try:
            closed = conn.is_closed()
        except asyncpg.InterfaceError:
            return  # asyncpg already took the dropped connection back into the pool
        if not closed:
            # a pooled session goes back clean (asyncpg warns about listeners left on it)
            conn.remove_termination_listener(dropped)
            try:
                for channel, relay in self._channels.items():
                    await asyncio.wait_for(conn.remove_listener(channel, relay), 2)
            except Exception as e:
                log.warning("%s: UNLISTEN failed (%s)", self._name, e)
        try:
            await asyncio.wait_for(self._source.release(conn), 2)
        except Exception as e:
            log.warning("%s: giving the LISTEN session back failed (%s)", self._name, e)

    async def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            conn: Session | None = None
            dropped = asyncio.Event()

            def on_drop(_conn: Any, ev: asyncio.Event = dropped) -> None:
                ev.set()

            try:
                conn = await self._open()
                conn.add_termination_listener(on_drop)
                for channel, relay in self._channels.items():
                    await conn.add_listener(channel, relay)
                self.backend_pid = conn.get_server_pid()
                self.connected.set()
                delay = 0.1
                if self._on_connect is not None:
                    self._on_connect()
                await self._watch(conn, dropped)
            except Exception as e:
                if not self._stop.is_set():
                    log.warning(
                        "%s: LISTEN session lost (%s); reconnecting in %.1f s",
                        self._name,
                        e,
                        delay,
                    )
            finally:
                self.connected.clear()
                if conn is not None:
                    await self._close(conn, on_drop)
            if self._stop.is_set():
                return
            with contextlib.suppress(TimeoutError):  # the back-off passed: connect again
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, 5.0)

    async def _watch(self, conn: Session, dropped: asyncio.Event) -> None:
        """Return when stopped or the session dropped; ping it every `ping_seconds`."""
        while not self._stop.is_set() and not dropped.is_set():
            waiters = [
                asyncio.ensure_future(self._stop.wait()),
                asyncio.ensure_future(dropped.wait()),
            ]
            done, pending = await asyncio.wait(
                waiters, timeout=self._ping, return_when=asyncio.FIRST_COMPLETED
            )
            for w in pending:
                w.cancel()
            if not done:
                await conn.execute("SELECT 1", timeout=self._ping)
        if dropped.is_set() and not self._stop.is_set():
            raise ConnectionError("the server closed the session")


class _Relay:
    """asyncpg's listener signature (connection, pid, channel, payload) -> the payload alone."""

    __slots__ = ("_fn",)

    def __init__(self, fn: NotifyFn) -> None:
        self._fn = fn

    def __call__(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self._fn(str(payload))
