"""Encode overhead: what `jobserver.video.encode.encode` costs over running FFmpeg by hand.

A 10 s 1080p testsrc clip (30 fps, a sine tone; made here with the wheel's ffmpeg) is encoded
to 720p mp4 (a) through `encode()` (asyncio subprocess, progress parsed and reported to a
callback, stderr drained) and (b) with the very same argv (`presets.encode_argv`) run by hand
through `subprocess.run`, its output thrown away. Runs alternate a, b, a, b, ... so that a
change of load on the machine hits both; each side keeps its best of `runs` (3). Reported:
seconds and frames per second of each, and the ratio a / b (target: at most 1.05). On a
shared machine the wall clock is noisy, so CPU seconds are reported too (FFmpeg's in each case
and the Python side of `encode()`), with their ratio: the overhead without the noise.

Usage: `python bench/video.py [--quick] [--out FILE]` (quick: a 2 s clip, two runs each);
`bench/extra.py` runs it as its `video` workload (`bench/run`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jobserver.video.binaries import wheel_ffmpeg
from jobserver.video.encode import Progress, encode
from jobserver.video.presets import encode_argv

RATE = 30


def make_source(path: Path, seconds: int) -> Path:
    argv = [wheel_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    argv += ["-f", "lavfi", "-i", f"testsrc=size=1920x1080:rate={RATE}:duration={seconds}"]
    argv += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    argv += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p"]
    argv += ["-c:a", "aac", str(path)]
    subprocess.run(argv, check=True, capture_output=True, timeout=600)
    return path


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's reaped children so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


async def through_encode(src: Path, dst: Path, seconds: int) -> dict[str, float]:
    reports: list[Progress] = []
    exe = wheel_ffmpeg()
    cpu0, own0, t0 = children_cpu(), time.process_time(), time.perf_counter()
    done = await encode(
        src,
        dst,
        fmt="mp4",
        quality="720p",
        duration=float(seconds),
        on_progress=reports.append,
        ffmpeg=exe,
    )
    wall = time.perf_counter() - t0
    if not reports or reports[-1].percent != 100.0:
        raise RuntimeError(f"progress did not reach 100: {[r.percent for r in reports]}")
    return {
        "wall": wall,
        "ffmpeg_cpu": children_cpu() - cpu0,
        "python_cpu": time.process_time() - own0,  # the event loop's share: the overhead
        "frames": float(done.frames or 0),
    }


def by_hand(src: Path, dst: Path) -> dict[str, float]:
    argv = encode_argv(wheel_ffmpeg(), src, dst, fmt="mp4", quality="720p")
    cpu0, t0 = children_cpu(), time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return {"wall": time.perf_counter() - t0, "ffmpeg_cpu": children_cpu() - cpu0}


async def encode_overhead(seconds: int = 10, runs: int = 3) -> dict[str, Any]:
    """The workload of the module docstring; a JSON-able summary."""
    with tempfile.TemporaryDirectory(prefix="jobserver-bench-video-") as tmp:
        d = Path(tmp)
        src = make_source(d / "source.mp4", seconds)
        frames = seconds * RATE
        ours: list[dict[str, float]] = []
        theirs: list[dict[str, float]] = []
        for _ in range(runs):
            run = await through_encode(src, d / "a.mp4", seconds)
            if run["frames"] != frames:
                raise RuntimeError(f"encode() wrote {run['frames']} frames, expected {frames}")
            ours.append(run)
            theirs.append(await asyncio.to_thread(by_hand, src, d / "b.mp4"))
        best_a = min(ours, key=lambda r: r["wall"])
        best_b = min(theirs, key=lambda r: r["wall"])
        a, b = best_a["wall"], best_b["wall"]
        return {
            "clip": f"{seconds} s 1920x1080 at {RATE} fps -> 720p mp4 (libx264 veryfast, aac)",
            "frames": frames,
            "runs": runs,
            "encode_seconds": round(a, 3),
            "encode_fps": round(frames / a, 1),
            "by_hand_seconds": round(b, 3),
            "by_hand_fps": round(frames / b, 1),
            "ratio": round(a / b, 3),
            # CPU seconds, insensitive to other load: FFmpeg's own in each case, and what the
            # Python side of encode() spent beside it (reading progress, draining stderr)
            "encode_ffmpeg_cpu_s": round(best_a["ffmpeg_cpu"], 3),
            "encode_python_cpu_s": round(best_a["python_cpu"], 3),
            "by_hand_ffmpeg_cpu_s": round(best_b["ffmpeg_cpu"], 3),
            "cpu_ratio": round(
                (best_a["ffmpeg_cpu"] + best_a["python_cpu"]) / best_b["ffmpeg_cpu"], 3
            ),
            "all_encode_seconds": [round(r["wall"], 3) for r in ours],
            "all_by_hand_seconds": [round(r["wall"], 3) for r in theirs],
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 2 s clip, two runs each")
    ap.add_argument("--out", help="write the JSON summary here")
    a = ap.parse_args()
    res = asyncio.run(encode_overhead(2, 2) if a.quick else encode_overhead())
    print(
        f"encode(): {res['encode_seconds']} s ({res['encode_fps']} fps); by hand: "
        f"{res['by_hand_seconds']} s ({res['by_hand_fps']} fps); ratio {res['ratio']} "
        f"(target <= 1.05); CPU ratio {res['cpu_ratio']} (encode()'s Python side "
        f"{res['encode_python_cpu_s']} s)"
    )
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
