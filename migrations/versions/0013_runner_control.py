"""runner control: commands and replies; durable per-queue pause

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 10:30:00

- `runner_commands`: a command (ping, status, shutdown, pause, resume, reload, ...) for one
  worker (`target`) or all (NULL), announced on the control channel by NOTIFY with its id.
- `runner_replies`: one row per worker that acted on a command (FK, ON DELETE CASCADE).
- `paused_queues`: queues no worker claims until they are resumed (their row deleted).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "0013"
down_revision: str | None = "0012"
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
        "runner_commands",
        sa.Column(
            "id", UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")
        ),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("args", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        _ts("created_at", nullable=False, default=True),
        sa.Column("created_by", sa.Text(), nullable=True),
    )
    op.create_index("runner_commands_created_idx", "runner_commands", ["created_at"])
    op.create_table(
        "runner_replies",
        sa.Column(
            "command_id",
            UUID(as_uuid=True),
            sa.ForeignKey(
                "runner_commands.id", ondelete="CASCADE", name="runner_replies_command_id_fkey"
            ),
            nullable=False,
        ),
        sa.Column("worker_id", sa.Text(), nullable=False),
        sa.Column("reply", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        _ts("answered_at", nullable=False, default=True),
        sa.PrimaryKeyConstraint("command_id", "worker_id", name="runner_replies_pkey"),
    )
    op.create_table(
        "paused_queues",
        sa.Column("queue", sa.Text(), primary_key=True),
        _ts("paused_at", nullable=False, default=True),
        sa.Column("paused_by", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("paused_queues")
    op.drop_table("runner_replies")
    op.drop_index("runner_commands_created_idx", table_name="runner_commands")
    op.drop_table("runner_commands")
