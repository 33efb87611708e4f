"""The one shape every scheduler duty has: a timer, a leadership check per tick, `run_once()`.

    class Expirer(BaseService):
        name = "expirer"
        async def run_once(self) -> dict[str, int]:
            ...  # one bounded unit of work; returns the figures to log

    svc = Expirer(pool, interval=5.0, leader=elector)
    svc.start()          # background loop: every `interval`, if `leader.is_leader()`, run once
    await svc.stop()     # idempotent: a second stop (or a stop before start) is a no-op
    await svc.run_once() # what tests call directly

Losing leadership needs no teardown: a tick that finds this process is not leader does nothing.
A failing run is logged and counted, and the loop carries on at the next interval.

Emits per run: one log line (`<name> run` at INFO when it changed something, DEBUG otherwise,
with the figures and the duration), `jobserver_scheduler_ticks_total{service,outcome}` and
`jobserver_scheduler_tick_seconds{service}`. `runs` counts completed runs and `wait_runs(n)`
lets tests wait for them without sleeping blindly (a tick skipped for want of leadership counts
too, with `last_result` None).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

import asyncpg

from jobserver.scheduler import metrics

log = logging.getLogger("jobserver.scheduler")


class LeaderCheck(Protocol):
    def is_leader(self) -> bool: ...


class BaseService:
    name = "service"

    def __init__(
        self, pool: asyncpg.Pool, *, interval: float, leader: LeaderCheck | None = None
    ) -> None:
        if interval <= 0:
            raise ValueError(f"{self.name}: interval must be > 0, got {interval!r}")
        self.pool = pool
        self.interval = interval
        self.leader = leader
        self.runs = 0
        self.errors = 0
        self.last_result: Any = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._ran = asyncio.Condition()

    async def run_once(self) -> Any:
        """Do one bounded unit of work; return figures (a dict) for the log line."""
        raise NotImplementedError

    def may_run(self) -> bool:
        """The leadership check of every tick (always true for services without a leader)."""
        return self.leader is None or self.leader.is_leader()

    async def tick(self) -> Any:
        """One timer tick: the leadership check, then `run_once` with its log line and metrics."""
        if not self.may_run():
            metrics.TICKS.labels(self.name, "skipped").inc()
            await self._count(None)
            return None
        started = time.perf_counter()
        try:
            result = await self.run_once()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.errors += 1
            metrics.TICKS.labels(self.name, "error").inc()
            log.warning("%s run failed: %s: %s", self.name, type(e).__name__, e)
            result = None
        else:
            metrics.TICKS.labels(self.name, "ok").inc()
            elapsed = time.perf_counter() - started
            metrics.TICK_SECONDS.labels(self.name).observe(elapsed)
            figures = result if isinstance(result, dict) else {}
            changed = any(isinstance(v, int | float) and v for v in figures.values())
            log.log(
                logging.INFO if changed else logging.DEBUG,
                "%s run",
                self.name,
                extra={"service": self.name, "ms": round(elapsed * 1000, 2), **figures},
            )
        await self._count(result)
        return result

    async def _count(self, result: Any) -> None:
        self.last_result = result
        async with self._ran:
            self.runs += 1
            self._ran.notify_all()

    def behind(self) -> bool:
        """Whether the last run stopped at its bound with work left: the loop then runs again
        at once instead of after `interval` (a service whose backlog outgrows what one run may
        do would otherwise fall behind for good)."""
        return False

    async def _loop(self) -> None:
        while True:
            await self.tick()
            self._wake.clear()
            if self.may_run() and self.behind():
                await asyncio.sleep(0)  # one turn of the loop: stop() can cancel us here
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    def wake(self) -> None:
        """Run the next tick now instead of at the end of the interval."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"scheduler-{self.name}"
            )

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Cancel the loop and wait for it; safe to call twice or before `start`."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def wait_runs(self, count: int, within: float = 10.0) -> None:
        """Wait until `runs >= count` (tests); raises TimeoutError after `within` seconds."""
        async with asyncio.timeout(within), self._ran:
            await self._ran.wait_for(lambda: self.runs >= count)
