"""The command line per format and quality, the sizes it gives, and the progress parser: pure
functions, no FFmpeg run (test_encode.py runs them and reads the results back)."""

from __future__ import annotations

import pytest

from jobserver.video.encode import ProgressReader
from jobserver.video.presets import (
    FORMATS,
    INPUT_FORMATS,
    encode_argv,
    input_options,
    output_format,
    scale_filter,
    target_size,
)


@pytest.mark.parametrize(
    ("source", "quality", "upscale", "size"),
    [
        ((1920, 1080), "720p", False, (1280, 720)),
        ((1920, 1080), "1080p", False, (1920, 1080)),
        ((1920, 1080), "4k", False, (1920, 1080)),  # never larger than the source
        ((1920, 1080), "4k", True, (3840, 2160)),
        ((1080, 1920), "720p", False, (720, 1280)),  # portrait: the box is turned
        ((1080, 1920), "1080p", False, (1080, 1920)),
        ((320, 240), "720p", False, (320, 240)),
        ((320, 240), "720p", True, (960, 720)),  # 4:3 in a 16:9 box: the height decides
        ((240, 320), "720p", True, (720, 960)),
        ((1440, 1080), "720p", False, (960, 720)),
        ((1000, 1000), "720p", False, (720, 720)),  # square: landscape box
        ((321, 241), "720p", False, (320, 240)),  # odd sizes: even, never above the source
        ((2000, 1001), "4k", True, (3840, 1922)),
        ((160, 90), "720p", True, (1280, 720)),
        ((3, 5), "720p", True, (720, 1200)),
    ],
)
def test_target_size(
    source: tuple[int, int], quality: str, upscale: bool, size: tuple[int, int]
) -> None:
    assert target_size(*source, quality, upscale) == size
    w, h = size
    assert w % 2 == 0 and h % 2 == 0


@pytest.mark.parametrize("quality", ["720p", "1080p", "4k"])
@pytest.mark.parametrize("source", [(1920, 1080), (1080, 1920), (333, 777), (4000, 3000)])
def test_the_aspect_ratio_is_kept_within_rounding(quality: str, source: tuple[int, int]) -> None:
    for upscale in (False, True):
        w, h = target_size(*source, quality, upscale)
        assert abs(w / h - source[0] / source[1]) < 2.5 / min(w, h)
        if not upscale:
            assert w <= source[0] and h <= source[1]


def test_scale_filter_caps_at_the_source_unless_upscale() -> None:
    capped = scale_filter("720p")
    assert capped.startswith("scale=w=min(iw\\,if(gt(ih\\,iw)\\,720\\,1280))")
    assert "h=min(ih\\,if(gt(ih\\,iw)\\,1280\\,720))" in capped
    assert capped.endswith(":force_original_aspect_ratio=decrease:force_divisible_by=2")
    free = scale_filter("4k", upscale=True)
    assert "min(" not in free and "3840" in free and "2160" in free


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.mark.parametrize(
    ("fmt", "video", "audio", "muxer"),
    [
        ("mp4", "libx264", "aac", "mp4"),
        ("webm", "libvpx-vp9", "libopus", "webm"),
        ("mkv", "libx264", "aac", "matroska"),
    ],
)
def test_encode_argv_per_format(fmt: str, video: str, audio: str, muxer: str) -> None:
    argv = encode_argv("/bin/ffmpeg", "/in/clip.mov", "/out/x", fmt=fmt, quality="720p")
    assert argv[0] == "/bin/ffmpeg"
    assert _option(argv, "-c:v") == video and _option(argv, "-c:a") == audio
    assert _option(argv, "-f") == muxer
    assert _option(argv, "-pix_fmt") == "yuv420p"
    assert _option(argv, "-vf") == scale_filter("720p")
    assert _option(argv, "-progress") == "pipe:1" and "-nostats" in argv and "-nostdin" in argv
    # input options come before -i; only file: paths, only the video containers
    i = argv.index("-i")
    assert argv[i + 1] == "file:/in/clip.mov" and argv[-1] == "file:/out/x"
    assert argv[i - 4 : i] == input_options()
    assert _option(argv, "-protocol_whitelist") == "file"
    assert set(_option(argv, "-format_whitelist").split(",")) == INPUT_FORMATS
    assert "hls" not in INPUT_FORMATS and "concat" not in INPUT_FORMATS
    # the first real video stream and the first audio stream if any; no metadata
    maps = [argv[n + 1] for n, a in enumerate(argv) if a == "-map"]
    assert maps == ["0:V:0", "0:a:0?"]
    assert _option(argv, "-map_metadata") == "-1"
    assert ("+faststart" in argv) == (fmt == "mp4")


def test_webm_is_tuned_for_a_worker() -> None:
    argv = encode_argv("ffmpeg", "a", "b", fmt="webm", quality="1080p")
    assert _option(argv, "-deadline") == "realtime"
    assert _option(argv, "-row-mt") == "1" and int(_option(argv, "-cpu-used")) >= 5
    assert _option(argv, "-b:v") == "0" and _option(argv, "-crf")  # constant quality


def test_relative_paths_become_absolute() -> None:
    argv = encode_argv("ffmpeg", "in.mp4", "out.mp4", fmt="mp4", quality="720p")
    assert argv[argv.index("-i") + 1].startswith("file:/")
    assert argv[-1].startswith("file:/")


def test_unknown_format_or_quality() -> None:
    with pytest.raises(ValueError, match="format 'avi'"):
        encode_argv("ffmpeg", "a", "b", fmt="avi", quality="720p")
    with pytest.raises(ValueError, match="quality '8k'"):
        encode_argv("ffmpeg", "a", "b", fmt="mp4", quality="8k")
    assert output_format("mkv").content_type == "video/x-matroska"
    assert {f.content_type for f in FORMATS.values()} == {
        "video/mp4",
        "video/webm",
        "video/x-matroska",
    }


def _blocks(reader: ProgressReader, *blocks: dict[str, str]) -> list[float]:
    seen = []
    for block in blocks:
        for key, value in block.items():
            report = reader.feed(f"{key}={value}\n")
            if report is not None:
                seen.append(report.percent)
    return seen


def test_progress_is_a_percent_of_the_duration_that_never_goes_back() -> None:
    reader = ProgressReader(duration=4.0)
    seen = _blocks(
        reader,
        {"frame": "0", "out_time_us": "N/A", "speed": "N/A", "progress": "continue"},
        {"frame": "10", "out_time_us": "1000000", "speed": "2.5x", "progress": "continue"},
        {"out_time_us": "N/A", "progress": "continue"},  # FFmpeg 7+ between two muxed packets
        {"out_time_us": "500000", "progress": "continue"},
        {"out_time_us": "3000000", "progress": "continue"},
        {"out_time_us": "4100000", "progress": "continue"},  # audio a little longer
        {"frame": "40", "out_time_us": "4100000", "progress": "end"},
    )
    assert seen == [0.0, 25.0, 25.0, 25.0, 75.0, 100.0, 100.0]
    assert reader.last is not None and reader.last.done and reader.last.frame == 40
    assert reader.last.speed == 2.5 and reader.last.seconds == 4.1


def test_progress_without_a_duration_is_zero_until_the_end() -> None:
    reader = ProgressReader(duration=None)
    seen = _blocks(
        reader,
        {"out_time_us": "-9223372036854775807", "progress": "continue"},
        {"out_time_us": "1000000", "progress": "continue"},
        {"progress": "end"},
    )
    assert seen == [0.0, 0.0, 100.0]
    assert reader.feed("garbage without an equals sign") is None
