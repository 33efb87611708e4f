"""`encode` with real FFmpeg: every format and quality, read back by a second FFmpeg (Debian's);
progress; and that a cancel, a cancelled coroutine, a timeout, an error or the death of this
process leaves no FFmpeg behind."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from jobserver.video.binaries import Binaries
from jobserver.video.encode import EncodeCancelled, EncodeFailed, Progress, encode
from jobserver.video.processes import spawn, stop
from tests.video.conftest import Clips, decodes, ffmpeg_children, gone, streams
from tests.waiting import wait_for

CODECS = {"mp4": ("h264", "aac"), "webm": ("vp9", "opus"), "mkv": ("h264", "aac")}
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("fmt", ["mp4", "webm", "mkv"])
@pytest.mark.parametrize(
    ("quality", "clip", "size"),
    [
        ("720p", "landscape", (1280, 720)),  # 1920x1080 fitted in 1280x720
        ("1080p", "portrait", (1080, 1920)),  # the box turned: 1080x1920 fits as it is
        ("4k", "small", (320, 240)),  # never upscaled unless asked
    ],
)
async def test_each_format_and_quality(
    system: Binaries,
    clips: Clips,
    tmp_path: Path,
    fmt: str,
    quality: str,
    clip: str,
    size: tuple[int, int],
) -> None:
    seen: list[Progress] = []
    out = tmp_path / f"out.{fmt}"
    done = await encode(
        getattr(clips, clip),
        out,
        fmt=fmt,
        quality=quality,
        duration=2.0,
        on_progress=seen.append,
    )
    assert done.path == out and done.size == out.stat().st_size > 0
    assert done.frames == 20
    found = streams(system, out)
    video, audio = CODECS[fmt]
    assert (found["video"]["width"], found["video"]["height"]) == size
    assert found["video"]["codec_name"] == video and found["video"]["pix_fmt"] == "yuv420p"
    assert found["audio"]["codec_name"] == audio
    assert decodes(system, out) == pytest.approx(2.0, abs=0.15)
    percents = [p.percent for p in seen]
    assert percents and percents[-1] == 100.0 and seen[-1].done
    assert percents == sorted(set(percents)), percents  # only ever up


@pytest.mark.parametrize(
    ("clip", "quality", "upscale", "size"),
    [
        ("portrait", "720p", False, (720, 1280)),
        ("rotated", "720p", False, (240, 320)),  # FFmpeg turns it; the size follows
        ("tiny", "720p", True, (1280, 720)),  # asked to upscale: 160x90 fills the box
    ],
)
async def test_sizes(
    system: Binaries,
    clips: Clips,
    tmp_path: Path,
    clip: str,
    quality: str,
    upscale: bool,
    size: tuple[int, int],
) -> None:
    out = tmp_path / "out.mp4"
    await encode(getattr(clips, clip), out, quality=quality, upscale=upscale, duration=2.0)
    found = streams(system, out)
    assert (found["video"]["width"], found["video"]["height"]) == size
    assert not found["video"].get("side_data_list")  # no rotation left to apply
    assert ("audio" in found) is (clip != "tiny")


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
async def test_with_the_system_ffmpeg(
    system: Binaries, clips: Clips, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"out.{fmt}"
    await encode(clips.small, out, fmt=fmt, quality="720p", duration=2.0, ffmpeg=system.ffmpeg)
    found = streams(system, out)
    assert (found["video"]["width"], found["video"]["height"]) == (320, 240)
    assert found["video"]["codec_name"] == CODECS[fmt][0]
    assert decodes(system, out) == pytest.approx(2.0, abs=0.15)


class Watch:
    """on_progress for a long encode: notes FFmpeg's pid and says when it is under way."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.pids: list[int] = []
        self.percents: list[float] = []

    def __call__(self, report: Progress) -> None:
        self.percents.append(report.percent)
        if not self.pids:
            self.pids = [p.pid for p in ffmpeg_children()]
        self.started.set()


