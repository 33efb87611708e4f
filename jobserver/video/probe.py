"""What a file holds, as FFmpeg reads it: `await probe(path) -> VideoInfo`, or `NotAVideo`.

`probe` runs ffprobe (`-print_format json -show_format -show_streams`) when this process has
one (`jobserver.video.binaries`), else `ffmpeg -i` and parses what it prints. Both paths give
the same `VideoInfo`: the first video stream that is not a cover picture, its displayed size
(a 90° rotation in the display matrix swaps width and height, as FFmpeg's autorotation will
when encoding), codec and frame rate, whether an audio stream exists, the container
(FFmpeg's demuxer name) and the duration.

Anything else is `NotAVideo(reason)`, the reason readable by whoever uploaded the file:
- "not a media file FFmpeg can read: Invalid data found when processing input" (FFmpeg's
  own messages, without the file's path);
- "no video stream" (audio only, subtitles);
- "not a media file FFmpeg can read: its format is none of the video containers read (...)":
  only real video containers are read (`presets.INPUT_FORMATS`, given to FFmpeg as
  `-format_whitelist`; a text file is FFmpeg's `tty` format, refused so): playlist and list
  demuxers (HLS, concat, image sequences) would make FFmpeg open further files or URLs named
  inside the upload. FFmpeg is only ever given `file:` paths with `-protocol_whitelist file`
  (no network, whatever the file says);
- "zero duration" (a still picture muxed as video, an empty stream);
- "FFmpeg did not finish reading it within 30 s" (a hostile or broken file; the child is
  killed).

Bounded: one child at a time per call, killed past `seconds` (default 30; SIGTERM, then
SIGKILL), its output read to the end but kept only up to `OUTPUT_CAP` bytes; a file with more
stream descriptions than that is refused. A missing file is "not a media file FFmpeg can read:
No such file or directory". Costs a few tens of milliseconds for a normal file (FFmpeg
reads the headers only).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jobserver.video import binaries as _binaries
from jobserver.video.presets import INPUT_FORMATS, input_options
from jobserver.video.processes import Tail, read_head, spawn, stop

TIMEOUT = 30.0  # seconds
OUTPUT_CAP = 4 * 1024 * 1024  # bytes of ffprobe's JSON kept (plenty for hundreds of streams)
REASON_CHARS = 300


class NotAVideo(ValueError):
    """The file is not a video jobserver encodes; `reason` says why, for the uploader."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class VideoInfo:
    width: int  # as displayed (after rotation)
    height: int
    duration_seconds: float
    video_codec: str
    has_audio: bool
    container: str  # FFmpeg's demuxer names, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    fps: float | None = None
    rotation: int = 0  # degrees of the display matrix, 0/90/180/270

    @property
    def portrait(self) -> bool:
        return self.height > self.width

    def as_json(self) -> dict[str, Any]:
        """camelCase keys, as the API and job results show it."""
        words = asdict(self)
        return {_camel(k): v for k, v in words.items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


async def probe(
    path: str | Path,
    *,
    binaries: _binaries.Binaries | None = None,
    seconds: float = TIMEOUT,
) -> VideoInfo:
    """Describe the video at `path` or raise `NotAVideo` (see the module docstring)."""
    found = binaries or await _binaries.current_async()
    path, argv = probe_argv(found, path)
    rc, out, more, err = await _run(argv, seconds)
    if found.ffprobe is not None:
        if more:
            raise NotAVideo("too many streams: FFmpeg's description of it is over 4 MiB")
        if rc != 0:
            raise NotAVideo(f"not a media file FFmpeg can read: {_reason(err, path)}")
        return checked(from_ffprobe(out))
    return checked(from_ffmpeg(err, path))


def probe_argv(found: _binaries.Binaries, path: str | Path) -> tuple[Path, list[str]]:
    """(the absolute path, the command line that describes it): ffprobe's JSON when there is
    an ffprobe, else `ffmpeg -i` (which exits 1 after printing the description)."""
    path = Path(path).absolute()
    if found.ffprobe is not None:
        return path, [
            found.ffprobe,
            "-v",
            "error",
            *input_options(),
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            f"file:{path}",
        ]
    return path, [found.ffmpeg, "-hide_banner", "-nostdin", *input_options(), "-i", f"file:{path}"]


async def _run(argv: list[str], seconds: float) -> tuple[int, bytes, bool, str]:
    """(exit code, stdout's head, whether stdout was longer, stderr's last lines)."""
    proc = await spawn(argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    tail = Tail(lines=200)
    try:
        async with asyncio.timeout(seconds):
            (out, more), _, rc = await asyncio.gather(
                read_head(proc.stdout, OUTPUT_CAP), tail.drain(proc.stderr), proc.wait()
            )
    except TimeoutError:
        raise NotAVideo(f"FFmpeg did not finish reading it within {seconds:g} s") from None
    finally:
        await stop(proc)
    return rc, out, more, tail.text()


_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")


def _reason(stderr: str, path: Path) -> str:
    """FFmpeg's error lines, deduplicated, without log prefixes or the file's path."""
    if "not on whitelist" in stderr:  # FFmpeg knows the format, it is not a video container
        return (
            "its format is none of the video containers read ("
            + ", ".join(sorted(INPUT_FORMATS))
            + ")"
        )
    seen: list[str] = []
    for raw in stderr.splitlines():
        line = _PREFIX.sub("", raw.strip())
        line = line.replace(f"file:{path}", "").replace(str(path), "").strip(" :.")
        if not line or line.startswith(("Error opening input file", "At least one output")):
            continue
        for noise in ("Error opening input files: ", "Error opening input: "):
            line = line.removeprefix(noise)
        if line and line not in seen:
            seen.append(line)
    text = "; ".join(seen) or "FFmpeg gave no reason"
    return text[:REASON_CHARS]


def checked(info: VideoInfo) -> VideoInfo:
    """The rules every probe result passes, whichever tool described it."""
    names = set(info.container.split(","))
    if not names & INPUT_FORMATS:
        raise NotAVideo(
            f"container {info.container!r} is not accepted (mp4, mov, mkv, webm, avi, mpegts,"
            " flv, ogg, mpeg and a few more are)"
        )
    if not info.duration_seconds > 0:
        raise NotAVideo("zero duration")
    return info


def _number(value: Any) -> float | None:
    try:
        n = float(value)
    except (TypeError, ValueError):
        return None
    return n if n == n and n not in (float("inf"), float("-inf")) else None


def _rate(text: Any) -> float | None:
    """ffprobe's "30000/1001" as a number; None for "0/0" and garbage."""
    if not isinstance(text, str) or "/" not in text:
        return _number(text)
    num, _, den = text.partition("/")
    n, d = _number(num), _number(den)
    return round(n / d, 3) if n and d else None


def _rotation(degrees: float | None) -> int:
    return round(degrees or 0) % 360 // 90 * 90


def _displayed(width: int, height: int, rotation: int) -> tuple[int, int]:
    return (height, width) if rotation in (90, 270) else (width, height)


def from_ffprobe(raw: bytes) -> VideoInfo:
    """A VideoInfo from ffprobe's `-show_format -show_streams` JSON."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise NotAVideo("not a media file FFmpeg can read: unreadable description") from None
    streams = [s for s in doc.get("streams") or [] if isinstance(s, Mapping)]
    fmt: Mapping[str, Any] = doc["format"] if isinstance(doc.get("format"), Mapping) else {}
    video = next((s for s in streams if _is_video(s)), None)
    if video is None:
        raise NotAVideo("no video stream")
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise NotAVideo("no video stream: the video stream has no picture size")
    degrees: float | None = None
    for side in video.get("side_data_list") or []:
        if isinstance(side, Mapping) and "rotation" in side:
            degrees = _number(side["rotation"])
    tags: Mapping[str, Any] = video["tags"] if isinstance(video.get("tags"), Mapping) else {}
    if degrees is None and (tag := _number(tags.get("rotate"))) is not None:
        degrees = -tag  # the old tag turns clockwise, the display matrix counter-clockwise
    rotation = _rotation(degrees)
    width, height = _displayed(width, height, rotation)
    duration = _number(fmt.get("duration")) or _number(video.get("duration")) or 0.0
    return VideoInfo(
        width=width,
        height=height,
        duration_seconds=round(duration, 3),
        video_codec=str(video.get("codec_name") or "unknown"),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
        container=str(fmt.get("format_name") or "unknown"),
        fps=_rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate")),
        rotation=rotation,
    )


def _is_video(stream: Mapping[str, Any]) -> bool:
    disposition = stream.get("disposition")
    cover = isinstance(disposition, Mapping) and bool(disposition.get("attached_pic"))
    return stream.get("codec_type") == "video" and not cover


_INPUT = re.compile(r"^Input #0, (.+?), from ", re.M)
_DURATION = re.compile(r"^\s*Duration: (?:(\d+):(\d{2}):(\d{2}(?:\.\d+)?)|N/A)", re.M)
_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: (\w+): (.*)$")
_CODEC = re.compile(r"^(\w+)")
_SIZE = re.compile(r"(?:^|[\s,])(\d{1,5})x(\d{1,5})(?=[\s,\[]|$)")
_FPS = re.compile(r"([\d.]+) fps")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees")


def from_ffmpeg(stderr: str, path: Path) -> VideoInfo:
    """A VideoInfo from what `ffmpeg -hide_banner -i FILE` prints (to stderr; it exits 1)."""
    found = _INPUT.search(stderr)
    if found is None:
        raise NotAVideo(f"not a media file FFmpeg can read: {_reason(stderr, path)}")
    container = found.group(1)
    duration = 0.0
    if (d := _DURATION.search(stderr)) and d.group(1) is not None:
        duration = int(d.group(1)) * 3600 + int(d.group(2)) * 60 + float(d.group(3))
    video: tuple[str, str] | None = None  # (stream line, the lines after it)
    has_audio = False
    lines = stderr[found.start() :].splitlines()
    for i, line in enumerate(lines):
        m = _STREAM.match(line)
        if m is None:
            continue
        kind, desc = m.group(1), m.group(2)
        if kind == "Audio":
            has_audio = True
        elif kind == "Video" and video is None and "(attached pic)" not in desc:
            after = []
            for rest in lines[i + 1 :]:
                if _STREAM.match(rest) or not rest.startswith("    "):
                    break
                after.append(rest)
            video = (desc, "\n".join(after))
    if video is None:
        raise NotAVideo("no video stream")
    desc, details = video
    size = _SIZE.search(desc)
    if size is None:
        raise NotAVideo("no video stream: the video stream has no picture size")
    codec = _CODEC.match(desc)
    fps = _FPS.search(desc)
    rot = _ROTATION.search(details)
    rotation = _rotation(_number(rot.group(1)) if rot else None)
    width, height = _displayed(int(size.group(1)), int(size.group(2)), rotation)
    return VideoInfo(
        width=width,
        height=height,
        duration_seconds=round(duration, 3),
        video_codec=codec.group(1) if codec else "unknown",
        has_audio=has_audio,
        container=container,
        fps=_number(fps.group(1)) if fps else None,
        rotation=rotation,
    )
