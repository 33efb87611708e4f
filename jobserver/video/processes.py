"""Running ffmpeg and ffprobe as child processes that never outlive their use.

- `spawn(argv, ...)`: `asyncio.create_subprocess_exec` (the event loop never blocks on the
  child), stdin from /dev/null, a session of its own (a Ctrl-C or SIGTERM aimed at the worker's
  terminal or process group does not reach FFmpeg: the worker decides when it stops), and on
  Linux `PR_SET_PDEATHSIG` = SIGKILL, so the kernel kills FFmpeg if the process that started
  it dies, even by SIGKILL. The death signal follows the *thread* that forked: spawn from the
  event loop's thread (as every caller here does), not from a short-lived worker thread.
  Where prctl is missing (not Linux), the child is started without it (logged once).
- `stop(proc)`: SIGTERM, then SIGKILL after `grace` seconds, and wait until the child is
  reaped (no zombie left). A cancellation arriving while it waits kills at once. `kill(proc)`:
  SIGKILL and wait until reaped.
- `read_head(stream, cap)` / `Tail`: read a pipe to its end keeping at most `cap` bytes (the
  first ones, or the last lines): a child that writes without end never fills our memory, and
  is never blocked on a full pipe either (everything is drained).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import logging
import os
import signal
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

log = logging.getLogger("jobserver.video")

PR_SET_PDEATHSIG = 1
KILL_AFTER = 2.0  # seconds between SIGTERM and SIGKILL
CHUNK = 64 * 1024


@cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up once in the parent (a child between fork and exec must not log)."""
    try:
        fn: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError) as e:
        log.warning("FFmpeg will outlive this process if it is killed: no prctl (%s)", e)
        return None
    return fn


def die_with_parent() -> Callable[[], None] | None:
    """A hook run in the child before exec: SIGKILL when this process dies. If this process
    died already between fork and the prctl (the child was re-parented), the child exits."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return arm


async def spawn(
    argv: Sequence[str], *, stdout: int | None = None, stderr: int | None = None
) -> asyncio.subprocess.Process:
    """Start `argv` (see the module docstring); stdout/stderr as for create_subprocess_exec."""
    kwargs: dict[str, Any] = {}
    hook = die_with_parent()
    if hook is not None:
        kwargs["preexec_fn"] = hook
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        **kwargs,
    )


def _signal(proc: asyncio.subprocess.Process, signum: int) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)


async def stop(proc: asyncio.subprocess.Process, grace: float = KILL_AFTER) -> None:
    """End the child: SIGTERM, SIGKILL after `grace` seconds, then wait until it is reaped.

    Safe to call on a child that exited already. Cancelling the caller while it waits sends
    SIGKILL before the cancellation goes on (the child is then reaped by the event loop's child
    watcher a moment later)."""
    if proc.returncode is not None:
        return
    _signal(proc, signal.SIGTERM)
    try:
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            _signal(proc, signal.SIGKILL)
            await proc.wait()
    except asyncio.CancelledError:
        _signal(proc, signal.SIGKILL)
        raise


async def kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the child and wait until it is reaped (at once: SIGKILL cannot be ignored)."""
    _signal(proc, signal.SIGKILL)
    await proc.wait()


async def read_head(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, bool]:
    """Read `stream` to its end; (its first `cap` bytes, whether there was more)."""
    kept = bytearray()
    more = False
    while chunk := await stream.read(CHUNK):
        room = cap - len(kept)
        if len(chunk) > room:
            more = True
        if room > 0:
            kept += chunk[:room]
    return bytes(kept), more


class Tail:
    """The last `lines` lines (each cut at `width` characters) of a stream read to its end."""

    def __init__(self, lines: int = 20, width: int = 500) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)
        self.width = width

    async def drain(self, stream: asyncio.StreamReader) -> None:
        pending = b""
        while chunk := await stream.read(CHUNK):
            *whole, pending = (pending + chunk).split(b"\n")
            pending = pending[-4 * self.width :]  # one endless line stays bounded too
            for line in whole:
                self._keep(line)
        self._keep(pending)

    def _keep(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip()  # the indentation is kept
        if text:
            self.lines.append(text[: self.width])

    def text(self) -> str:
        return "\n".join(self.lines)
