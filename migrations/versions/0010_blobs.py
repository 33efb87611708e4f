"""blobs: files jobs take and produce, in large objects or under BLOB_DIR

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 07:00:00

- `blobs`: one row per file whatever holds its bytes: a PostgreSQL large object (`storage`
  'lo', `lo_oid`) or a file under BLOB_DIR (`storage` 'dir', `path` relative to it). `job_id`
  references `jobs` ON DELETE CASCADE (NULL until a job takes the blob). Indexes: `job_id`
  (a job's files, the cascade), and a partial index on `created_at` of the rows no job took,
  for the scheduler's expiry.
- `blob_garbage`: paths of deleted directory blobs, waiting for the scheduler to remove the
  file (then the row): only a process that has BLOB_DIR can.
- `blobs_free()`, a trigger AFTER DELETE on `blobs` (plain plpgsql: the embedded PostgreSQL
  has no contrib modules, so no `lo_manage`): unlinks the row's large object (when it still
  exists), or queues the row's file in `blob_garbage`. So the bytes go with the row however it
  goes: a delete, the cascade from a pruned job, the expiry of an unattached upload.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import OID, UUID

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FREE = """
CREATE FUNCTION blobs_free() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.storage = 'lo' THEN
        -- lo_unlink raises for an object that is gone already: check first
        IF EXISTS (SELECT 1 FROM pg_largeobject_metadata WHERE oid = OLD.lo_oid) THEN
            PERFORM lo_unlink(OLD.lo_oid);
        END IF;
    ELSIF OLD.path IS NOT NULL THEN
        INSERT INTO blob_garbage (path) VALUES (OLD.path);
    END IF;
    RETURN NULL;
END
$$
"""


def _ts(name: str) -> sa.Column[object]:
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
    )


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column(
            "job_id",
            UUID(as_uuid=True),
            sa.ForeignKey("jobs.id", ondelete="CASCADE", name="blobs_job_id_fkey"),
            nullable=True,
        ),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("storage", sa.Text(), nullable=False),
        sa.Column("lo_oid", OID(), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        _ts("created_at"),
        sa.CheckConstraint("storage IN ('lo','dir')", name="blobs_storage_check"),
        sa.CheckConstraint(
            "(storage = 'lo' AND lo_oid IS NOT NULL AND path IS NULL)"
            " OR (storage = 'dir' AND path IS NOT NULL AND lo_oid IS NULL)",
            name="blobs_location_check",
        ),
        sa.CheckConstraint("size >= 0", name="blobs_size_check"),
        sa.CheckConstraint("char_length(role) BETWEEN 1 AND 32", name="blobs_role_check"),
    )
    op.create_index("blobs_job_idx", "blobs", ["job_id"])
    op.create_index(
        "blobs_unattached_idx",
        "blobs",
        ["created_at"],
        postgresql_where=sa.text("job_id IS NULL"),
    )
    op.create_table(
        "blob_garbage",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("path", sa.Text(), nullable=False),
        _ts("created_at"),
    )
    op.execute(_FREE)
    op.execute(
        "CREATE TRIGGER blobs_free AFTER DELETE ON blobs FOR EACH ROW EXECUTE FUNCTION blobs_free()"
    )


def downgrade() -> None:
    op.execute("DELETE FROM blobs")  # the trigger unlinks the large objects
    op.execute("DROP TRIGGER blobs_free ON blobs")
    op.execute("DROP FUNCTION blobs_free()")
    op.drop_table("blob_garbage")
    op.drop_index("blobs_unattached_idx", table_name="blobs")
    op.drop_index("blobs_job_idx", table_name="blobs")
    op.drop_table("blobs")