def _slow(clips: Clips, tmp_path: Path, watch: Watch, **kw: object) -> object:
    """30 s of 320x240 upscaled to 1080p: seconds of work, stopped long before the end."""
    return encode(
        clips.long,
        tmp_path / "out.mp4",
        quality="1080p",
        upscale=True,
        duration=30.0,
        **{"on_progress": watch, **kw},  # type: ignore[arg-type]
    )


async def _gone(pids: list[int]) -> None:
    assert len(pids) == 1, pids
    assert gone(pids[0])  # reaped before encode returned: no zombie either
    assert ffmpeg_children() == []


def _not_finished(watch: Watch) -> None:
    """FFmpeg winds down on SIGTERM and prints `progress=end`: not reported as 100."""
    assert watch.percents and max(watch.percents) < 100.0, watch.percents


async def test_cancel_mid_encode(clips: Clips, tmp_path: Path) -> None:
    watch, cancelled = Watch(), asyncio.Event()
    task = asyncio.ensure_future(_slow(clips, tmp_path, watch, cancelled=cancelled))
    await asyncio.wait_for(watch.started.wait(), 60)
    assert not task.done()
    cancelled.set()
    with pytest.raises(EncodeCancelled):
        await asyncio.wait_for(task, 30)
    await _gone(watch.pids)
    _not_finished(watch)


async def test_the_coroutine_cancelled(clips: Clips, tmp_path: Path) -> None:
    watch = Watch()
    task = asyncio.ensure_future(_slow(clips, tmp_path, watch))
    await asyncio.wait_for(watch.started.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _gone(watch.pids)
    _not_finished(watch)


async def test_a_timeout(clips: Clips, tmp_path: Path) -> None:
    watch = Watch()
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(None) as deadline:

            def expire(report: Progress) -> None:  # the deadline passes once FFmpeg is busy
                watch(report)
                deadline.reschedule(loop.time())

            await _slow(clips, tmp_path, Watch(), on_progress=expire)
    await _gone(watch.pids)


async def test_an_ffmpeg_error_carries_its_last_lines(clips: Clips, tmp_path: Path) -> None:
    with pytest.raises(EncodeFailed) as caught:
        await encode(clips.truncated, tmp_path / "out.mp4", quality="720p")
    assert caught.value.returncode != 0
    assert "moov atom not found" in str(caught.value)
    assert ffmpeg_children() == []


async def test_an_error_of_on_progress_stops_ffmpeg(clips: Clips, tmp_path: Path) -> None:
    pids: list[int] = []

    def refuse(report: Progress) -> None:
        pids.extend(p.pid for p in ffmpeg_children())
        raise ValueError("progress not storable")

    with pytest.raises(ValueError, match="progress not storable"):
        await encode(
            clips.long, tmp_path / "o.mp4", quality="1080p", upscale=True, on_progress=refuse
        )
    await _gone(pids)


async def test_stop_kills_a_child_that_ignores_sigterm() -> None:
    proc = await spawn(
        ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"],
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"ready\n"
    await stop(proc, grace=0.2)
    assert proc.returncode == -signal.SIGKILL
    assert gone(proc.pid)


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    import psutil
    from jobserver.video.encode import encode

    def started(report):
        pids = [p.pid for p in psutil.Process().children() if p.name().startswith("ffmpeg")]
        print(*pids, flush=True)

    asyncio.run(encode(sys.argv[1], sys.argv[2], quality="1080p", upscale=True,
                       duration=30.0, on_progress=started))
    """
)


async def test_ffmpeg_dies_with_the_process_that_started_it(clips: Clips, tmp_path: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(clips.long),
        str(tmp_path / "o.mp4"),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 60)
        pid = int(line.split()[0])
        assert psutil.Process(pid).ppid() == child.pid
        child.kill()  # SIGKILL: no finally, no handler runs in the child
        await asyncio.wait_for(child.wait(), 10)

        async def ended() -> bool:  # killed by the kernel (a zombie until init reaps it)
            try:
                return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        await wait_for(ended, within=10)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
