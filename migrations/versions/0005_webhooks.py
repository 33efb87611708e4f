"""webhook jobs: jobs.event / jobs.tags; schedules stamp them and stop after repeated failures

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 03:40:00

- `jobs.event`, `jobs.tags`: an optional event name and tags a client gives a job to find it
  again (filters of `GET /v1/jobs`; `event` is also a sort key). Both are NULL for jobs that
  carry none, so their partial indexes cost nothing for those jobs.
- `schedules.event`, `schedules.tags`: stamped on every job a schedule fires.
- `schedules.max_consecutive_failures` (NULL = the MAX_CONSECUTIVE_FAILURES default, 0 = never),
  `schedules.consecutive_failures`, `schedules.disabled_reason`, `schedules.disabled_at`: a
  recurring schedule whose runs keep failing is disabled with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("jobs", "schedules"):
        op.add_column(table, sa.Column("event", sa.Text(), nullable=True))
        op.add_column(table, sa.Column("tags", ARRAY(sa.Text()), nullable=True))
    op.create_index(
        "jobs_event_idx", "jobs", ["event", "id"], postgresql_where=sa.text("event IS NOT NULL")
    )
    op.create_index(
        "jobs_tags_idx",
        "jobs",
        ["tags"],
        postgresql_using="gin",
        postgresql_where=sa.text("tags IS NOT NULL"),
    )
    op.add_column("schedules", sa.Column("max_consecutive_failures", sa.Integer(), nullable=True))
    op.add_column(
        "schedules",
        sa.Column(
            "consecutive_failures", sa.Integer(), nullable=False, server_default=sa.text("0")
        ),
    )
    op.add_column("schedules", sa.Column("disabled_reason", sa.Text(), nullable=True))
    op.add_column("schedules", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        "schedules_max_failures_check",
        "schedules",
        "max_consecutive_failures >= 0",
    )


def downgrade() -> None:
    op.drop_constraint("schedules_max_failures_check", "schedules")
    for column in (
        "disabled_at",
        "disabled_reason",
        "consecutive_failures",
        "max_consecutive_failures",
    ):
        op.drop_column("schedules", column)
    op.drop_index("jobs_tags_idx", table_name="jobs")
    op.drop_index("jobs_event_idx", table_name="jobs")
    for table in ("schedules", "jobs"):
        op.drop_column(table, "tags")
        op.drop_column(table, "event")
