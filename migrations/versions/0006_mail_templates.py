"""mail templates: named subject/text/html templates for mail.send jobs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 07:00:00

- `mail_templates`: one row per template, keyed by `name`; `subject` and at least one of
  `text`/`html` (Jinja2 sources, rendered by the worker with the job's `variables`), a
  `description`, and who created and last changed it (`created_by`/`updated_by`: the owners of
  the tokens) and when.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mail_templates",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False, server_default=sa.text("''")),
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
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "text IS NOT NULL OR html IS NOT NULL", name="mail_templates_body_check"
        ),
    )


def downgrade() -> None:
    op.drop_table("mail_templates")
