"""jobs_queue_queued_idx: each queue's queued jobs by run time, for queue health and stats

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 11:00:00

`GET /v1/queues`, `/v1/queues/{name}/health` and `/v1/stats` count each queue's waiting jobs:
the ready ones (`run_at <= now()`) and the delayed ones, and find the oldest ready one. The
claim index (jobs_ready_idx) has no queue, so counting by queue there reads the heap of
every queued row (about 100 ms for 70,000 queued jobs); on this index the queue names are a
loose index scan and each count a bounded range (bench/queue_health.py).

Partial on `status = 'queued'`: every job is inserted queued, so an insert writes one index
entry more; a claim writes none (its new row version is `running`), nor does a heartbeat,
an acknowledgement or a finished job. The predicate compares in the "C" collation, which no
claim writes, so no claim can prove it and no claim plan ever uses this index: otherwise, for
a worker with `--queues`, the planner would read a queue's ready rows here and sort them
whenever the statistics (from before a backlog) call the queue small, or scan the whole index
as the smallest set of queued rows, instead of walking the claim indexes in order.

Its cost: bulk inserts through `job_insert_many` ran about 10% slower with it (36,320 against
40,536 jobs/s, bench/queue_health.py, 5 alternated rounds each); without it a queue's waiting
jobs could only be counted by reading every queued row, and a queue that no worker serves
could go unseen behind a large backlog.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "jobs_queue_queued_idx",
        "jobs",
        ["queue", "run_at"],
        unique=False,
        postgresql_where=sa.text("status COLLATE \"C\" = 'queued'"),
    )


def downgrade() -> None:
    op.drop_index(
        "jobs_queue_queued_idx",
        table_name="jobs",
        postgresql_where=sa.text("status COLLATE \"C\" = 'queued'"),
    )
