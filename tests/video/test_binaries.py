"""Which ffmpeg and ffprobe run: the wheel's by default, a system one by setting."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from jobserver.config import Settings
from jobserver.video import binaries
from jobserver.video.binaries import Binaries, FFmpegMissing, resolve
from tests.video.conftest import SYSTEM_FFMPEG, SYSTEM_FFPROBE


@pytest.fixture(autouse=True)
def _fresh() -> object:
    binaries.configure(None)
    yield None
    binaries.configure(None)


def test_the_default_is_the_wheels_ffmpeg_without_ffprobe() -> None:
    found = resolve()
    assert "imageio_ffmpeg" in found.ffmpeg and os.access(found.ffmpeg, os.X_OK)
    assert found.ffprobe is None


def test_a_system_ffmpeg_brings_its_ffprobe(system: Binaries) -> None:
    assert system == Binaries(str(SYSTEM_FFMPEG), str(SYSTEM_FFPROBE))
    by_name = resolve("ffmpeg")  # looked up on PATH
    on_path = shutil.which("ffmpeg")
    assert on_path is not None and by_name.ffmpeg == str(Path(on_path).absolute())
    assert by_name.ffprobe == str(Path(on_path).absolute().with_name("ffprobe"))


def test_ffprobe_may_be_named_alone(system: Binaries) -> None:
    found = resolve("", str(SYSTEM_FFPROBE))
    assert "imageio_ffmpeg" in found.ffmpeg and found.ffprobe == str(SYSTEM_FFPROBE)


def test_an_ffmpeg_without_an_ffprobe_beside_it(tmp_path: Path) -> None:
    exe = tmp_path / "ffmpeg"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert resolve(str(exe)) == Binaries(str(exe), None)


def test_a_missing_binary_names_its_setting(tmp_path: Path) -> None:
    with pytest.raises(FFmpegMissing, match="FFMPEG_BINARY='no-such-ffmpeg': no such executable"):
        resolve("no-such-ffmpeg")
    with pytest.raises(FFmpegMissing, match="FFPROBE_BINARY="):
        resolve("", str(tmp_path / "ffprobe"))
    plain = tmp_path / "not-executable"
    plain.write_text("")
    with pytest.raises(FFmpegMissing, match="no such executable"):
        resolve(str(plain))


def test_settings_and_configure(system: Binaries) -> None:
    settings = Settings.from_env({"FFMPEG_BINARY": str(SYSTEM_FFMPEG)})
    assert settings.ffmpeg_binary == str(SYSTEM_FFMPEG) and settings.ffprobe_binary == ""
    assert binaries.from_settings(settings) == system
    chosen = Binaries("/opt/ffmpeg", None)
    binaries.configure(chosen)
    assert binaries.current() is chosen


async def test_current_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FFMPEG_BINARY", raising=False)
    monkeypatch.delenv("FFPROBE_BINARY", raising=False)
    first = await binaries.current_async()
    assert first == resolve() and binaries.current() is first
