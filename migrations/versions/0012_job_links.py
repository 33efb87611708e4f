"""a job's metadata; the links of retried and cloned jobs

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 09:00:00

- `jobs.metadata`: the object a running job sets with `ctx.set_metadata({...})` (merged
  shallowly, fenced like progress; NULL until the job sets one).
- `jobs.retried_from`, `jobs.retried_as`: a retry (`POST /v1/jobs/{id}/retry`) and the job it
  repeats, linked both ways; `jobs.cloned_from`: the job a clone used as its template.

All four are nullable without a default, so adding them rewrites nothing and the insert and
claim paths write nothing more for the jobs that have none. They are plain references (no
foreign keys, no indexes): a retry is looked up by the id it holds, and deleting or pruning a
job never rewrites the jobs that name it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINKS = ("retried_from", "retried_as", "cloned_from")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("metadata", JSONB(), nullable=True))
    for column in LINKS:
        op.add_column("jobs", sa.Column(column, UUID(as_uuid=True), nullable=True))


def downgrade() -> None:
    for column in (*reversed(LINKS), "metadata"):
        op.drop_column("jobs", column)
