"""audit log: the rows log.message jobs write, searched by GET /v1/logs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 07:00:00

- `audit_log`: one structured row per `log.message` job (level, category, message, metadata,
  and the job's id, owner and definition). No foreign key to `jobs`: a row outlives its job.
- Indexes: (created_at, id) for newest-first paging, the time window and pruning; (category,
  created_at, id); a partial (created_at, id) index of warn and error rows; a unique partial
  index on job_id (one row per job; the jobId filter); and a trigram GIN index on `message` for
  case-insensitive text search (`ILIKE '%text%'`).
- `pg_trgm` is created if missing and the server has it; without it (the embedded PostgreSQL
  of `jobserver up` ships no contrib modules) the trigram index is left out and text search
  scans the rows its other filters leave. It ships with PostgreSQL itself (contrib: part of the server
  package on Debian and Ubuntu, of the official image, and of RDS, Cloud SQL and Azure), and is
  a trusted extension since PostgreSQL 13, so the database's owner creates it without being a
  superuser. The downgrade leaves the extension in place: other schemas may use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _trigrams_available() -> bool:
    found = op.get_bind().execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    )
    return found.scalar() is not None


def upgrade() -> None:
    trigrams = _trigrams_available()
    if trigrams:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("metadata", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("job_id", UUID(as_uuid=True), nullable=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("definition", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "level IN ('debug','info','warn','error')", name="audit_log_level_check"
        ),
    )
    op.create_index("audit_log_created_idx", "audit_log", ["created_at", "id"])
    op.create_index("audit_log_category_idx", "audit_log", ["category", "created_at", "id"])
    op.create_index(
        "audit_log_serious_idx",
        "audit_log",
        ["created_at", "id"],
        postgresql_where=sa.text("level IN ('warn', 'error')"),
    )
    op.create_index(
        "audit_log_job_idx",
        "audit_log",
        ["job_id"],
        unique=True,
        postgresql_where=sa.text("job_id IS NOT NULL"),
    )
    if not trigrams:
        return
    op.create_index(
        "audit_log_message_trgm_idx",
        "audit_log",
        ["message"],
        postgresql_using="gin",
        postgresql_ops={"message": "gin_trgm_ops"},
    )


def downgrade() -> None:
    op.drop_table("audit_log")  # its indexes go with it
