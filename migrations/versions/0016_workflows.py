"""stored workflows: versioned DAGs of steps, their runs and the jobs of each run

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 20:00:00

- `workflows`: a named workflow per owner (name unique among the live ones) with its latest
  version's steps; DELETE is soft (`deleted_at`), so runs keep their version.
- `workflow_versions`: every version of a workflow (the steps a run follows).
- `workflow_runs`: one run of one version (input, priority, the resolved plan of its steps,
  the run's own job, an idempotency key unique per owner).
- `workflow_run_jobs`: the jobs of a run by step (and forEach item), and the expander job of a
  step made once its parents end; the primary key keeps an expander from adding a step twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0016"
down_revision: str | None = "0015"
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
        "workflows",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("steps", JSONB(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_by", sa.Text(), nullable=True),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        _ts("deleted_at"),
    )
    op.create_index(
        "workflows_owner_name_idx",
        "workflows",
        ["owner", "name"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "workflow_versions",
        sa.Column(
            "workflow_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "workflows.id", ondelete="CASCADE", name="workflow_versions_workflow_id_fkey"
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("steps", JSONB(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        _ts("created_at", nullable=False, default=True),
        sa.PrimaryKeyConstraint("workflow_id", "version", name="workflow_versions_pkey"),
    )
    op.create_table(
        "workflow_runs",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("workflow_id", UUID(as_uuid=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("input_data", JSONB(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("plan", JSONB(), nullable=False),
        sa.Column("job_id", UUID(as_uuid=True), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("request_fingerprint", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=True),
        _ts("created_at", nullable=False, default=True),
        _ts("cancelled_at"),
        sa.ForeignKeyConstraint(
            ["workflow_id", "version"],
            ["workflow_versions.workflow_id", "workflow_versions.version"],
            ondelete="CASCADE",
            name="workflow_runs_version_fkey",
        ),
    )
    op.create_index("workflow_runs_workflow_idx", "workflow_runs", ["workflow_id", "id"])
    op.create_index(
        "workflow_runs_idempotency_idx",
        "workflow_runs",
        ["owner", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "workflow_run_jobs",
        sa.Column(
            "run_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "workflow_runs.id", ondelete="CASCADE", name="workflow_run_jobs_run_id_fkey"
            ),
            nullable=False,
        ),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("step", sa.Text(), nullable=False),
        sa.Column("item", sa.Integer(), nullable=False),
        sa.Column("job_id", UUID(as_uuid=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "kind", "step", "item", name="workflow_run_jobs_pkey"),
        sa.CheckConstraint("kind IN ('step', 'expand')", name="workflow_run_jobs_kind_check"),
    )


def downgrade() -> None:
    op.drop_table("workflow_run_jobs")
    op.drop_index("workflow_runs_idempotency_idx", table_name="workflow_runs")
    op.drop_index("workflow_runs_workflow_idx", table_name="workflow_runs")
    op.drop_table("workflow_runs")
    op.drop_table("workflow_versions")
    op.drop_index("workflows_owner_name_idx", table_name="workflows")
    op.drop_table("workflows")
