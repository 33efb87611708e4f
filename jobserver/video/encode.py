"""One FFmpeg encode as a coroutine: `await encode(src, dst, fmt=..., quality=..., ...)`.

FFmpeg runs as a child process (`processes.spawn`: asyncio's subprocess API, so the event loop
never blocks and a worker's heartbeats keep flowing; the kernel kills it if this process dies)
with the command line of `presets.encode_argv`. Its `-progress pipe:1` blocks are parsed as they
come (`ProgressReader`): `out_time_us` over the input's `duration` is the percent (never going
back, at most 100) and `progress=end` is 100; `on_progress(Progress)` is called (and awaited
when it is a coroutine) each time the percent moves. stderr is drained all along (FFmpeg would
block on a full pipe), keeping its last lines for the error.

Ending:
- exit 0 -> `EncodeResult` (output path and size, wall seconds, frames, speed);
- non-zero exit -> `EncodeFailed` with the exit code and the last lines of stderr;
- `cancelled` set (a cancel request, a lost lease, a hand-back: the worker's polite stop) ->
  FFmpeg is stopped, SIGTERM then SIGKILL after `grace` seconds (2 by default, within the
  worker's CANCEL_GRACE_MS of 5 s), and `EncodeCancelled` raised;
- an error of `on_progress` -> FFmpeg is stopped the same way and the error goes on;
- the coroutine cancelled (a job's timeout, the end of the worker's cancel grace; also a second
  cancellation while a polite stop waits) -> FFmpeg is killed at once (SIGKILL) and the
  cancellation goes on: the worker gives a cancelled job only CANCEL_GRACE_MS to end before it
  gives up on its lease, and an output that is thrown away needs no orderly ending.
Either way `encode` waits until the child is reaped: when it returns or raises, no FFmpeg of it
is left (see `processes.stop` and `processes.kill`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobserver.video import binaries as _binaries
from jobserver.video.presets import encode_argv
from jobserver.video.processes import KILL_AFTER, Tail, kill, spawn, stop


class EncodeFailed(RuntimeError):
    """FFmpeg exited with an error; the message ends with the last lines it printed."""

    def __init__(self, returncode: int, stderr: str) -> None:
        self.returncode = returncode
        self.stderr = stderr
        detail = f": {stderr}" if stderr else " (it printed nothing)"
        super().__init__(f"ffmpeg exited with {returncode}{detail}")


class EncodeCancelled(Exception):
    """The `cancelled` event was set; FFmpeg was stopped."""


@dataclass(frozen=True)
class Progress:
    percent: float  # of the input's duration, 0..100
    seconds: float  # of output encoded so far
    frame: int | None = None
    speed: float | None = None  # 1.0 = as fast as real time
    done: bool = False


@dataclass(frozen=True)
class EncodeResult:
    path: Path
    size: int  # bytes
    seconds: float  # wall time the encode took
    frames: int | None = None
    speed: float | None = None


ProgressCallback = Callable[[Progress], Awaitable[None] | None]


class ProgressReader:
    """Turns FFmpeg's `-progress` key=value lines into `Progress` values (pure, no I/O)."""

    def __init__(self, duration: float | None) -> None:
        self.duration = duration if duration and duration > 0 else None
        self.micros = 0
        self.frame: int | None = None
        self.speed: float | None = None
        self.last: Progress | None = None

    def feed(self, line: str) -> Progress | None:
        """One line; a `Progress` at the end of each block (`progress=continue|end`)."""
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        value = value.strip()
        if key == "out_time_us":
            with contextlib.suppress(ValueError):
                self.micros = max(self.micros, int(value))  # N/A, negatives at the start
        elif key == "frame":
            with contextlib.suppress(ValueError):
                self.frame = int(value)
        elif key == "speed":
            with contextlib.suppress(ValueError):
                self.speed = float(value.rstrip("x"))
        elif key == "progress":
            done = value == "end"
            self.last = Progress(
                percent=100.0 if done else self.percent(),
                seconds=round(self.micros / 1e6, 3),
                frame=self.frame,
                speed=self.speed,
                done=done,
            )
            return self.last
        return None

    def percent(self) -> float:
        if self.duration is None:
            return 0.0
        return round(min(100.0, 100.0 * self.micros / 1e6 / self.duration), 2)


class _Follower:
    """Reads the progress pipe to its end, calling `on_progress` when the percent moves, until
    muted (the encode is being stopped: what FFmpeg prints while it winds down, `progress=end`
    included, is no progress of the encode). The pipe is drained either way."""

    def __init__(self, reader: ProgressReader, on_progress: ProgressCallback | None) -> None:
        self.reader = reader
        self.on_progress = on_progress
        self.muted = False

    async def follow(self, stream: asyncio.StreamReader) -> None:
        shown: float | None = None
        while raw := await stream.readline():
            report = self.reader.feed(raw.decode("utf-8", "replace"))
            if report is None or self.on_progress is None or self.muted:
                continue
            if report.percent == shown:
                continue
            shown = report.percent
            outcome = self.on_progress(report)
            if inspect.isawaitable(outcome):
                await outcome


async def _settle(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel the helper tasks and wait for them (quick: the child's pipes are closed by now);
    their errors are taken so none is reported as never retrieved. A cancellation of the caller
    meanwhile goes on (asyncio.wait does not swallow it)."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()


async def encode(
    src: str | Path,
    dst: str | Path,
    *,
    fmt: str = "mp4",
    quality: str = "1080p",
    upscale: bool = False,
    duration: float | None = None,
    on_progress: ProgressCallback | None = None,
    cancelled: asyncio.Event | None = None,
    ffmpeg: str | None = None,
    grace: float = KILL_AFTER,
) -> EncodeResult:
    """Encode `src` into `dst` (see the module docstring). `duration`: the input's, in seconds
    (from `probe`), for the percent; `ffmpeg`: the binary (default: `binaries.current()`)."""
    exe = ffmpeg or (await _binaries.current_async()).ffmpeg
    argv = encode_argv(exe, src, dst, fmt=fmt, quality=quality, upscale=upscale)
    reader = ProgressReader(duration)
    follower = _Follower(reader, on_progress)
    tail = Tail()
    started = time.monotonic()
    proc = await spawn(argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    following = asyncio.create_task(follower.follow(proc.stdout))
    draining = asyncio.create_task(tail.drain(proc.stderr))
    watched: list[asyncio.Task[Any]] = [following]  # the first of these to end decides
    if cancelled is not None:
        watched.append(asyncio.create_task(cancelled.wait()))
    tasks = [*watched, draining]
    try:
        try:
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if following not in done:
                follower.muted = True
                await stop(proc, grace)
                raise EncodeCancelled("the encode was cancelled; ffmpeg stopped")
            following.result()  # an error of on_progress ends the encode
            returncode = await proc.wait()
            await draining  # stderr read to its end
        except asyncio.CancelledError:
            follower.muted = True
            await kill(proc)  # the caller's deadline is now: no grace (module docstring)
            raise
        finally:
            follower.muted = True
            await stop(proc, grace)
    finally:
        await _settle(tasks)
    if returncode != 0:
        raise EncodeFailed(returncode, tail.text())
    last = reader.last
    return EncodeResult(
        path=Path(dst),
        size=os.stat(dst).st_size,
        seconds=round(time.monotonic() - started, 3),
        frames=last.frame if last else None,
        speed=last.speed if last else None,
    )
