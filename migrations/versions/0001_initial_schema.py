"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 07:35:50.595689
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column(
            "scopes",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "dead_letter_jobs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("definition_key", sa.Text(), nullable=False),
        sa.Column("definition_version", sa.Integer(), nullable=False),
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "history",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "failed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("redriven_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redriven_job_id", sa.UUID(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "dead_letter_jobs_definition_idx",
        "dead_letter_jobs",
        ["definition_key", "failed_at"],
        unique=False,
    )
    op.create_index("dead_letter_jobs_failed_idx", "dead_letter_jobs", ["failed_at"], unique=False)
    op.create_table(
        "job_definitions",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "default_max_attempts", sa.Integer(), server_default=sa.text("3"), nullable=False
        ),
        sa.Column("timeout_seconds", sa.Float(), nullable=True),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("params_schema", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("backoff", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column(
            "registered_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "concurrency_limit IS NULL OR concurrency_limit >= 1",
            name="job_definitions_concurrency_check",
        ),
        sa.CheckConstraint("default_max_attempts >= 1", name="job_definitions_attempts_check"),
        sa.CheckConstraint("version >= 1", name="job_definitions_version_check"),
        sa.PrimaryKeyConstraint("key", "version", name="job_definitions_pkey"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("definition_key", sa.Text(), nullable=False),
        sa.Column("definition_version", sa.Integer(), nullable=False),
        sa.Column("queue", sa.Text(), server_default=sa.text("'default'"), nullable=False),
        sa.Column(
            "params",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), server_default=sa.text("'queued'"), nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column(
            "run_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("timeout_seconds", sa.Float(), nullable=True),
        sa.Column("owner", sa.Text(), server_default=sa.text("'anonymous'"), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("request_fingerprint", sa.Text(), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("progress", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("worker_id", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("schedule_name", sa.Text(), nullable=True),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("redriven_from", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('queued','running','cancelling','succeeded','failed','cancelled','expired')",
            name="jobs_status_check",
        ),
        sa.CheckConstraint("attempt >= 0", name="jobs_attempt_check"),
        sa.CheckConstraint("max_attempts >= 1", name="jobs_max_attempts_check"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "jobs_expiry_idx",
        "jobs",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'queued' AND expires_at IS NOT NULL"),
    )
    op.create_index(
        "jobs_finished_idx",
        "jobs",
        ["finished_at"],
        unique=False,
        postgresql_where=sa.text("finished_at IS NOT NULL"),
    )
    op.create_index(
        "jobs_held_idx",
        "jobs",
        ["worker_id"],
        unique=False,
        postgresql_where=sa.text("status IN ('running', 'cancelling')"),
    )
    op.create_index(
        "jobs_idempotency_idx",
        "jobs",
        ["owner", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index(
        "jobs_lease_idx",
        "jobs",
        ["lease_expires_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('running', 'cancelling')"),
    )
    op.create_index("jobs_owner_idx", "jobs", ["owner", "id"], unique=False)
    op.create_index(
        "jobs_ready_idx",
        "jobs",
        [sa.literal_column("priority DESC"), "run_at", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "jobs_schedule_fire_idx",
        "jobs",
        ["schedule_name", "scheduled_for"],
        unique=True,
        postgresql_where=sa.text("schedule_name IS NOT NULL"),
    )
    op.create_index(
        "jobs_settled_idx",
        "jobs",
        ["status", "id"],
        unique=False,
        postgresql_where=sa.text("status IN ('failed', 'cancelled', 'expired')"),
    )
    op.create_table(
        "scheduler_leader",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column(
            "acquired_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "schedules",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("cron", sa.Text(), nullable=True),
        sa.Column("every_seconds", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.Text(), server_default=sa.text("'UTC'"), nullable=False),
        sa.Column("definition_key", sa.Text(), nullable=False),
        sa.Column("definition_version", sa.Integer(), nullable=True),
        sa.Column(
            "params",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("queue", sa.Text(), server_default=sa.text("'default'"), nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("overlap_policy", sa.Text(), server_default=sa.text("'allow'"), nullable=False),
        sa.Column("catchup_policy", sa.Text(), server_default=sa.text("'latest'"), nullable=False),
        sa.Column("catchup_limit", sa.Integer(), server_default=sa.text("10"), nullable=False),
        sa.Column("source", sa.Text(), server_default=sa.text("'api'"), nullable=False),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_job_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "catchup_policy IN ('none','latest','all')", name="schedules_catchup_check"
        ),
        sa.CheckConstraint("overlap_policy IN ('allow','skip')", name="schedules_overlap_check"),
        sa.CheckConstraint(
            "(cron IS NULL) <> (every_seconds IS NULL)", name="schedules_cron_or_every_check"
        ),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index(
        "schedules_due_idx",
        "schedules",
        ["next_fire_at"],
        unique=False,
        postgresql_where=sa.text("enabled"),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queues", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column(
            "definitions",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), server_default=sa.text("'active'"), nullable=False),
        sa.Column("running", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_concurrency", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('active','stopping','stopped','gone')", name="workers_status_check"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "job_attempts",
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Text(), nullable=True),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), server_default=sa.text("'running'"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="job_attempts_job_id_fkey", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "attempt", name="job_attempts_pkey"),
    )
    op.create_table(
        "job_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("worker_id", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="job_events_job_id_fkey", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("job_events_job_idx", "job_events", ["job_id", "id"], unique=False)
    op.create_table(
        "job_counts_pruned",
        sa.Column("definition_key", sa.Text(), nullable=False),
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("jobs", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("attempts", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("retries", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("rescues", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("definition_key", "queue", "status", name="job_counts_pruned_pkey"),
    )


def downgrade() -> None:
    op.drop_table("job_counts_pruned")
    op.drop_index("job_events_job_idx", table_name="job_events")
    op.drop_table("job_events")
    op.drop_table("job_attempts")
    op.drop_table("workers")
    op.drop_index("schedules_due_idx", table_name="schedules", postgresql_where=sa.text("enabled"))
    op.drop_table("schedules")
    op.drop_table("scheduler_leader")
    op.drop_index(
        "jobs_settled_idx",
        table_name="jobs",
        postgresql_where=sa.text("status IN ('failed', 'cancelled', 'expired')"),
    )
    op.drop_index(
        "jobs_schedule_fire_idx",
        table_name="jobs",
        postgresql_where=sa.text("schedule_name IS NOT NULL"),
    )
    op.drop_index(
        "jobs_ready_idx", table_name="jobs", postgresql_where=sa.text("status = 'queued'")
    )
    op.drop_index("jobs_owner_idx", table_name="jobs")
    op.drop_index(
        "jobs_lease_idx",
        table_name="jobs",
        postgresql_where=sa.text("status IN ('running', 'cancelling')"),
    )
    op.drop_index(
        "jobs_idempotency_idx",
        table_name="jobs",
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.drop_index(
        "jobs_held_idx",
        table_name="jobs",
        postgresql_where=sa.text("status IN ('running', 'cancelling')"),
    )
    op.drop_index("jobs_expiry_idx", table_name="jobs")
    op.drop_index(
        "jobs_finished_idx", table_name="jobs", postgresql_where=sa.text("finished_at IS NOT NULL")
    )
    op.drop_table("jobs")
    op.drop_table("job_definitions")
    op.drop_index("dead_letter_jobs_failed_idx", table_name="dead_letter_jobs")
    op.drop_index("dead_letter_jobs_definition_idx", table_name="dead_letter_jobs")
    op.drop_table("dead_letter_jobs")
    op.drop_table("api_tokens")
