"""saved jobs with execution history; explicit retry delays

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 07:00:00

- `saved_jobs`: named, reusable job configurations per owner (name unique per owner), with an
  optional trigger (`cron` + `timezone`, or `every_seconds`).
- `schedules.saved_job_id` (unique, ON DELETE CASCADE): the schedule a saved job's trigger
  owns; `schedules.job_owner`: the owner of the jobs it fires (NULL: system:scheduler);
  `schedules.timeout_seconds`, `schedules.retry_delays`: stamped on the jobs it fires.
- `jobs.retry_delays`: a job's own retry delays in seconds (NULL: its definition's back-off).
- `jobs.saved_job_id`, `jobs.retry_of`: the saved job that made a job and the execution a retry
  repeats; plain references (no foreign keys), with a partial index for a saved job's
  executions. All three are NULL for other jobs, which therefore cost nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True, default: bool = False) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.text("now()") if default else None,
    )


def upgrade() -> None:
    op.create_table(
        "saved_jobs",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("definition_key", sa.Text(), nullable=False),
        sa.Column("definition_version", sa.Integer(), nullable=True),
        sa.Column("params", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("tags", ARRAY(sa.Text()), nullable=True),
        sa.Column("max_attempts", sa.Integer(), nullable=True),
        sa.Column("timeout_seconds", sa.Float(), nullable=True),
        sa.Column("retry_delays", ARRAY(sa.Float()), nullable=True),
        sa.Column("cron", sa.Text(), nullable=True),
        sa.Column("every_seconds", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.Text(), nullable=False, server_default=sa.text("'UTC'")),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_by", sa.Text(), nullable=True),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        sa.CheckConstraint(
            "cron IS NULL OR every_seconds IS NULL", name="saved_jobs_one_trigger_check"
        ),
    )
    op.create_index("saved_jobs_owner_name_idx", "saved_jobs", ["owner", "name"], unique=True)

    op.add_column("schedules", sa.Column("timeout_seconds", sa.Float(), nullable=True))
    op.add_column("schedules", sa.Column("retry_delays", ARRAY(sa.Float()), nullable=True))
    op.add_column(
        "schedules",
        sa.Column(
            "saved_job_id",
            UUID(as_uuid=True),
            sa.ForeignKey("saved_jobs.id", ondelete="CASCADE", name="schedules_saved_job_id_fkey"),
            nullable=True,
        ),
    )
    op.add_column("schedules", sa.Column("job_owner", sa.Text(), nullable=True))
    op.create_index(
        "schedules_saved_job_idx",
        "schedules",
        ["saved_job_id"],
        unique=True,
        postgresql_where=sa.text("saved_job_id IS NOT NULL"),
    )

    op.add_column("jobs", sa.Column("retry_delays", ARRAY(sa.Float()), nullable=True))
    op.add_column("jobs", sa.Column("saved_job_id", UUID(as_uuid=True), nullable=True))
    op.add_column("jobs", sa.Column("retry_of", UUID(as_uuid=True), nullable=True))
    op.create_index(
        "jobs_saved_job_idx",
        "jobs",
        ["saved_job_id", "id"],
        postgresql_where=sa.text("saved_job_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("jobs_saved_job_idx", table_name="jobs")
    for column in ("retry_of", "saved_job_id", "retry_delays"):
        op.drop_column("jobs", column)
    op.drop_index("schedules_saved_job_idx", table_name="schedules")
    for column in ("job_owner", "saved_job_id", "retry_delays", "timeout_seconds"):
        op.drop_column("schedules", column)
    op.drop_index("saved_jobs_owner_name_idx", table_name="saved_jobs")
    op.drop_table("saved_jobs")
