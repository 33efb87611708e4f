"""rate limits: at most N starts per period, per definition (and key), enforced in the claim

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 14:00:00

- `jobs.rate_bucket`, `jobs.rate_limit`, `jobs.rate_period`: the bucket a rate-limited job
  counts against (its definition key, plus the key taken from its params) and its N starts per
  period (seconds), computed at submission. NULL for unlimited jobs (the common case).
- `jobs_rate_queued_idx`: queued rate-limited rows per bucket in claim order, for the rated
  claim only (its predicate keeps every other claim and count off it).
- `jobs_rate_owner_queued_idx`: the same rows per owner in claim order: the rated claim's walk
  of owners and each owner's fair share (as jobs_owner_queued_idx for the ordinary claim).
- `rate_limit_starts`: the sliding log of starts, one row per rated claim of a job, kept until
  `expires_at` (its start plus its period); the pruner deletes older rows.
- `job_definitions.rate_limit`, `saved_jobs.rate_limit`: the declared limits (JSON);
  `schedules.rate_limit`: a saved job's own (lowered) one, copied to the schedule its trigger
  owns, so its fires count under it (NULL: the definition's).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("rate_bucket", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("rate_limit", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("rate_period", sa.Float(), nullable=True))
    op.create_check_constraint(
        "jobs_rate_limit_check",
        "jobs",
        "(rate_bucket IS NULL) = (rate_limit IS NULL)"
        " AND (rate_limit IS NULL) = (rate_period IS NULL)"
        " AND (rate_limit IS NULL OR (rate_limit >= 1 AND rate_period > 0))",
    )
    op.create_index(
        "jobs_rate_queued_idx",
        "jobs",
        ["rate_bucket", sa.text("priority DESC"), "run_at", "id"],
        postgresql_where=sa.text("status = 'queued' AND rate_bucket IS NOT NULL"),
    )
    op.create_index(
        "jobs_rate_owner_queued_idx",
        "jobs",
        ["owner", sa.text("priority DESC"), "run_at", "id"],
        postgresql_where=sa.text("status = 'queued' AND rate_bucket IS NOT NULL"),
    )
    op.create_table(
        "rate_limit_starts",
        sa.Column("bucket", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("rate_limit_starts_bucket_idx", "rate_limit_starts", ["bucket", "started_at"])
    op.create_index("rate_limit_starts_expires_idx", "rate_limit_starts", ["expires_at"])
    op.add_column("job_definitions", sa.Column("rate_limit", JSONB(), nullable=True))
    op.add_column("saved_jobs", sa.Column("rate_limit", JSONB(), nullable=True))
    op.add_column("schedules", sa.Column("rate_limit", JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("schedules", "rate_limit")
    op.drop_column("saved_jobs", "rate_limit")
    op.drop_column("job_definitions", "rate_limit")
    op.drop_index("rate_limit_starts_expires_idx", table_name="rate_limit_starts")
    op.drop_index("rate_limit_starts_bucket_idx", table_name="rate_limit_starts")
    op.drop_table("rate_limit_starts")
    op.drop_index("jobs_rate_owner_queued_idx", table_name="jobs")
    op.drop_index("jobs_rate_queued_idx", table_name="jobs")
    op.drop_constraint("jobs_rate_limit_check", "jobs")
    op.drop_column("jobs", "rate_period")
    op.drop_column("jobs", "rate_limit")
    op.drop_column("jobs", "rate_bucket")
