"""Which ffmpeg and ffprobe this process runs.

- `FFMPEG_BINARY` unset: the ffmpeg in the `imageio-ffmpeg` wheel (a static build installed with
  jobserver, so a plain `pip install` encodes; it has no ffprobe). Set: a path, or a name looked
  up on PATH, e.g. `/usr/bin/ffmpeg` from Debian's `ffmpeg` package.
- `FFPROBE_BINARY` unset: the `ffprobe` beside a configured FFMPEG_BINARY when there is one,
  else none; set: a path or a name on PATH. Without an ffprobe, `probe` parses what `ffmpeg -i`
  prints instead of ffprobe's JSON.

The settings are read from the environment on first use (`current()`), or given by
`configure(Binaries(...))` (tests; a process that already holds its Settings). A binary that is
named but cannot be found raises `FFmpegMissing` naming the setting, at first use, not at
start: only the processes that probe or encode need one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobserver.config import Settings


class FFmpegMissing(RuntimeError):
    """The configured ffmpeg or ffprobe is not an executable this process can run."""


@dataclass(frozen=True)
class Binaries:
    """The executables to run: `ffprobe` None means probing parses `ffmpeg -i`."""

    ffmpeg: str
    ffprobe: str | None = None


def _executable(name: str, setting: str) -> str:
    """`name` as an absolute path: itself when it holds a slash, else looked up on PATH."""
    found = name if os.sep in name else shutil.which(name)
    if found is None or not os.path.isfile(found) or not os.access(found, os.X_OK):
        raise FFmpegMissing(f"{setting}={name!r}: no such executable")
    return str(Path(found).absolute())


def wheel_ffmpeg() -> str:
    """The ffmpeg of the imageio-ffmpeg wheel (it runs `ffmpeg -version` once to check it)."""
    try:
        import imageio_ffmpeg  # type: ignore[import-untyped]

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as e:
        raise FFmpegMissing(f"no ffmpeg: imageio-ffmpeg has none ({e}); set FFMPEG_BINARY") from e


def resolve(ffmpeg_setting: str = "", ffprobe_setting: str = "") -> Binaries:
    """The binaries the two settings name (see the module docstring for the defaults)."""
    if not ffmpeg_setting:
        ffmpeg = wheel_ffmpeg()
        sibling = None
    else:
        ffmpeg = _executable(ffmpeg_setting, "FFMPEG_BINARY")
        beside = Path(ffmpeg).with_name("ffprobe")
        sibling = str(beside) if os.access(beside, os.X_OK) else None
    ffprobe = _executable(ffprobe_setting, "FFPROBE_BINARY") if ffprobe_setting else sibling
    return Binaries(ffmpeg=ffmpeg, ffprobe=ffprobe)


def from_settings(settings: Settings) -> Binaries:
    return resolve(settings.ffmpeg_binary, settings.ffprobe_binary)


_configured: Binaries | None = None


def configure(binaries: Binaries | None) -> None:
    """Use `binaries` in this process (None: read the environment again on next use)."""
    global _configured
    _configured = binaries
    _from_env.cache_clear()


@lru_cache(maxsize=1)
def _from_env() -> Binaries:
    from jobserver.config import Settings

    return from_settings(Settings.from_env())


def current() -> Binaries:
    """The binaries of this process: configured, else from the environment (cached)."""
    return _configured if _configured is not None else _from_env()


async def current_async() -> Binaries:
    """`current()` without blocking the event loop: the first resolution runs a subprocess
    (the wheel checks its binary) and looks at the file system, so it runs in a thread."""
    if _configured is not None:
        return _configured
    return await asyncio.to_thread(_from_env)
