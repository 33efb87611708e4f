"""A dedicated LISTEN connection that survives database restarts.

Listens on JOBS_CHANNEL (wake the claimer) and CANCEL_CHANNEL (cancel a held job). When the
connection drops it reconnects with back-off (0.1 s doubling to 5 s) and calls `on_connect`,
which lets the worker catch up on anything it missed meanwhile (a claim and a cancel check).
A dead socket is noticed by a cheap `SELECT 1` every `ping_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from jobserver.db.channels import CANCEL_CHANNEL, JOBS_CHANNEL
from jobserver.db.pool import connect

log = logging.getLogger("jobserver.worker")

NotifyFn = Callable[[str], None]


class Listener:
    def __init__(
        self,
        url: str,
        on_jobs: NotifyFn,
        on_cancel: NotifyFn,
        on_connect: Callable[[], None],
        *,
        ping_seconds: float = 5.0,
    ) -> None:
        self._url = url
        self._on_jobs = on_jobs
        self._on_cancel = on_cancel
        self._on_connect = on_connect
        self._ping = ping_seconds
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.backend_pid: int | None = None  # of the LISTEN session (tests terminate it)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="listener")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    def _jobs(self, _c: Any, _pid: int, _channel: str, payload: str) -> None:
        self._on_jobs(payload)

    def _cancel(self, _c: Any, _pid: int, _channel: str, payload: str) -> None:
        self._on_cancel(payload)

    async def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(self._url, timeout=5)
                dropped = asyncio.Event()
                conn.add_termination_listener(lambda _c, ev=dropped: ev.set())
                await conn.add_listener(JOBS_CHANNEL, self._jobs)
                await conn.add_listener(CANCEL_CHANNEL, self._cancel)
                self.backend_pid = conn.get_server_pid()
                self.connected.set()
                delay = 0.1
                self._on_connect()
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
            except Exception as e:
                if not self._stop.is_set():
                    log.warning("listen connection lost (%s); reconnecting in %.1f s", e, delay)
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
            if self._stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, 5.0)
