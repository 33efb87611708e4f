"""Blob labels made safe: file names (basename, no control characters, bounded), content
types, roles. Pure functions, no database."""

from __future__ import annotations

import pytest

from jobserver.blobs.names import (
    DEFAULT_CONTENT_TYPE,
    MAX_FILENAME_BYTES,
    check_role,
    safe_content_type,
    safe_filename,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("video.mp4", "video.mp4"),
        ("../../etc/passwd", "passwd"),
        ("/abs/path/to/clip.webm", "clip.webm"),
        ("C:\\Users\\me\\movie.mkv", "movie.mkv"),
        ("dir/", "file"),
        ("", "file"),
        (".", "file"),
        ("..", "file"),
        ("...", "file"),
        (".hidden", ".hidden"),
        ("a\x00b\r\nc.txt", "abc.txt"),
        ("evil\u202egnp.exe", "evilgnp.exe"),  # a bidi override hides the real extension
        ("  spaced \t name .txt ", "spaced name .txt"),
        ("\x1b[31mred\x1b[0m.log", "[31mred[0m.log"),
        ("naïve café.pdf", "naïve café.pdf"),
    ],
)
def test_safe_filename(given: str, expected: str) -> None:
    assert safe_filename(given) == expected


def test_long_names_are_cut_keeping_the_extension() -> None:
    name = safe_filename("x" * 1000 + ".mp4")
    assert name.endswith(".mp4") and len(name.encode()) == MAX_FILENAME_BYTES
    wide = safe_filename("é" * 300 + ".txt")  # two bytes each: never cut inside one
    assert wide.endswith(".txt") and len(wide.encode()) <= MAX_FILENAME_BYTES
    assert wide[:-4] == "é" * len(wide[:-4])
    no_ext = safe_filename("y" * 400)
    assert no_ext == "y" * MAX_FILENAME_BYTES


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("video/mp4", "video/mp4"),
        ("Video/MP4", "video/mp4"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        ('text/plain; charset="utf-8"', 'text/plain; charset="utf-8"'),
        ("", DEFAULT_CONTENT_TYPE),
        (None, DEFAULT_CONTENT_TYPE),
        ("nonsense", DEFAULT_CONTENT_TYPE),
        ("text/plain\r\nX-Injected: 1", DEFAULT_CONTENT_TYPE),
        ("text/" + "a" * 300, DEFAULT_CONTENT_TYPE),
    ],
)
def test_safe_content_type(given: str | None, expected: str) -> None:
    assert safe_content_type(given) == expected


def test_roles() -> None:
    assert check_role("input") == "input"
    assert check_role("thumb.small_2-x") == "thumb.small_2-x"
    for bad in ("", "x" * 33, "in put", "a/b", "é"):
        with pytest.raises(ValueError, match="role"):
            check_role(bad)
