"""`probe` on real files with real FFmpeg, by both paths: ffprobe's JSON (Debian's ffprobe) and
`ffmpeg -i` parsing (the wheel's binary alone, and Debian's ffmpeg without its ffprobe)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobserver.video.binaries import Binaries
from jobserver.video.probe import NotAVideo, VideoInfo, checked, from_ffmpeg, probe
from tests.video.conftest import Clips, ffmpeg_children

PATHS = ["ffprobe", "wheel ffmpeg -i", "system ffmpeg -i"]


@pytest.fixture(params=PATHS)
def tools(request: pytest.FixtureRequest, wheel: Binaries) -> Binaries:
    if request.param == "wheel ffmpeg -i":
        assert wheel.ffprobe is None
        return wheel
    system: Binaries = request.getfixturevalue("system")
    return system if request.param == "ffprobe" else replace(system, ffprobe=None)


@pytest.mark.parametrize(
    ("clip", "width", "height", "audio", "rotation"),
    [
        ("landscape", 1920, 1080, True, 0),
        ("portrait", 1080, 1920, True, 0),
        ("small", 320, 240, True, 0),
        ("tiny", 160, 90, False, 0),
        ("rotated", 240, 320, True, 90),  # stored 320x240, shown turned
    ],
)
async def test_a_video(
    tools: Binaries, clips: Clips, clip: str, width: int, height: int, audio: bool, rotation: int
) -> None:
    info = await probe(getattr(clips, clip), binaries=tools)
    assert (info.width, info.height) == (width, height)
    assert info.rotation == rotation
    assert info.has_audio is audio
    assert info.video_codec == "h264"
    assert "mp4" in info.container.split(",")
    assert info.duration_seconds == pytest.approx(2.0, abs=0.1)
    assert info.fps == pytest.approx(10.0)
    assert info.portrait is (height > width)
    shown = info.as_json()
    assert shown["durationSeconds"] == info.duration_seconds and shown["hasAudio"] is audio


@pytest.mark.parametrize(
    ("clip", "reason"),
    [
        ("text", "not a media file FFmpeg can read: its format is none of the video containers"),
        ("truncated", "not a media file FFmpeg can read: moov atom not found"),
        ("audio_only", "no video stream"),
        # a playlist would have FFmpeg open what it names: not a container that is read
        ("playlist", "not a media file FFmpeg can read: its format is none of the video"),
    ],
)
async def test_not_a_video(tools: Binaries, clips: Clips, clip: str, reason: str) -> None:
    path = getattr(clips, clip)
    with pytest.raises(NotAVideo) as caught:
        await probe(path, binaries=tools)
    assert caught.value.reason.startswith(reason), caught.value.reason
    assert str(path) not in caught.value.reason  # no server path in what uploaders read


async def test_a_missing_file(tools: Binaries, clips: Clips) -> None:
    with pytest.raises(NotAVideo, match="No such file or directory"):
        await probe(clips.small.with_name("absent.mp4"), binaries=tools)


async def test_probing_is_bounded_in_time(tools: Binaries, clips: Clips) -> None:
    with pytest.raises(NotAVideo, match=r"did not finish reading it within 0\.001 s"):
        await probe(clips.landscape, binaries=tools, seconds=0.001)
    assert ffmpeg_children() == []  # killed and reaped


def test_zero_duration_and_other_containers_are_refused() -> None:
    info = VideoInfo(320, 240, 0.0, "h264", False, "mov,mp4,m4a,3gp,3g2,mj2")
    with pytest.raises(NotAVideo, match=r"^zero duration$"):
        checked(info)
    with pytest.raises(NotAVideo, match="container 'png_pipe' is not accepted"):
        checked(replace(info, duration_seconds=1.0, container="png_pipe"))
    assert checked(replace(info, duration_seconds=1.0)).duration_seconds == 1.0


def test_ffmpeg_i_text_without_a_duration_or_with_only_a_cover(tmp_path: object) -> None:
    from pathlib import Path

    path = Path("/x/y.mkv")
    printed = (
        "Input #0, matroska,webm, from 'file:/x/y.mkv':\n"
        "  Duration: N/A, start: 0.000000, bitrate: N/A\n"
        "  Stream #0:0: Video: vp9 (Profile 0), yuv420p(tv), 640x360, SAR 1:1 DAR 16:9,"
        " 25 fps, 25 tbr, 1k tbn (default)\n"
    )
    info = from_ffmpeg(printed, path)
    assert (info.width, info.height, info.video_codec) == (640, 360, "vp9")
    assert info.duration_seconds == 0.0  # then `checked` says "zero duration"
    cover = (
        "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'file:/x/y.mkv':\n"
        "  Duration: 00:03:10.05, start: 0.000000, bitrate: 130 kb/s\n"
        "  Stream #0:0[0x1](und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, stereo\n"
        "  Stream #0:1[0x0]: Video: mjpeg (Baseline), yuvj420p(pc), 600x600 [SAR 1:1 DAR 1:1],"
        " 90k tbr, 90k tbn (attached pic)\n"
    )
    with pytest.raises(NotAVideo, match=r"^no video stream$"):
        from_ffmpeg(cover, path)
