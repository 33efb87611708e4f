"""stored credentials: SSH and SMTP secrets sealed under JOBSERVER_SECRET_KEY

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 07:00:00

- `credentials`: one row per named credential. `kind` (ssh, smtp), `username`, the pinned
  `host_keys` (SSH), the client key's `public_key` and its fingerprint, the names of the
  stored `secret_fields` and the `options` (SMTP host, port, tls) are plain; `secret` holds
  the secret fields sealed with AES-256-GCM under the key `key_id` names, bound to the row's
  name and kind (jobserver/credentials/crypto.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("host_keys", JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("public_key_fingerprint", sa.Text(), nullable=True),
        sa.Column(
            "secret_fields",
            ARRAY(sa.Text()),
            nullable=False,
            server_default=sa.text("'{}'::text[]"),
        ),
        sa.Column("options", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('ssh','smtp')", name="credentials_kind_check"),
    )


def downgrade() -> None:
    op.drop_table("credentials")
