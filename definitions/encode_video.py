"""`encode.video@1`: encode an uploaded video with FFmpeg into mp4, webm or mkv at 720p, 1080p or
4k, reporting progress, and store the result as the job's output file.

Params:
- `input`: `{"blobId": uuid, "filename": name}`, a file of the blob store (`jobserver.blobs`)
  that belongs to the job or to its owner (`POST /v1/videos/encode` uploads it and fills this
  in); `filename` is optional (the stored name by default) and names the output;
- `format`: `mp4` (H.264 + AAC, the default), `webm` (VP9 + Opus) or `mkv` (H.264 + AAC);
- `quality`: `720p`, `1080p` (the default) or `4k`: the bounding box the picture is fitted in,
  turned for portrait sources, the aspect ratio kept;
- `upscale`: false by default: a source smaller than the box keeps its size.
(`jobserver.video.presets` holds the codec settings and the scale filter.)

A run downloads the input to a temporary directory on the worker (`jobserver-encode-*` under
TMPDIR, which needs room for the input and the output; removed however the run ends), probes
it, runs FFmpeg as a child process (the worker's event loop never waits on it) and reports its
progress as `ctx.progress(percent, 100, message)`, probes the output and saves it
(`ctx.blobs.save_file`, role `output`, named `<input stem>-<quality>.<ext>`). A cancel, a lost
lease or a hand-back (`ctx.cancelled`: SIGTERM, then SIGKILL after 2 s) and the job's timeout
(SIGKILL) stop FFmpeg before the run ends.

Result: `{"output": {"blobId", "filename", "size", "contentType"}, "width", "height",
"durationSeconds", "videoCodec", "format", "quality", "upscale", "encodeSeconds", "input":
{"blobId", "filename", "width", "height", "durationSeconds", "videoCodec", "hasAudio",
"container", "fps", "rotation"}}` (sizes and duration of the output as probed).

Failures: an input that is not a video FFmpeg reads (`not_a_video: <reason>`) or that is not
there (`input_not_found`) fails for good (`PermanentError`); an FFmpeg error (its last lines of
stderr in the message) is retried once (`default_max_attempts` 2).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path, PurePath
from typing import Any

from jobserver.registry import PermanentError, definition
from jobserver.video.presets import FORMATS, QUALITIES

UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["input"],
    "properties": {
        "input": {
            "type": "object",
            "required": ["blobId"],
            "properties": {
                "blobId": {"type": "string", "format": "uuid", "pattern": UUID_PATTERN},
                "filename": {"type": "string", "minLength": 1, "maxLength": 255},
            },
            "additionalProperties": False,
        },
        "format": {"enum": list(FORMATS), "default": "mp4"},
        "quality": {"enum": list(QUALITIES), "default": "1080p"},
        "upscale": {"type": "boolean", "default": False},
    },
    "additionalProperties": False,
}


class NotAVideoInput(PermanentError):
    code = "not_a_video"


class InputNotFound(PermanentError):
    code = "input_not_found"


def output_filename(input_name: str, quality: str, extension: str) -> str:
    """`<stem>-<quality>.<ext>`: "1234567890-video.mp4" at 1080p in webm is
    "1234567890-video-1080p.webm"."""
    stem = PurePath(PurePath(input_name).name).stem.strip() or "video"
    return f"{stem}-{quality}.{extension}"


def _message(fmt: str, quality: str, percent: float, speed: float | None) -> str:
    pace = f" at {speed:g}x" if speed else ""
    return f"encoding {fmt} {quality}: {percent:.0f}%{pace}"


@definition(
    "encode.video",
    1,
    params_schema=SCHEMA,
    default_max_attempts=2,
    timeout_seconds=7200,
    concurrency_limit=3,
    description="Encode an uploaded video with FFmpeg (mp4, webm, mkv at 720p, 1080p, 4k)",
)
async def encode_video(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Download the input, probe it, encode it with progress, store the output."""
    from jobserver.blobs import BlobNotFound
    from jobserver.video.encode import Progress, encode
    from jobserver.video.probe import NotAVideo, probe

    blob_id = uuid.UUID(params["input"]["blobId"])
    fmt = params.get("format", "mp4")
    quality = params.get("quality", "1080p")
    upscale = bool(params.get("upscale", False))
    target = FORMATS[fmt]
    try:
        source = await ctx.blobs.get(blob_id)
    except BlobNotFound:
        raise InputNotFound(f"input.blobId: no file {blob_id} for this job") from None
    given = params["input"].get("filename") or source.filename
    name = output_filename(given, quality, target.extension)
    work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="jobserver-encode-"))
    try:
        src, dst = work / "input", work / f"output.{target.extension}"
        try:
            await ctx.blobs.download(blob_id, src)
        except BlobNotFound:
            raise InputNotFound(f"input.blobId: no file {blob_id} for this job") from None
        try:
            info = await probe(src)
        except NotAVideo as e:
            raise NotAVideoInput(e.reason) from None
        await ctx.progress(0, 100, _message(fmt, quality, 0, None))

        async def report(p: Progress) -> None:
            await ctx.progress(p.percent, 100, _message(fmt, quality, p.percent, p.speed))

        done = await encode(
            src,
            dst,
            fmt=fmt,
            quality=quality,
            upscale=upscale,
            duration=info.duration_seconds,
            on_progress=report,
            cancelled=ctx.cancelled,
        )
        try:
            made = await probe(dst)
        except NotAVideo as e:
            raise RuntimeError(f"ffmpeg wrote an output FFmpeg cannot read: {e.reason}") from None
        saved = await ctx.blobs.save_file(
            dst, filename=name, content_type=target.content_type, role="output"
        )
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
    ctx.logger.info(
        "encoded %s to %s %s (%dx%d) in %.1f s",
        blob_id,
        fmt,
        quality,
        made.width,
        made.height,
        done.seconds,
    )
    return {
        "output": {
            "blobId": str(saved.id),
            "filename": saved.filename,
            "size": saved.size,
            "contentType": saved.content_type,
        },
        "width": made.width,
        "height": made.height,
        "durationSeconds": made.duration_seconds,
        "videoCodec": made.video_codec,
        "format": fmt,
        "quality": quality,
        "upscale": upscale,
        "encodeSeconds": done.seconds,
        "input": {"blobId": str(blob_id), "filename": source.filename, **info.as_json()},
    }
