"""What the blob store hands out: `Blob` (a stored file's description) and its errors.

`BlobTooLarge` and `BlobNotFound` are `PermanentError`s too: a job whose input is gone or whose
output passes the cap fails without a retry (another attempt would meet the same). The API
maps them to 413 and 404.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jobserver.registry import PermanentError

if TYPE_CHECKING:
    from jobserver.config import Settings

GiB = 1024**3
DEFAULT_MAX_BYTES = 10 * GiB


@dataclass(frozen=True)
class Blob:
    """A stored file. `storage`, `lo_oid` and `path` say where its bytes are (the store reads
    them from there); the rest is what clients are shown."""

    id: uuid.UUID
    owner: str  # the owner (token owner name) the blob belongs to
    job_id: uuid.UUID | None  # the job it belongs to (None until attached)
    role: str  # "input" | "output" (a short label, <= 32 characters)
    filename: str  # a safe display name (no path parts)
    content_type: str
    size: int
    sha256: str  # hex
    created_at: dt.datetime
    storage: str = field(default="lo", compare=False)  # 'lo' | 'dir'
    lo_oid: int | None = field(default=None, repr=False, compare=False)
    path: str | None = field(default=None, repr=False, compare=False)  # relative to BLOB_DIR


class BlobTooLarge(PermanentError):
    """The stream passed the cap (`limit` bytes); nothing of it was kept."""

    code = "blob_too_large"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the file is larger than {limit} bytes")


class BlobNotFound(PermanentError, LookupError):
    """No such blob (or not one the asker may see)."""

    code = "blob_not_found"

    def __init__(self, blob_id: object, why: str = "no such blob") -> None:
        self.blob_id = blob_id
        super().__init__(f"{why}: {blob_id}")


class BlobFenced(RuntimeError):
    """A job's output was refused: this worker no longer holds the job (its lease was taken
    over or the job finished); nothing was kept."""


@dataclass(frozen=True)
class BlobOptions:
    """How a process stores blobs: BLOB_DIR (None: large objects) and BLOB_MAX_BYTES."""

    directory: Path | None = None
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobOptions:
        return cls(
            directory=Path(settings.blob_dir) if settings.blob_dir else None,
            max_bytes=settings.blob_max_bytes,
        )
