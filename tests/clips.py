"""Short test videos made with FFmpeg's own test sources, and ffprobe of what comes back.

`make_clip(path, size=..., seconds=...)` writes an H.264/AAC mp4 of `testsrc` (moving
pattern, frame counter) with a `sine` tone, with the imageio-ffmpeg wheel's ffmpeg (every
install has it); `describe(path)` is ffprobe's view of a file (width, height, codec, duration),
with Debian's ffprobe (scripts/test installs the `ffmpeg` package): a second FFmpeg build reads
what the server wrote.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from jobserver.video.binaries import wheel_ffmpeg


def make_clip(path: Path, *, size: str = "320x240", seconds: float = 2.0, rate: int = 25) -> Path:
    subprocess.run(
        [
            wheel_ffmpeg(),
            "-v",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size={size}:rate={rate}",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path


def describe(path: Path) -> dict[str, Any]:
    """{width, height, codec, duration} of the first video stream (ffprobe)."""
    probe = shutil.which("ffprobe")
    assert probe is not None, "ffprobe is needed to check encoded files (apt-get install ffmpeg)"
    done = subprocess.run(
        [
            probe,
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    info = json.loads(done.stdout)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    return {
        "width": video["width"],
        "height": video["height"],
        "codec": video["codec_name"],
        "duration": float(info["format"]["duration"]),
    }
