"""The FFmpeg command line of an encode, per output format and quality: pure functions.

Formats (encoders both the imageio-ffmpeg build and Debian's ffmpeg have; checked with
`ffmpeg -encoders`: libx264, libvpx-vp9, aac, libopus):
- `mp4`: H.264 (libx264, `-preset veryfast -crf 23`, yuv420p so every player decodes it) and
  AAC 128 kb/s, `+faststart` (the index first: a browser starts playing before the end arrives);
- `webm`: VP9 (libvpx-vp9 in constant quality `-crf 32 -b:v 0`, `-deadline realtime
  -cpu-used 8 -row-mt 1`: several times faster than the `good` deadline, which a worker cannot
  afford per job) and Opus 96 kb/s;
- `mkv`: H.264 and AAC as for mp4, in Matroska.

Qualities are bounding boxes, turned for portrait sources (taller than wide): `720p` 1280x720,
`1080p` 1920x1080, `4k` 3840x2160. The scale filter fits the picture in the box keeping its
aspect ratio, with even dimensions (4:2:0 needs them), and never makes it larger than the
source unless `upscale` is true. `target_size` computes the same size in Python, with FFmpeg's
own rounding, for tests and for callers that want to say what they will get.

Every command reads its input through `input_options()`: `file:` only (no network, whatever the
file names) and the video containers of `INPUT_FORMATS` only (no playlists or lists that would
open more files). Only the first video stream that is not a cover picture (`0:V:0`) and the
first audio stream, if any, are kept; metadata (a phone's GPS position) and chapters are dropped.
Progress goes to stdout (`-progress pipe:1 -nostats`), errors to stderr (`-loglevel error`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# FFmpeg demuxers read as a video (`-format_whitelist`; a demuxer reports a list such as
# "mov,mp4,m4a,3gp,3g2,mj2" and is allowed when one of its names is here)
INPUT_FORMATS = frozenset(
    {
        "mov",
        "mp4",
        "matroska",
        "webm",
        "avi",
        "mpegts",
        "mpeg",
        "flv",
        "ogg",
        "asf",
        "mxf",
        "dv",
        "nut",
    }
)

H264 = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p")
VP9 = (
    "-c:v",
    "libvpx-vp9",
    "-deadline",
    "realtime",
    "-cpu-used",
    "8",
    "-row-mt",
    "1",
    "-crf",
    "32",
    "-b:v",
    "0",
    "-pix_fmt",
    "yuv420p",
)
AAC = ("-c:a", "aac", "-b:a", "128k")
OPUS = ("-c:a", "libopus", "-b:a", "96k")


@dataclass(frozen=True)
class OutputFormat:
    name: str  # as jobs name it: mp4, webm, mkv
    extension: str
    content_type: str
    muxer: str  # FFmpeg's -f
    video: tuple[str, ...]
    audio: tuple[str, ...]
    muxer_options: tuple[str, ...] = ()


FORMATS: dict[str, OutputFormat] = {
    "mp4": OutputFormat("mp4", "mp4", "video/mp4", "mp4", H264, AAC, ("-movflags", "+faststart")),
    "webm": OutputFormat("webm", "webm", "video/webm", "webm", VP9, OPUS),
    "mkv": OutputFormat("mkv", "mkv", "video/x-matroska", "matroska", H264, AAC),
}

# quality -> the landscape bounding box (width, height)
QUALITIES: dict[str, tuple[int, int]] = {
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "4k": (3840, 2160),
}


def output_format(name: str) -> OutputFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"format {name!r}: expected one of {', '.join(FORMATS)}") from None


def box(quality: str, portrait: bool = False) -> tuple[int, int]:
    """The quality's bounding box, turned for a portrait source."""
    try:
        width, height = QUALITIES[quality]
    except KeyError:
        raise ValueError(f"quality {quality!r}: expected one of {', '.join(QUALITIES)}") from None
    return (height, width) if portrait else (width, height)


def scale_filter(quality: str, upscale: bool = False) -> str:
    """The `-vf` of a quality: fit the box (turned when ih > iw), keep the aspect ratio, even
    sizes, and at most the source's size unless `upscale`. Commas inside the expressions are
    escaped for the filter graph's parser."""
    wide_w, wide_h = box(quality)
    w = f"if(gt(ih\\,iw)\\,{wide_h}\\,{wide_w})"
    h = f"if(gt(ih\\,iw)\\,{wide_w}\\,{wide_h})"
    if not upscale:
        w, h = f"min(iw\\,{w})", f"min(ih\\,{h})"
    return f"scale=w={w}:h={h}:force_original_aspect_ratio=decrease:force_divisible_by=2"


def _rescale(a: int, b: int, c: int) -> int:
    """FFmpeg's av_rescale(a, b, c): a * b / c rounded to the nearest (halves away from 0)."""
    return (a * b + c // 2) // c


def target_size(width: int, height: int, quality: str, upscale: bool = False) -> tuple[int, int]:
    """The size `scale_filter` gives a `width` x `height` picture (FFmpeg's arithmetic)."""
    box_w, box_h = box(quality, portrait=height > width)
    w, h = (box_w, box_h) if upscale else (min(width, box_w), min(height, box_h))
    # the other side for the aspect ratio, rounded to the nearest even number
    fit_w, fit_h = _rescale(h, width, height * 2) * 2, _rescale(w, height, width * 2) * 2
    w, h = min(w, fit_w), min(h, fit_h)
    return max(2, w // 2 * 2), max(2, h // 2 * 2)


def input_options() -> list[str]:
    """Options before `-i` of every FFmpeg and ffprobe run on an upload (module docstring)."""
    return [
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        ",".join(sorted(INPUT_FORMATS)),
    ]


def encode_argv(
    ffmpeg: str,
    src: str | Path,
    dst: str | Path,
    *,
    fmt: str,
    quality: str,
    upscale: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """The whole command line of one encode of `src` into `dst` (overwritten)."""
    out = output_format(fmt)
    return [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-nostats",
        "-progress",
        "pipe:1",
        *input_options(),
        "-i",
        f"file:{Path(src).absolute()}",
        "-map",
        "0:V:0",
        "-map",
        "0:a:0?",
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
        "-vf",
        scale_filter(quality, upscale),
        *out.video,
        *out.audio,
        *out.muxer_options,
        *extra,
        "-f",
        out.muxer,
        "-y",
        f"file:{Path(dst).absolute()}",
    ]
