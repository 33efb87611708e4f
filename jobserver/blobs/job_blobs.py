"""`JobBlobs`: the blob store as a running job sees it (`ctx.blobs`).

    blob = await ctx.blobs.get(blob_id)              # this job's or its owner's, else BlobNotFound
    path = await ctx.blobs.download(blob_id, path)   # copy an input to a local file
    async for chunk in ctx.blobs.read(blob_id, start, end): ...
    out = await ctx.blobs.save_file(path, filename="out.mp4", content_type="video/mp4")
    out = await ctx.blobs.save_stream(chunks, filename="out.txt", content_type="text/plain")
    outputs = await ctx.blobs.attached("output")     # the job's blobs (of a role)

A blob id may be a UUID or its string (as params carry it); a malformed one is `BlobNotFound`.
A job sees the blobs attached to it and the blobs of its owner (an upload it was given), no
others: another owner's blob is `BlobNotFound` like a missing one. Saved blobs (role "output"
unless told) are attached to the job and belong to its owner, read once from the job's row
when first needed. They are fenced like every write a worker makes about its job: a worker
that no longer holds the attempt keeps nothing and gets `BlobFenced`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterable
from pathlib import Path

from jobserver.blobs.models import Blob, BlobNotFound
from jobserver.blobs.names import DEFAULT_CONTENT_TYPE
from jobserver.blobs.store import BlobStore
from jobserver.db import blobs as sql


class JobBlobs:
    __slots__ = ("_owner", "fence", "job_id", "store")

    def __init__(self, store: BlobStore, job_id: uuid.UUID, *, worker_id: str, attempt: int):
        self.store = store
        self.job_id = job_id
        self.fence = sql.Fence(worker_id, attempt)
        self._owner: str | None = None

    async def owner(self) -> str:
        """The job's owner (read from its row once)."""
        if self._owner is None:
            owner = await sql.blob_job_owner(self.store.pool, self.job_id)
            if owner is None:
                raise BlobNotFound(self.job_id, "no such job")
            self._owner = owner
        return self._owner

    async def get(self, blob_id: uuid.UUID | str) -> Blob:
        """The blob, when it is this job's or its owner's; else BlobNotFound."""
        key = _blob_id(blob_id)
        blob = await self.store.get(key)
        if blob is None:
            raise BlobNotFound(blob_id)
        if blob.job_id != self.job_id and blob.owner != await self.owner():
            raise BlobNotFound(blob_id)
        return blob

    async def attached(self, role: str | None = None) -> list[Blob]:
        """The blobs attached to this job (of one role when given), oldest first."""
        return await self.store.for_job(self.job_id, role)

    async def download(self, blob_id: uuid.UUID | str, path: Path | str) -> Path:
        """Copy the blob to a local file; returns its path."""
        return await self.store.to_file(await self.get(blob_id), path)

    async def read(
        self,
        blob_id: uuid.UUID | str,
        start: int = 0,
        end: int | None = None,
        chunk_size: int = 1 << 20,
    ) -> AsyncGenerator[bytes, None]:
        """Bytes [start, end) of the blob, in chunks (see `BlobStore.read`)."""
        blob = await self.get(blob_id)
        async for chunk in self.store.read(blob, start, end, chunk_size):
            yield chunk

    async def save_stream(
        self,
        chunks: AsyncIterable[bytes],
        *,
        filename: str,
        content_type: str = DEFAULT_CONTENT_TYPE,
        role: str = "output",
        max_bytes: int | None = None,
    ) -> Blob:
        """Store the stream as a blob of this job (BlobTooLarge past the cap)."""
        return await self.store.put_stream(
            chunks,
            owner=await self.owner(),
            filename=filename,
            content_type=content_type,
            job_id=self.job_id,
            role=role,
            max_bytes=max_bytes,
            fence=self.fence,
        )

    async def save_file(
        self,
        path: Path | str,
        *,
        filename: str | None = None,
        content_type: str = DEFAULT_CONTENT_TYPE,
        role: str = "output",
        max_bytes: int | None = None,
    ) -> Blob:
        """Store a local file as a blob of this job (named after the file unless told)."""
        return await self.store.put_file(
            path,
            owner=await self.owner(),
            filename=filename if filename is not None else Path(path).name,
            content_type=content_type,
            job_id=self.job_id,
            role=role,
            max_bytes=max_bytes,
            fence=self.fence,
        )


def _blob_id(value: uuid.UUID | str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BlobNotFound(value, "not a blob id") from None
