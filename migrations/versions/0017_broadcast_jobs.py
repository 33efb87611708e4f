"""broadcast jobs: one child job per live worker, a parent that sums them

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 20:00:00

A broadcast parent is a job `waiting` on its children (dependsOn = the children, policy
'continue'); each child sits in the private queue `@<worker id>` of one worker, which only that
worker claims (db/job_runs.py), with max_attempts 1.

- `jobs.broadcast`: true on a broadcast parent, NULL on every other job.
- `jobs_broadcast_sum` (BEFORE UPDATE OF status): when the parent's last child ends (the deps
  trigger moves it from `waiting` to `queued`), the parent becomes terminal in that same
  statement instead: `succeeded` when every child succeeded, else `failed`, with the result
  `{"workers": {id: status}, "succeeded": n, "failed": m}` and a matching event. Nothing claims
  or runs the parent, so its end needs no worker with any definition, and it cannot lag its
  last child.
- `jobs_broadcast_cancel` (AFTER UPDATE OF status): a parent cancelled (or expired) while its
  children run cancels them as a cancel request would: queued -> cancelled, running ->
  cancelling with a NOTIFY on jobserver_cancel.
- `jobs_private_queued_idx`: queued jobs of private queues, for the rescue pass that fails
  those whose worker is gone (db/broadcast.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SUM_FN = """
CREATE FUNCTION jobs_broadcast_sum() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n_ok int;
    n_bad int;
    per_worker jsonb;
BEGIN
    SELECT count(*) FILTER (WHERE c.status = 'succeeded'),
        count(*) FILTER (WHERE c.status IS DISTINCT FROM 'succeeded'),
        coalesce(jsonb_object_agg(substr(c.queue, 2), c.status), '{}'::jsonb)
    INTO n_ok, n_bad, per_worker
    FROM jobs c WHERE c.id = ANY(NEW.depends_on);
    NEW.status := CASE WHEN n_bad = 0 THEN 'succeeded' ELSE 'failed' END;
    NEW.result := jsonb_build_object('workers', per_worker, 'succeeded', n_ok, 'failed', n_bad);
    NEW.finished_at := now();
    NEW.waiting_on := 0;
    IF n_bad > 0 THEN
        NEW.last_error := n_bad || ' of ' || (n_ok + n_bad) || ' workers did not succeed';
    END IF;
    INSERT INTO job_events (job_id, event, attempt, details)
    VALUES (NEW.id, NEW.status, NEW.attempt,
        jsonb_build_object('succeeded', n_ok, 'failed', n_bad));
    RETURN NEW;
END
$$
"""

_CANCEL_FN = """
CREATE FUNCTION jobs_broadcast_cancel() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    notified bigint;
BEGIN
    WITH upd AS (
        UPDATE jobs c SET
            status = CASE WHEN c.status = 'running' THEN 'cancelling' ELSE 'cancelled' END,
            finished_at = CASE WHEN c.status = 'running' THEN c.finished_at ELSE now() END,
            cancel_requested_at = now(),
            updated_at = now()
        WHERE c.id = ANY(NEW.depends_on) AND c.status IN ('queued', 'running')
        RETURNING c.id, c.status, c.worker_id, c.attempt
    ), ev AS (
        INSERT INTO job_events (job_id, event, worker_id, attempt, details)
        SELECT upd.id,
            CASE WHEN upd.status = 'cancelled' THEN 'cancelled' ELSE 'cancel_requested' END,
            upd.worker_id, upd.attempt,
            jsonb_build_object('reason', 'broadcast ' || NEW.status, 'broadcastId', NEW.id)
        FROM upd
    )
    SELECT count(pg_notify('jobserver_cancel', upd.id::text)) INTO notified
    FROM upd WHERE upd.status = 'cancelling';
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.add_column("jobs", sa.Column("broadcast", sa.Boolean(), nullable=True))
    op.create_index(
        "jobs_private_queued_idx",
        "jobs",
        ["queue"],
        postgresql_where=sa.text("status = 'queued' AND left(queue, 1) = '@'"),
    )
    op.execute(_SUM_FN)
    op.execute(_CANCEL_FN)
    op.execute(
        "CREATE TRIGGER jobs_broadcast_sum BEFORE UPDATE OF status ON jobs FOR EACH ROW"
        " WHEN (NEW.broadcast AND OLD.status = 'waiting' AND NEW.status = 'queued')"
        " EXECUTE FUNCTION jobs_broadcast_sum()"
    )
    op.execute(
        "CREATE TRIGGER jobs_broadcast_cancel AFTER UPDATE OF status ON jobs FOR EACH ROW"
        " WHEN (NEW.broadcast AND OLD.status = 'waiting'"
        " AND NEW.status IN ('cancelled', 'expired'))"
        " EXECUTE FUNCTION jobs_broadcast_cancel()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER jobs_broadcast_cancel ON jobs")
    op.execute("DROP TRIGGER jobs_broadcast_sum ON jobs")
    op.execute("DROP FUNCTION jobs_broadcast_cancel()")
    op.execute("DROP FUNCTION jobs_broadcast_sum()")
    op.drop_index("jobs_private_queued_idx", table_name="jobs")
    op.drop_column("jobs", "broadcast")
