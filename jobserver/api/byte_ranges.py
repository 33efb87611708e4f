"""HTTP byte ranges (RFC 9110 §14) and download headers, as pure functions.

`parse_range(header, size)` reads a `Range` header against a representation of `size` bytes:
- None: answer the whole representation (200). That is the answer to no header, to a unit
  other than `bytes`, to a header that does not parse (a server may ignore an invalid Range),
  and to a header asking for more than one range: multipart/byteranges answers are not made,
  the whole file is (what a video player or a download manager asks for is one range);
- a `ByteRange` [start, stop): answer 206 with `content_range(r, size)`. `a-b` is clamped to
  the end (`b` past it), `a-` runs to the end, `-n` is the last n bytes (all of them when n
  is larger than the size);
- `UNSATISFIABLE`: answer 416 with `Content-Range: bytes */size` (`a` at or past the end,
  `-0`, any range of an empty representation).

`if_range_allows(if_range, etag)` says whether a Range may be honoured under `If-Range`: only
when it names the current strong ETag (a date never matches: these answers carry no
Last-Modified). `content_disposition(filename)` is the `attachment` header with an ASCII
fallback and the RFC 6266 / RFC 8187 `filename*` form for any other name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

# At most 18 digits per position (more than any file): a longer number is not a range we serve.
_SPEC = re.compile(r"([0-9]{1,18})?-([0-9]{1,18})?")  # ASCII digits only


@dataclass(frozen=True)
class ByteRange:
    """Bytes [start, stop) of the representation (stop exclusive, stop > start)."""

    start: int
    stop: int

    @property
    def length(self) -> int:
        return self.stop - self.start


class _Unsatisfiable:
    def __repr__(self) -> str:
        return "UNSATISFIABLE"


UNSATISFIABLE: Final = _Unsatisfiable()


def parse_range(header: str | None, size: int) -> ByteRange | _Unsatisfiable | None:
    """See the module doc."""
    if not header:
        return None
    unit, sep, specs = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = [p.strip() for p in specs.split(",")]
    parts = [p for p in parts if p]  # empty list elements are allowed and mean nothing
    if len(parts) != 1:
        return None  # none (invalid) or several: the whole file
    found = _SPEC.fullmatch(parts[0])
    if found is None:
        return None
    first, last = found.group(1), found.group(2)
    if first is None and last is None:
        return None  # "-" alone
    if first is None:  # suffix: the last n bytes
        assert last is not None
        n = int(last)
        if n == 0 or size == 0:
            return UNSATISFIABLE
        return ByteRange(max(0, size - n), size)
    start = int(first)
    if last is not None and int(last) < start:
        return None  # "5-3" is not a range: ignored
    if start >= size:
        return UNSATISFIABLE
    stop = size if last is None else min(int(last) + 1, size)
    return ByteRange(start, stop)


def content_range(r: ByteRange, size: int) -> str:
    """The Content-Range of a 206 answer: `bytes 100-199/1000` (last byte inclusive)."""
    return f"bytes {r.start}-{r.stop - 1}/{size}"


def unsatisfied_range(size: int) -> str:
    """The Content-Range of a 416 answer."""
    return f"bytes */{size}"


def etag_of(sha256: str) -> str:
    """A strong ETag from the content's SHA-256 (hex)."""
    return f'"{sha256}"'


def if_range_allows(if_range: str | None, etag: str) -> bool:
    """Whether a Range may be honoured: no If-Range, or one naming this strong ETag exactly."""
    if if_range is None:
        return True
    value = if_range.strip()
    return not value.startswith("W/") and value == etag


# Kept out of the quoted ASCII fallback: anything but printable ASCII, the quote and backslash,
# and `%` (some clients percent-decode `filename=`).
_FALLBACK_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\%]')


def content_disposition(filename: str) -> str:
    """`attachment; filename="..."` (ASCII, quotes and backslashes replaced) and, when the name
    is not plain ASCII, `filename*=UTF-8''...` (percent-encoded) which clients prefer."""
    fallback = _FALLBACK_UNSAFE.sub("_", filename).strip() or "download"
    header = f'attachment; filename="{fallback}"'
    if filename and fallback != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header
