"""SQL for `blobs`, `blob_garbage` and the large objects that hold blob bytes.

Rows:
- `blob_insert`: the row of a blob whose bytes are written; with a fence (worker id, attempt)
  it is written only while that worker holds that attempt of the job, like every write a
  worker makes about its job (`status in (running, cancelling) AND worker_id = me AND
  attempt = n`); None when fenced off.
- `blob_get`, `blob_list_for_job` (oldest first), `blob_job_owner` (the owner of a job).
- `blob_attach`: an unattached blob becomes the job's, inside the caller's transaction (the
  job insert); the row lock makes it race-free against the expiry below.
- `blob_delete`: one blob; the trigger `blobs_free` (migration 0010) frees its bytes.
- `blob_delete_unattached`: one batch of blobs no job took, oldest first on
  `blobs_unattached_idx`, skipping rows a transaction is attaching right now.
- `blob_garbage_take` / `blob_garbage_forget`: a batch of files of deleted directory blobs
  (locked, SKIP LOCKED: run inside a transaction) and dropping their rows once removed.

Large objects (server functions, so they work over any connection and need no descriptor):
`large_object_create`, `large_object_put` (write at an offset), `large_object_get_pieces`
(read consecutive pieces of a range in one round trip), and `toast_lz4_available` /
`toast_use_lz4`: whether the server can compress with lz4, which writes large objects much
faster than the default pglz (set per transaction with SET LOCAL).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from jobserver.db.conn import Conn, ConnOrPool

COLUMNS = (
    "id, owner, job_id, role, filename, content_type, size, sha256, storage, lo_oid, path,"
    " created_at"
)


@dataclass(frozen=True)
class NewBlob:
    """A blob row to insert (its bytes are written already)."""

    id: uuid.UUID
    owner: str
    job_id: uuid.UUID | None
    role: str
    filename: str
    content_type: str
    size: int
    sha256: str
    storage: str  # 'lo' | 'dir'
    lo_oid: int | None = None
    path: str | None = None


@dataclass(frozen=True)
class Fence:
    """The attempt of a job a worker holds: its writes about the job are conditional on it."""

    worker_id: str
    attempt: int


_INSERT = """
INSERT INTO blobs (id, owner, job_id, role, filename, content_type, size, sha256, storage,
    lo_oid, path)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
WHERE $12::text IS NULL OR EXISTS (
    -- the fence: only the worker holding this attempt writes about the job
    SELECT 1 FROM jobs j
    WHERE j.id = $3 AND j.status IN ('running', 'cancelling') AND j.worker_id = $12
      AND j.attempt = $13
)
RETURNING created_at
"""


async def blob_insert(
    conn: ConnOrPool, row: NewBlob, fence: Fence | None = None
) -> dt.datetime | None:
    """Insert the row; returns its created_at, or None when the fence matched nothing."""
    created: dt.datetime | None = await conn.fetchval(
        _INSERT,
        row.id,
        row.owner,
        row.job_id,
        row.role,
        row.filename,
        row.content_type,
        row.size,
        row.sha256,
        row.storage,
        row.lo_oid,
        row.path,
        fence.worker_id if fence else None,
        fence.attempt if fence else None,
    )
    return created


async def blob_get(conn: ConnOrPool, blob_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM blobs WHERE id = $1", blob_id
    )
    return row


async def blob_list_for_job(
    conn: ConnOrPool, job_id: uuid.UUID, role: str | None = None
) -> list[asyncpg.Record]:
    """The job's blobs (of one role when given), oldest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {COLUMNS} FROM blobs WHERE job_id = $1 AND ($2::text IS NULL OR role = $2)"
        " ORDER BY created_at, id",
        job_id,
        role,
    )
    return rows


async def blob_job_owner(conn: ConnOrPool, job_id: uuid.UUID) -> str | None:
    """The owner of the job (None when there is no such job)."""
    owner: str | None = await conn.fetchval("SELECT owner FROM jobs WHERE id = $1", job_id)
    return owner


