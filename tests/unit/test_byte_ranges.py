"""Range parsing and the download headers (jobserver.api.byte_ranges), as pure functions."""

from __future__ import annotations

import pytest

from jobserver.api.byte_ranges import (
    UNSATISFIABLE,
    ByteRange,
    content_disposition,
    content_range,
    etag_of,
    if_range_allows,
    parse_range,
    unsatisfied_range,
)

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # a-b: both ends inclusive in the header, stop exclusive here
        ("bytes=0-0", ByteRange(0, 1)),
        ("bytes=0-499", ByteRange(0, 500)),
        ("bytes=100-199", ByteRange(100, 200)),
        ("bytes=999-999", ByteRange(999, 1000)),
        ("bytes=500-999", ByteRange(500, 1000)),
        ("bytes=500-5000", ByteRange(500, 1000)),  # the end is clamped
        ("bytes=0-999999999999999999", ByteRange(0, 1000)),
        # a-: to the end
        ("bytes=0-", ByteRange(0, 1000)),
        ("bytes=999-", ByteRange(999, 1000)),
        # -n: the last n bytes
        ("bytes=-1", ByteRange(999, 1000)),
        ("bytes=-500", ByteRange(500, 1000)),
        ("bytes=-1000", ByteRange(0, 1000)),
        ("bytes=-5000", ByteRange(0, 1000)),  # more than there is: all of it
        # spelling: the unit is case-insensitive, spaces around the spec are fine
        ("Bytes=1-2", ByteRange(1, 3)),
        ("BYTES=1-2", ByteRange(1, 3)),
        (" bytes=1-2 ", ByteRange(1, 3)),
        ("bytes= 1-2", ByteRange(1, 3)),
        ("bytes=1-2,", ByteRange(1, 3)),  # an empty list element means nothing
        ("bytes=, 1-2", ByteRange(1, 3)),
        ("bytes=00-01", ByteRange(0, 2)),
    ],
)
def test_one_satisfiable_range(header: str, expected: ByteRange) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=1000-",  # starts at the end
        "bytes=1000-1000",
        "bytes=5000-6000",
        "bytes=-0",  # no bytes at all
    ],
)
def test_unsatisfiable(header: str) -> None:
    assert parse_range(header, SIZE) is UNSATISFIABLE


@pytest.mark.parametrize("header", ["bytes=0-", "bytes=0-0", "bytes=-1", "bytes=-0", "bytes=5-"])
def test_every_range_of_an_empty_file_is_unsatisfiable(header: str) -> None:
    assert parse_range(header, 0) is UNSATISFIABLE


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "bytes",  # no '='
        "bytes=",  # no spec
        "bytes=,",
        "bytes=-",
        "bytes=a-b",
        "bytes=1-a",
        "bytes=1--2",
        "bytes=--1",
        "bytes=1-2-3",
        "bytes=+1-2",
        "bytes=-+1",
        "bytes=1 -2",
        "bytes=1.5-2",
        "bytes=0x10-0x20",
        "bytes=\u0661-\u0662",  # Arabic-Indic digits: not ASCII digits
        "bytes=5-3",  # last before first: not a range
        "bytes=1234567890123456789-",  # 19 digits: no file is that big
        "items=0-1",  # another unit
        "bytes 0-1",
        "=0-1",
        # several ranges: answered with the whole file (no multipart/byteranges)
        "bytes=0-1,5-6",
        "bytes=0-1, -1",
        "bytes=0-,0-",
        "bytes=1000-,0-1",  # even when one of them is unsatisfiable
    ],
)
def test_ignored_headers_answer_the_whole_file(header: str | None) -> None:
    assert parse_range(header, SIZE) is None


def test_byte_range_length() -> None:
    assert ByteRange(100, 200).length == 100


def test_content_range_headers() -> None:
    assert content_range(ByteRange(100, 200), SIZE) == "bytes 100-199/1000"
    assert content_range(ByteRange(0, 1), 1) == "bytes 0-0/1"
    assert unsatisfied_range(SIZE) == "bytes */1000"
    assert unsatisfied_range(0) == "bytes */0"


def test_if_range_is_honoured_only_by_the_same_strong_etag() -> None:
    tag = etag_of("ab" * 32)
    assert tag == f'"{"ab" * 32}"'
    assert if_range_allows(None, tag)
    assert if_range_allows(tag, tag)
    assert if_range_allows(f" {tag} ", tag)
    assert not if_range_allows(f"W/{tag}", tag)  # weak tags never match (RFC 9110 13.1.5)
    assert not if_range_allows('"other"', tag)
    assert not if_range_allows("ab" * 32, tag)  # unquoted
    assert not if_range_allows("Wed, 21 Oct 2015 07:28:00 GMT", tag)  # a date: no Last-Modified
    assert not if_range_allows("", tag)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("video-1080p.mp4", 'attachment; filename="video-1080p.mp4"'),
        ("my clip (1).mp4", 'attachment; filename="my clip (1).mp4"'),
        (
            'a"b\\c.mp4',
            "attachment; filename=\"a_b_c.mp4\"; filename*=UTF-8''a%22b%5Cc.mp4",
        ),
        (
            "100%.mp4",
            "attachment; filename=\"100_.mp4\"; filename*=UTF-8''100%25.mp4",
        ),
        (
            "vidéo été.mkv",
            'attachment; filename="vid_o _t_.mkv";'
            " filename*=UTF-8''vid%C3%A9o%20%C3%A9t%C3%A9.mkv",
        ),
        (
            "日本.webm",
            "attachment; filename=\"__.webm\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.webm",
        ),
        (
            "a\r\nSet-Cookie: x.mp4",
            'attachment; filename="a__Set-Cookie: x.mp4";'
            " filename*=UTF-8''a%0D%0ASet-Cookie%3A%20x.mp4",
        ),
        ("", 'attachment; filename="download"'),
    ],
)
def test_content_disposition(name: str, expected: str) -> None:
    header = content_disposition(name)
    assert header == expected
    assert header.isascii() and "\r" not in header and "\n" not in header
