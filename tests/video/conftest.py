"""Video test clips, made here with FFmpeg's own test sources, and the tools that check outputs.

Clips (2 s, 10 frames a second, a 440 Hz tone where they have sound) are made once per session
with the imageio-ffmpeg binary, which every install has. Outputs are checked with Debian's
ffprobe and ffmpeg (`scripts/test` installs the `ffmpeg` package; without it those tests skip,
saying why): a second, independent FFmpeg build reads what the first one wrote.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from jobserver.video.binaries import Binaries, resolve, wheel_ffmpeg

SYSTEM_FFMPEG = Path("/usr/bin/ffmpeg")
SYSTEM_FFPROBE = Path("/usr/bin/ffprobe")


def make_clip(
    path: Path,
    size: str,
    *,
    seconds: float = 2,
    rate: int = 10,
    audio: bool = True,
    extra: tuple[str, ...] = (),
) -> Path:
    """A testsrc clip (+ a sine tone) in H.264/AAC, written by the wheel's ffmpeg."""
    argv = [wheel_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    argv += ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        argv += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    argv += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    argv += ["-c:a", "aac"] if audio else []
    argv += [*extra, str(path)]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    return path


@dataclass(frozen=True)
class Clips:
    landscape: Path  # 1920x1080 with sound
    portrait: Path  # 1080x1920 with sound
    small: Path  # 320x240 with sound
    tiny: Path  # 160x90, silent
    rotated: Path  # 320x240 stored, a display matrix turning it 90 degrees (shown 240x320)
    long: Path  # 320x240, 30 s at 25 fps: an encode that is still running when a test stops it
    text: Path  # not media at all
    truncated: Path  # the first 4 KiB of an mp4 whose index is at its end
    audio_only: Path  # an m4a
    playlist: Path  # an HLS playlist naming a local file


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    d = tmp_path_factory.mktemp("clips")
    small = make_clip(d / "small.mp4", "320x240")
    rotated = d / "rotated.mp4"
    turn = ["-display_rotation", "90", "-i", str(small), "-c", "copy", str(rotated)]
    subprocess.run(
        [wheel_ffmpeg(), "-loglevel", "error", "-y", *turn],
        check=True,
        capture_output=True,
        timeout=60,
    )
    whole = make_clip(d / "whole.mp4", "320x240", audio=False)  # no faststart: index at the end
    truncated = d / "truncated.mp4"
    truncated.write_bytes(whole.read_bytes()[:4096])
    audio_only = d / "tone.m4a"
    tone = ["-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac", str(audio_only)]
    subprocess.run(
        [wheel_ffmpeg(), "-loglevel", "error", "-y", *tone],
        check=True,
        capture_output=True,
        timeout=60,
    )
    text = d / "notes.txt"
    text.write_text("These are notes, not a video.\n" * 50)
    playlist = d / "list.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nfile:{small}\n")
    return Clips(
        landscape=make_clip(d / "landscape.mp4", "1920x1080"),
        portrait=make_clip(d / "portrait.mp4", "1080x1920"),
        small=small,
        tiny=make_clip(d / "tiny.mp4", "160x90", audio=False),
        rotated=rotated,
        long=make_clip(d / "long.mp4", "320x240", seconds=30, rate=25),
        text=text,
        truncated=truncated,
        audio_only=audio_only,
        playlist=playlist,
    )


@pytest.fixture(scope="session")
def system() -> Binaries:
    """Debian's ffmpeg and ffprobe (skips without them)."""
    if not (SYSTEM_FFMPEG.exists() and SYSTEM_FFPROBE.exists()):
        pytest.skip("no system FFmpeg (/usr/bin/ffmpeg, ffprobe): scripts/test installs it")
    return resolve(str(SYSTEM_FFMPEG))


@pytest.fixture(scope="session")
def wheel() -> Binaries:
    """The imageio-ffmpeg binary alone: probing parses `ffmpeg -i`."""
    return resolve()


def streams(system: Binaries, path: Path) -> dict[str, dict[str, Any]]:
    """The first video and audio stream of `path` as Debian's ffprobe reads them."""
    assert system.ffprobe is not None
    out = subprocess.run(
        [system.ffprobe, "-v", "error", "-print_format", "json", "-show_streams", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    found: dict[str, dict[str, Any]] = {}
    for s in json.loads(out)["streams"]:
        found.setdefault(s["codec_type"], s)
    return found


NULL_OUTPUT = ("-progress", "pipe:1", "-f", "null", "-")


def decodes(system: Binaries, path: Path) -> float:
    """Decode all of `path` with Debian's ffmpeg; the seconds of video it held."""
    proc = subprocess.run(
        [system.ffmpeg, "-v", "error", "-nostdin", "-i", str(path), *NULL_OUTPUT],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    pairs = (line.partition("=") for line in proc.stdout.split())
    times = [int(v) for k, _, v in pairs if k == "out_time_us" and v.isdigit()]
    return max(times) / 1e6


def ffmpeg_children() -> list[psutil.Process]:
    """This process's children that are FFmpeg (the wheel's binary is ffmpeg-linux-…)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name().startswith(("ffmpeg", "ffprobe")):
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def gone(pid: int) -> bool:
    """The process no longer exists (a zombie nobody reaped counts as there)."""
    return not psutil.pid_exists(pid)


# The worker fixtures (a registered database, in-process workers) for the encode.video job tests
from tests.worker.conftest import db, fast_settings, start_worker  # noqa: E402, F401
