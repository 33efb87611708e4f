"""per-owner quotas and fair claims: api_tokens.max_running / max_queued; jobs_owner_queued_idx

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 01:30:00

- `api_tokens.max_running`, `api_tokens.max_queued`: a token owner's quotas (NULL = the
  OWNER_MAX_RUNNING / OWNER_MAX_QUEUED defaults). Running is enforced at claim time across the
  fleet, queued at submission (429 quota_exceeded).
- `jobs_owner_queued_idx`: each owner's queued rows in claim order, for fair claims (a share per
  owner) and for counting an owner's queued jobs against its quota.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for column in ("max_running", "max_queued"):
        op.add_column("api_tokens", sa.Column(column, sa.Integer(), nullable=True))
        op.create_check_constraint(f"api_tokens_{column}_check", "api_tokens", f"{column} >= 1")
    op.create_index(
        "jobs_owner_queued_idx",
        "jobs",
        ["owner", sa.text("priority DESC"), "run_at", "id"],
        postgresql_where=sa.text("status = 'queued'"),
    )


def downgrade() -> None:
    op.drop_index("jobs_owner_queued_idx", table_name="jobs")
    for column in ("max_queued", "max_running"):
        op.drop_constraint(f"api_tokens_{column}_check", "api_tokens")
        op.drop_column("api_tokens", column)
