"""outbound definitions and internal owners: job_definitions.outbound; system:* owners

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:30:00

- `job_definitions.outbound`: a definition that reaches the network; submitting its jobs needs
  the token capability `outbound`. Rows of `call.api` already stored are marked (their
  fingerprint is kept: `register-definitions` reports a conflict until `--force`, and the flag
  must hold meanwhile).
- Internal owners move to values no token can take (`jobserver.owners`): jobs and dead letters
  owned by `scheduler` become `system:scheduler`, by `anonymous` `system:anonymous`, and the
  jobs.owner default follows. Tokens whose owner is such a word are refused at authentication.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RENAMES = (("scheduler", "system:scheduler"), ("anonymous", "system:anonymous"))


def upgrade() -> None:
    op.add_column(
        "job_definitions",
        sa.Column("outbound", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    op.execute("UPDATE job_definitions SET outbound = true WHERE key = 'call.api'")
    op.alter_column("jobs", "owner", server_default=sa.text("'system:anonymous'"))
    for table in ("jobs", "dead_letter_jobs"):
        for old, new in RENAMES:
            op.execute(f"UPDATE {table} SET owner = '{new}' WHERE owner = '{old}'")


def downgrade() -> None:
    for table in ("jobs", "dead_letter_jobs"):
        for old, new in RENAMES:
            op.execute(f"UPDATE {table} SET owner = '{old}' WHERE owner = '{new}'")
    op.alter_column("jobs", "owner", server_default=sa.text("'anonymous'"))
    op.drop_column("job_definitions", "outbound")
