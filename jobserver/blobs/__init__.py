"""Blob storage: files any definition can take and produce, stored so that an API on one host
and a worker on another see the same bytes (PostgreSQL large objects by default, or files
under a shared BLOB_DIR). One table, `blobs`, describes every blob whatever holds its bytes.

- `BlobStore` (store.py): put, read, copy out, attach to a job, delete, expire, sweep
- `JobBlobs` (job_blobs.py): `ctx.blobs` of a running job, bound to its job and owner
- `Blob`, `BlobTooLarge`, `BlobNotFound`, `BlobFenced`, `BlobOptions` (models.py)
- `safe_filename`, `safe_content_type` (names.py)
"""

from jobserver.blobs.job_blobs import JobBlobs
from jobserver.blobs.models import Blob, BlobFenced, BlobNotFound, BlobOptions, BlobTooLarge
from jobserver.blobs.names import safe_content_type, safe_filename
from jobserver.blobs.store import BlobStore

__all__ = [
    "Blob",
    "BlobFenced",
    "BlobNotFound",
    "BlobOptions",
    "BlobStore",
    "BlobTooLarge",
    "JobBlobs",
    "safe_content_type",
    "safe_filename",
]
