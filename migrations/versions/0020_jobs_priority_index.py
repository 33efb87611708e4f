"""the job list in priority order: an index of the jobs whose priority is not the default

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 09:30:00

`GET /v1/jobs?sortBy=priority` sorted the whole table (37.8 s at 10 million rows). The list now
reads, in order, the jobs above priority 0 from this index, the jobs at 0 by primary key (ids
are time-ordered), and the jobs below 0 from this index again (db/jobs.py `job_list`). Partial:
jobs at the default priority, nearly all of them, write no entry here, so neither a submission
nor a status change of such a job pays for it. The predicate is written `abs(priority) > 0`,
which only the list states: the claim and a queued job's position (`priority > $1`, a value
that may be 0) cannot prove it, so no plan of theirs can walk this index of finished jobs.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE INDEX jobs_priority_idx ON jobs (priority, id) WHERE abs(priority) > 0")


def downgrade() -> None:
    op.execute("DROP INDEX jobs_priority_idx")
