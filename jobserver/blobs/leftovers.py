"""Files an interrupted write leaves behind, and the sweep that removes them.

A process that dies while it writes a blob leaves no row, so nothing queues its file: under
BLOB_DIR the temporary name `<root>/<2 hex>/.<uuid>.tmp` (backends.py), and for an upload
into large objects the spool file `jobserver-upload-<uuid>` in VIDEO_UPLOAD_DIR or the
system's temp directory (store.py, api/uploads.py). The scheduler's pruner removes them once
their mtime is older than `bound(BLOB_UNATTACHED_SECONDS)`.

Why that bound: a live writer touches its file at every batch, and its longest quiet spell is
short and bounded (the upload's idle limit, BODY_READ_TIMEOUT 15 s, then the probe, at most
30 s, then the commit). BLOB_UNATTACHED_SECONDS (default an hour) is already how long the
pruner lets an upload wait for its job, so a file older than that is at least as abandoned
as a blob it would expire; the floor MIN_SECONDS keeps a small setting (it may be 1 s) from
deleting a file still being written, and covers clock skew between a shared BLOB_DIR's
server and the scheduler's host.

Only names of exactly these shapes are touched, only regular files (never a link or a
directory), and a file that cannot be removed is left for the next run: a directory shared
with anything else (the system's temp directory) loses nothing of theirs.
"""

from __future__ import annotations

import os
import re
import stat
import time
import uuid
from pathlib import Path

SPOOL_PREFIX = "jobserver-upload-"
MIN_SECONDS = 900.0

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_SHARD = re.compile(r"[0-9a-f]{2}")
_TEMP = re.compile(rf"\.({_UUID})\.tmp")
_SPOOL = re.compile(rf"{re.escape(SPOOL_PREFIX)}{_UUID}")


def bound(unattached_seconds: float) -> float:
    """How old (mtime, seconds) a leftover must be before it is removed."""
    return max(unattached_seconds, MIN_SECONDS)


def temp_name(blob_id: uuid.UUID) -> str:
    """A directory blob's name while it is written, beside its final name."""
    return f".{blob_id}.tmp"


def spool_name(file_id: uuid.UUID | None = None) -> str:
    """A spool file's name (of a new id when none is given): the only shape
    `sweep_spool_files` removes."""
    return f"{SPOOL_PREFIX}{file_id or uuid.uuid4()}"


def sweep_blob_temps(root: Path, older_than: float, now: float | None = None) -> int:
    """Remove the temporary names under BLOB_DIR older than `older_than` seconds; returns how
    many went. Blocking: call it in a thread."""
    cutoff = (time.time() if now is None else now) - older_than
    removed = 0
    for shard in _entries(root):
        if _SHARD.fullmatch(shard.name) is None or not shard.is_dir(follow_symlinks=False):
            continue
        for entry in _entries(Path(shard.path)):
            m = _TEMP.fullmatch(entry.name)
            if m is not None and m.group(1)[:2] == shard.name and _remove_old(entry, cutoff):
                removed += 1
    return removed


def sweep_spool_files(directory: Path, older_than: float, now: float | None = None) -> int:
    """Remove this project's spool files in `directory` older than `older_than` seconds;
    returns how many went. Blocking: call it in a thread."""
    cutoff = (time.time() if now is None else now) - older_than
    return sum(
        1
        for entry in _entries(directory)
        if _SPOOL.fullmatch(entry.name) is not None and _remove_old(entry, cutoff)
    )


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _remove_old(entry: os.DirEntry[str], cutoff: float) -> bool:
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_mtime >= cutoff:
        return False
    try:
        os.unlink(entry.path)
    except OSError:  # gone meanwhile (someone else's count), or not ours to remove
        return False
    return True
