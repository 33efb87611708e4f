"""The labels a blob carries, made safe to store and to show: file name, content type, role.

- `safe_filename(name)`: the last path part (either slash), without control or format
  characters (NUL, CR/LF, bidi overrides), trimmed, at most 255 UTF-8 bytes with the extension
  kept when it is cut; `"."`, `".."` and empty names become `"file"`.
- `safe_content_type(value)`: a `type/subtype` (parameters allowed) of printable ASCII, at most
  255 characters, lower-cased type; anything else becomes `application/octet-stream`.
- `check_role(role)`: 1 to 32 characters of letters, digits, `.`, `_`, `-`; else ValueError.
"""

from __future__ import annotations

import re
import unicodedata

MAX_FILENAME_BYTES = 255
MAX_CONTENT_TYPE = 255
DEFAULT_CONTENT_TYPE = "application/octet-stream"
FALLBACK_NAME = "file"

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_CONTENT_TYPE = re.compile(
    rf"({_TOKEN})/({_TOKEN})((?:\s*;\s*{_TOKEN}=(?:{_TOKEN}|\"[^\"\\]*\"))*)"
)
_ROLE = re.compile(r"[A-Za-z0-9._-]{1,32}")


def safe_filename(name: str) -> str:
    base = re.split(r"[/\\]", str(name))[-1]
    cleaned = "".join(c for c in base if unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    cleaned = " ".join(cleaned.split())  # tabs and runs of spaces become one space
    if not cleaned.strip("."):  # "", ".", "..": no name at all
        return FALLBACK_NAME
    return _bounded(cleaned)


def _bounded(name: str) -> str:
    """At most MAX_FILENAME_BYTES of UTF-8, cutting the stem (never inside a character)."""
    if len(name.encode()) <= MAX_FILENAME_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode()) > 32:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    room = MAX_FILENAME_BYTES - len(suffix.encode())
    cut = stem.encode()[:room].decode(errors="ignore")
    return cut + suffix


def safe_content_type(value: str | None) -> str:
    if not value:
        return DEFAULT_CONTENT_TYPE
    text = value.strip()
    m = _CONTENT_TYPE.fullmatch(text)
    if m is None or len(text) > MAX_CONTENT_TYPE:
        return DEFAULT_CONTENT_TYPE
    return f"{m.group(1).lower()}/{m.group(2).lower()}{m.group(3)}"


def check_role(role: str) -> str:
    if not isinstance(role, str) or _ROLE.fullmatch(role) is None:
        raise ValueError(f"role must be 1-32 letters, digits, '.', '_' or '-', got {role!r}")
    return role
