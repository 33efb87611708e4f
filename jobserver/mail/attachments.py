"""Attachments of a mail: base64 `content` in the params, or a file under MAIL_ATTACHMENT_DIR.

- `{filename, contentType?, content}`: `content` is base64 (whitespace and line breaks are
  ignored; anything else outside the alphabet is refused);
- `{filename, contentType?, path}`: `path` is relative to MAIL_ATTACHMENT_DIR. With the
  directory unset, path attachments are refused. The path may not be absolute nor hold `..`
  or NUL; it is resolved (symlinks followed) and must still lie inside the directory, and the
  file is then opened one component at a time from the directory with `O_NOFOLLOW`, so a link
  swapped in after the check cannot lead out either. Only regular files are read.

`contentType` defaults to what the file name suggests (`mimetypes`), else
`application/octet-stream`. The decoded total of one mail's attachments is capped by
MAIL_MAX_ATTACHMENT_BYTES: `declared_size` lets submission refuse base64 that is already too
big without decoding it; files are measured (`fstat`) before they are read, and never read past
the cap.

Problems raise `AttachmentError(field, message)` (`field` like `attachments[1].path`): a 422 at
submission, a permanent failure at run time.
"""

from __future__ import annotations

import binascii
import mimetypes
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobserver.mail.config import MailLimits

DEFAULT_CONTENT_TYPE = "application/octet-stream"
READ_CHUNK = 1024 * 1024


class AttachmentError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes

    def summary(self) -> dict[str, Any]:
        """What results and dry runs show of it: never its bytes."""
        return {"filename": self.filename, "contentType": self.content_type, "size": len(self.data)}


def content_type_of(item: dict[str, Any]) -> str:
    given = item.get("contentType")
    if isinstance(given, str) and given:
        return given.lower()
    guessed, _ = mimetypes.guess_type(str(item.get("filename", "")), strict=False)
    return guessed or DEFAULT_CONTENT_TYPE


def _compact(text: str) -> str:
    return "".join(text.split())


def declared_size(text: str) -> int:
    """The decoded size of base64 `text` (whitespace ignored), without decoding it."""
    compact = _compact(text)
    return len(compact) * 3 // 4 - (len(compact) - len(compact.rstrip("=")))


def decode_content(text: str, where: str) -> bytes:
    try:
        return binascii.a2b_base64(_compact(text), strict_mode=True)
    except binascii.Error as e:
        raise AttachmentError(where, f"content is not valid base64 ({e})") from None


def check_path(path: str, where: str) -> list[str]:
    """The components of a `path` attachment, or AttachmentError for a path that could only
    lead out of the directory (absolute, `..`, NUL) or names nothing."""
    if "\x00" in path:
        raise AttachmentError(where, "path holds NUL")
    if os.path.isabs(path) or path.startswith(("/", "\\")):
        raise AttachmentError(where, "path must be relative to MAIL_ATTACHMENT_DIR")
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise AttachmentError(where, "path may not hold `..`")
    if not parts:
        raise AttachmentError(where, "path names no file")
    return parts


def _open_inside(base: str, parts: Sequence[str], where: str) -> int:
    """A read-only descriptor of `parts` under `base`, walked with O_NOFOLLOW from `base`."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(base, flags | os.O_DIRECTORY)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt = os.open(part, flags if last else flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def read_file(directory: str, path: str, budget: int, where: str) -> bytes:
    """The bytes of attachment file `path` under `directory`, at most `budget` of them (else
    AttachmentError: the total cap). Blocking: call it in a thread."""
    parts = check_path(path, where)
    try:
        base = os.path.realpath(directory)
        target = os.path.realpath(os.path.join(base, *parts))
        if os.path.commonpath([base, target]) != base or target == base:
            raise AttachmentError(where, "path leads outside MAIL_ATTACHMENT_DIR")
        fd = _open_inside(base, os.path.relpath(target, base).split(os.sep), where)
    except AttachmentError:
        raise
    except FileNotFoundError:
        raise AttachmentError(where, f"no file {path!r} in MAIL_ATTACHMENT_DIR") from None
    except OSError as e:
        raise AttachmentError(where, f"cannot open {path!r}: {e.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AttachmentError(where, f"{path!r} is not a regular file")
        if info.st_size > budget:
            raise AttachmentError(where, _over(budget))
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, READ_CHUNK):
            size += len(chunk)
            if size > budget:  # grew while being read
                raise AttachmentError(where, _over(budget))
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _over(budget: int) -> str:
    return f"the attachments are over MAIL_MAX_ATTACHMENT_BYTES ({budget} bytes left of the cap)"


def submission_problems(items: Any, limits: MailLimits) -> list[tuple[tuple[str | int, ...], str]]:
    """What submission can tell of `attachments` (already shaped by the params schema): bad
    base64, a path that could only lead out, path attachments with no directory, and base64
    whose decoded total is already over the cap."""
    if not isinstance(items, list):
        return []
    total = 0
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("content"), str):
            try:
                decode_content(item["content"], "")
            except AttachmentError as e:
                return [(("attachments", i, "content"), e.message)]
            total += declared_size(item["content"])
        elif isinstance(item.get("path"), str):
            if limits.attachment_dir is None:
                return [
                    (
                        ("attachments", i, "path"),
                        "path attachments are off: MAIL_ATTACHMENT_DIR is not set",
                    )
                ]
            try:
                check_path(item["path"], "")
            except AttachmentError as e:
                return [(("attachments", i, "path"), e.message)]
    if total > limits.max_attachment_bytes:
        return [
            (
                ("attachments",),
                f"{total} bytes decoded, over MAIL_MAX_ATTACHMENT_BYTES"
                f" ({limits.max_attachment_bytes})",
            )
        ]
    return []


def load(items: Any, limits: MailLimits) -> list[Attachment]:
    """Every attachment decoded or read, in order, under the total cap. Blocking (files):
    call it in a thread."""
    if not items:
        return []
    out: list[Attachment] = []
    left = limits.max_attachment_bytes
    for i, item in enumerate(items):
        where = f"attachments[{i}]"
        if "content" in item:
            data = decode_content(str(item["content"]), f"{where}.content")
            if len(data) > left:
                raise AttachmentError("attachments", _over(left))
        else:
            if limits.attachment_dir is None:
                raise AttachmentError(
                    f"{where}.path", "path attachments are off: MAIL_ATTACHMENT_DIR is not set"
                )
            data = read_file(limits.attachment_dir, str(item["path"]), left, f"{where}.path")
        left -= len(data)
        out.append(Attachment(str(item["filename"]), content_type_of(item), data))
    return out
