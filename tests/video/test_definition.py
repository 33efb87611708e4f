"""`encode.video@1` as shipped: its metadata (the core reference's), what its params schema
refuses at submission (a 422 naming the field), and how the output is named."""

from __future__ import annotations

from typing import Any

import pytest

from jobserver.definitions.encode_video import SCHEMA, output_filename
from jobserver.registry import registry
from jobserver.validation import compile_schema

BLOB = "6f1c1a52-3b7e-4c55-9a43-6a6f3b0f9e21"
_check = compile_schema(SCHEMA)


def test_the_reference_metadata() -> None:
    d = registry.get("encode.video", 1)
    assert d is not None
    assert (d.default_max_attempts, d.timeout_seconds, d.concurrency_limit) == (2, 7200, 3)
    assert not d.outbound  # it reads and writes the blob store, never the network
    assert d.description


@pytest.mark.parametrize(
    "params",
    [
        {"input": {"blobId": BLOB}},
        {"input": {"blobId": BLOB.upper(), "filename": "1234567890-video.mp4"}},
        {"input": {"blobId": BLOB}, "format": "webm", "quality": "4k", "upscale": True},
        {"input": {"blobId": BLOB}, "format": "mkv", "quality": "720p"},
    ],
)
def test_accepted(params: dict[str, Any]) -> None:
    assert _check(params) is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, ("input",)),
        ({"input": {}}, ("input", "blobId")),
        ({"input": {"blobId": "not-a-uuid"}}, ("input", "blobId")),
        ({"input": {"blobId": BLOB, "path": "/etc/passwd"}}, ("input", "path")),
        ({"input": {"blobId": BLOB, "filename": ""}}, ("input", "filename")),
        ({"input": {"blobId": BLOB}, "format": "avi"}, ("format",)),
        ({"input": {"blobId": BLOB}, "quality": "8k"}, ("quality",)),
        ({"input": {"blobId": BLOB}, "upscale": "yes"}, ("upscale",)),
        ({"input": {"blobId": BLOB}, "codec": "h265"}, ("codec",)),
    ],
)
def test_refused_naming_the_field(params: dict[str, Any], field: tuple[str, ...]) -> None:
    failure = _check(params)
    assert failure is not None
    path, message = failure
    assert tuple(path) == field, (path, message)


@pytest.mark.parametrize(
    ("name", "quality", "ext", "out"),
    [
        ("1234567890-video.mp4", "1080p", "mp4", "1234567890-video-1080p.mp4"),
        ("holiday.MOV", "720p", "webm", "holiday-720p.webm"),
        ("../../etc/clip.mkv", "4k", "mkv", "clip-4k.mkv"),
        ("no-extension", "720p", "mp4", "no-extension-720p.mp4"),
        (".mp4", "720p", "mp4", ".mp4-720p.mp4"),
        ("", "720p", "mp4", "video-720p.mp4"),
    ],
)
def test_output_filename(name: str, quality: str, ext: str, out: str) -> None:
    assert output_filename(name, quality, ext) == out
