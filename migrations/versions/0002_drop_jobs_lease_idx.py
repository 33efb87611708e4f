"""drop jobs_lease_idx: claims write one index entry less, heartbeats can be HOT updates

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 14:30:00

Every claim wrote an entry into jobs_lease_idx, and every heartbeat changed its key, so no
heartbeat could be a heap-only (HOT) update (one that writes no index entry when the row's
page has room). The rescuer, its only reader, finds held rows
through jobs_held_idx instead (they are few: what the workers hold right now).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(
        "jobs_lease_idx",
        table_name="jobs",
        postgresql_where=sa.text("status IN ('running', 'cancelling')"),
    )


def downgrade() -> None:
    op.create_index(
        "jobs_lease_idx",
        "jobs",
        ["lease_expires_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('running', 'cancelling')"),
    )