async def blob_attach(
    conn: Conn, blob_id: uuid.UUID, job_id: uuid.UUID, owner: str | None = None
) -> bool:
    """The unattached blob (of `owner`, when given) becomes the job's; False when it is gone,
    already attached, or another owner's."""
    status: str = await conn.execute(
        "UPDATE blobs SET job_id = $2 WHERE id = $1 AND job_id IS NULL"
        " AND ($3::text IS NULL OR owner = $3)",
        blob_id,
        job_id,
        owner,
    )
    return status == "UPDATE 1"


async def blob_delete(conn: ConnOrPool, blob_id: uuid.UUID) -> asyncpg.Record | None:
    """Delete one blob; returns its (storage, path), None when there was none."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "DELETE FROM blobs WHERE id = $1 RETURNING storage, path", blob_id
    )
    return row


async def blob_delete_unattached(conn: ConnOrPool, older_than_seconds: float, limit: int) -> int:
    """Delete one batch of blobs no job took within `older_than_seconds`; returns how many."""
    deleted: int = await conn.fetchval(
        """
        WITH victims AS (
            SELECT id FROM blobs
            WHERE job_id IS NULL AND created_at < now() - make_interval(secs => $1::float8)
            ORDER BY created_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        ), gone AS (
            -- re-checked on the locked row: a blob attached meanwhile stays
            DELETE FROM blobs b USING victims v WHERE b.id = v.id AND b.job_id IS NULL
            RETURNING 1
        )
        SELECT count(*) FROM gone
        """,
        float(older_than_seconds),
        limit,
    )
    return deleted


async def blob_garbage_take(conn: Conn, limit: int) -> list[asyncpg.Record]:
    """A batch of (id, path) of files to remove, oldest first, locked until the transaction
    ends (SKIP LOCKED: two sweepers never take the same rows)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, path FROM blob_garbage ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", limit
    )
    return rows


async def blob_garbage_forget(conn: ConnOrPool, ids: list[int]) -> int:
    """Drop the rows of files that were removed (or were gone already)."""
    status: str = await conn.execute("DELETE FROM blob_garbage WHERE id = ANY($1::bigint[])", ids)
    return int(status.split()[-1])


async def blob_garbage_forget_path(conn: ConnOrPool, path: str) -> int:
    """Drop the rows of one path whose file was just removed."""
    status: str = await conn.execute("DELETE FROM blob_garbage WHERE path = $1", path)
    return int(status.split()[-1])


# -- large objects ------------------------------------------------------------------------------


async def large_object_create(conn: Conn) -> int:
    """A new, empty large object; returns its oid."""
    oid: int = await conn.fetchval("SELECT lo_create(0)")
    return oid


async def large_object_put(conn: Conn, oid: int, offset: int, data: bytes) -> None:
    """Write `data` into the large object at `offset`."""
    await conn.execute("SELECT lo_put($1, $2, $3)", oid, offset, data)


_GET_PIECES = """
SELECT lo_get($1::oid, p, least($3::bigint, $4::bigint - p)::int)
FROM generate_series($2::bigint, $4::bigint - 1, $3::bigint) AS p
ORDER BY p
LIMIT $5
"""


async def large_object_get_pieces(
    conn: ConnOrPool, oid: int, offset: int, end: int, piece: int, count: int
) -> list[bytes]:
    """Up to `count` consecutive pieces of `piece` bytes from `offset`, none past `end`, in
    one round trip (one row each: a few rows of 256 KiB read faster than one big value)."""
    rows = await conn.fetch(_GET_PIECES, oid, offset, piece, end, count)
    return [r[0] for r in rows]


async def toast_lz4_available(conn: ConnOrPool) -> bool:
    """Whether this server was built with lz4 (`default_toast_compression` accepts it)."""
    found: bool | None = await conn.fetchval(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    )
    return bool(found)


async def toast_use_lz4(conn: Conn) -> None:
    """Compress this transaction's new TOAST and large object pages with lz4."""
    await conn.execute("SET LOCAL default_toast_compression = 'lz4'")
