"""`RunnerControl`: a worker's end of the control channel (see jobserver/core/control.py).

    control = RunnerControl(worker, gate)
    listener channels: {CONTROL_CHANNEL: control.on_notify}; on_connect: control.caught_up()
    await control.load_paused_queues()   # at start, before the first claim
    ...
    await control.close()                # at shutdown, before the pool closes

A NOTIFY on CONTROL_CHANNEL names a command and its target; a command for this worker (or for
all, and of one of its queues when it names one) is read, acted on, and answered with one reply
row (`runner_reply_insert`). Each command is handled once, however it arrived. After every
(re)connection of the LISTEN session the worker re-reads the paused queues and looks for
commands it has not answered from the last CATCH_UP_SECONDS (a NOTIFY sent while it was cut off
is lost). `shutdown` is answered first, then the worker stops (graceful: the usual shutdown with
SHUTDOWN_GRACE_SECONDS; immediate: grace 0, running jobs handed back at once); a process worker
then exits 0.

The worker is seen through `Runner` (its figures and three hooks); the claims through the
`ClaimGate`. Failures are logged at warning; a command that could not be answered is retried
by no one (the API names the worker as not answering).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Coroutine, Sized
from typing import Any, Protocol

import asyncpg

from jobserver.config import ConfigError, Settings
from jobserver.core import control as commands
from jobserver.db.paused_queues import paused_queue_names
from jobserver.db.runner_commands import (
    runner_command_get,
    runner_commands_unanswered,
    runner_reply_insert,
)
from jobserver.worker.gate import ClaimGate
from jobserver.worker.reload import RELOADABLE, SettingsSource, changes, env_name

log = logging.getLogger("jobserver.worker")

# How far back a worker looks for commands it missed while its LISTEN session was down.
CATCH_UP_SECONDS = 30.0
# Command ids remembered as handled (a command arrives by NOTIFY and perhaps by the catch-up).
SEEN_MAX = 1000


class Runner(Protocol):
    """What the control channel sees of a worker."""

    worker_id: str
    queues: list[str] | None
    concurrency: int
    refs: list[str]
    settings: Settings

    @property
    def pool(self) -> asyncpg.Pool: ...
    @property
    def running(self) -> int: ...
    @property
    def ready(self) -> Sized: ...
    @property
    def held(self) -> Sized: ...
    @property
    def processed(self) -> int: ...
    @property
    def stopping(self) -> bool: ...

    def request_stop(self, grace: float | None) -> None: ...
    async def apply_settings(self, new: Settings) -> dict[str, str]: ...


class RunnerControl:
    def __init__(
        self, runner: Runner, gate: ClaimGate, source: SettingsSource | None = None
    ) -> None:
        self._runner = runner
        self._gate = gate
        self.source = source if source is not None else SettingsSource()
        self._started = time.monotonic()
        self._seen: set[uuid.UUID] = set()
        self._seen_order: deque[uuid.UUID] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.handled = 0  # commands acted on (tests wait on it)

    # -- the listener's callbacks --------------------------------------------------------------

    def on_notify(self, payload: str) -> None:
        """A NOTIFY on CONTROL_CHANNEL: "<command id> <target>" (target "*" for all)."""
        raw_id, _, target = payload.partition(" ")
        if target not in ("*", self._runner.worker_id):
            return
        try:
            command_id = uuid.UUID(raw_id)
        except ValueError:
            return
        self._spawn(self._handle(command_id))

    def caught_up(self) -> None:
        """(Re)connected to LISTEN: re-read the paused queues, answer what was missed."""
        self._spawn(self._catch_up())

    # -- start and stop ------------------------------------------------------------------------

    async def load_paused_queues(self) -> list[str]:
        """Read the paused queues into the gate (which opens the first time)."""
        names = await paused_queue_names(self._runner.pool)
        self._gate.set_paused_queues(names)
        return names

    async def close(self) -> None:
        """Let the commands being answered finish (bounded), then drop the rest."""
        self._closed = True
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=2)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._closed:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro, name="control")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- commands ------------------------------------------------------------------------------

    def _first_time(self, command_id: uuid.UUID) -> bool:
        if command_id in self._seen:
            return False
        self._seen.add(command_id)
        self._seen_order.append(command_id)
        if len(self._seen_order) > SEEN_MAX:
            self._seen.discard(self._seen_order.popleft())
        return True

    async def _catch_up(self) -> None:
        for attempt in range(5):
            try:
                await self.load_paused_queues()
                missed = await runner_commands_unanswered(
                    self._runner.pool, self._runner.worker_id, CATCH_UP_SECONDS
                )
                break
            except Exception as e:
                log.warning("control catch-up failed (%s); try %d of 5", e, attempt + 1)
                await asyncio.sleep(0.2 * 2**attempt)
        else:
            return
        for row in missed:
            await self._act(row)

    async def _handle(self, command_id: uuid.UUID) -> None:
        try:
            row = await runner_command_get(self._runner.pool, command_id)
        except Exception as e:
            log.warning("reading command %s failed (%s)", command_id, e)
            return
        if row is not None:
            await self._act(row)

    async def _act(self, row: asyncpg.Record) -> None:
        command_id: uuid.UUID = row["id"]
        target = row["target"]
        if target is not None and target != self._runner.worker_id:
            return
        args: dict[str, Any] = row["args"] if isinstance(row["args"], dict) else {}
        queue = args.get("queue")
        queues = self._runner.queues
        if queue is not None and queues is not None and queue not in queues:
            return  # a command for the workers of another queue
        if not self._first_time(command_id):
            return
        command: str = row["command"]
        try:
            reply, after = await self._run(command, args)
        except Exception as e:
            log.exception("runner command %s failed", command)
            reply, after = {"error": f"{type(e).__name__}: {e}"}, None
        self.handled += 1
        log.info(
            "runner command",
            extra={"command": command, "commandId": str(command_id), "by": row["created_by"]},
        )
        try:
            await runner_reply_insert(self._runner.pool, command_id, self._runner.worker_id, reply)
        except Exception as e:
            log.warning("could not answer command %s (%s)", command_id, e)
        if after is not None:
            after()

    async def _run(self, command: str, args: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """The reply, and what to do once it is written (the shutdown)."""
        runner, gate = self._runner, self._gate
        if command == commands.PING:
            return {"pong": True}, None
        if command == commands.STATUS:
            return self.status(), None
        if command == commands.PAUSE:
            changed = gate.pause()
            if changed:
                log.warning("claims paused by the control channel")
            return {"paused": True, "changed": changed}, None
        if command == commands.RESUME:
            changed = gate.resume()
            if changed:
                log.warning("claims resumed by the control channel")
            return {"paused": False, "changed": changed}, None
        if command == commands.PAUSED_QUEUES:
            return {"pausedQueues": await self.load_paused_queues()}, None
        if command == commands.RELOAD:
            return await self.reload(), None
        if command == commands.SHUTDOWN:
            mode = args.get("mode", "graceful")
            if mode not in commands.SHUTDOWN_MODES:
                return {"error": f"unknown shutdown mode {mode!r}"}, None
            grace = 0.0 if mode == "immediate" else None
            log.warning("shutdown (%s) requested by the control channel", mode)
            return (
                {"mode": mode, "stopping": True, "running": runner.running},
                lambda: runner.request_stop(grace),
            )
        return {"error": f"unknown command {command!r}"}, None

    def status(self) -> dict[str, Any]:
        runner, gate = self._runner, self._gate
        if runner.stopping:
            state = "stopping"
        elif gate.paused:
            state = "paused"
        else:
            state = "active"
        return {
            "state": state,
            "claiming": gate.open and not runner.stopping,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "uptimeSeconds": round(time.monotonic() - self._started, 3),
            "running": runner.running,
            "buffered": len(runner.ready),
            "held": len(runner.held),
            "processed": runner.processed,
            "concurrency": runner.concurrency,
            "queues": runner.queues,
            "pausedQueues": sorted(gate.paused_queues),
            "definitions": runner.refs,
            "settings": {env_name(f): getattr(runner.settings, f) for f in RELOADABLE},
        }

    async def reload(self) -> dict[str, Any]:
        """Re-read the reloadable settings (reload.py) and apply the ones that changed."""
        try:
            new = self.source.read()
        except ConfigError as e:
            return {"error": str(e), "changed": {}, "ignored": {}}
        found = changes(self._runner.settings, new)
        ignored = await self._runner.apply_settings(new) if found else {}
        changed = {
            env_name(f): {"from": old, "to": value}
            for f, (old, value) in found.items()
            if env_name(f) not in ignored
        }
        if changed:
            log.warning("settings reloaded", extra={"changed": changed})
        return {"changed": changed, "ignored": ignored}
