"""job dependencies: jobs that wait for other jobs

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 14:00:00

- `jobs.status` may be `waiting`: a job with unfinished parents, outside every claim index.
- `jobs.depends_on` (its parents' ids, in the order given), `on_parent_failure` ('cancel' or
  'continue'), `name` (its name in its batch), `waiting_on` (how many parents have not settled
  yet) and `has_dependents` (some job waits on it): all NULL/false for a plain job.
- `job_dependencies (child_id, parent_id)`: one edge per parent, both ON DELETE CASCADE (a
  finished parent may be pruned: its children counted its end already).
- `job_dependents_settle(parent, status, children)`: a parent's end applied to its waiting
  children (all, or only `children`): a success (or a failure under 'continue') lowers
  `waiting_on`, and the last one makes the child `queued` (a `ready` event naming that parent,
  NOTIFY on jobserver_jobs); a failure,
  cancel or expiry under 'cancel' cancels the child with a `cancelled` event naming the parent,
  which in turn settles the child's own dependents (the trigger fires for it).
- The statement that ends a parent (the worker's batched ack, a rescue, a cancel, the expirer)
  settles its children in its own transaction. Successes: trigger `jobs_settle_successes`,
  AFTER UPDATE FOR EACH STATEMENT with transition tables, lowers each waiting child once per
  statement by the number of its parents that succeeded in it (a fan-in of 1,000 parents acked
  in batches of 200 is 5 updates of the child, not 1,000; the `ready` event names one of them);
  a statement with no success of a row with dependents stops at its first test (the rows it
  updated are still captured). Failures, cancels and expiries: trigger
  `jobs_settle_dependents` AFTER UPDATE OF status FOR EACH ROW, only for rows with dependents
  (WHEN), calls `job_dependents_settle` per parent. `jobs_deleted_parent` (BEFORE DELETE) settles the
  children of an unfinished parent that is deleted, as if it was cancelled.
- `jobs_expiry_idx` also holds waiting rows (the expirer expires them); `jobs_waiting_idx`
  (owner, queue) holds only waiting rows (quota and queue counts).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, UUID

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TERMINAL = "('succeeded', 'failed', 'cancelled', 'expired')"
_OLD_STATUSES = "('queued','running','cancelling','succeeded','failed','cancelled','expired')"
_NEW_STATUSES = (
    "('queued','running','cancelling','succeeded','failed','cancelled','expired','waiting')"
)

_SETTLE = """
CREATE FUNCTION job_dependents_settle(p_id uuid, p_status text, p_children uuid[] DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    q text;
BEGIN
    -- Children for which this end counts as done: every child on a success, children that
    -- continue on a failure. The last parent makes the child queued.
    FOR q IN
        WITH ready AS (
            UPDATE jobs c SET waiting_on = c.waiting_on - 1,
                status = CASE WHEN c.waiting_on <= 1 THEN 'queued' ELSE 'waiting' END,
                updated_at = now()
            FROM job_dependencies d
            WHERE d.parent_id = p_id AND c.id = d.child_id AND c.status = 'waiting'
                AND (p_children IS NULL OR c.id = ANY(p_children))
                AND (p_status = 'succeeded' OR c.on_parent_failure = 'continue')
            RETURNING c.id, c.queue, c.status, c.attempt
        ), ev AS (
            INSERT INTO job_events (job_id, event, attempt, details)
            SELECT ready.id, 'ready', ready.attempt, jsonb_build_object('lastParentId', p_id)
            FROM ready WHERE ready.status = 'queued'
        )
        SELECT DISTINCT ready.queue FROM ready WHERE ready.status = 'queued'
    LOOP
        PERFORM pg_notify('jobserver_jobs', q);
    END LOOP;
    IF p_status = 'succeeded' THEN
        RETURN;
    END IF;
    -- Children that are cancelled with it; their own dependents follow (the trigger fires
    -- for each of them that has any).
    WITH gone AS (
        UPDATE jobs c SET status = 'cancelled', finished_at = now(), updated_at = now(),
            last_error = 'parent ' || p_id || ' ' || p_status
        FROM job_dependencies d
        WHERE d.parent_id = p_id AND c.id = d.child_id AND c.status = 'waiting'
            AND (p_children IS NULL OR c.id = ANY(p_children))
            AND c.on_parent_failure IS DISTINCT FROM 'continue'
        RETURNING c.id, c.attempt
    )
    INSERT INTO job_events (job_id, event, attempt, details)
    SELECT gone.id, 'cancelled', gone.attempt,
        jsonb_build_object('reason', 'parent ' || p_status, 'parentId', p_id,
            'parentStatus', p_status)
    FROM gone;
END
$$
"""

_TRIGGER_FN = """
CREATE FUNCTION jobs_settle_dependents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM job_dependents_settle(OLD.id, 'cancelled');
        RETURN OLD;
    END IF;
    PERFORM job_dependents_settle(NEW.id, NEW.status);
    RETURN NULL;
END
$$
"""

# Successes are settled once per statement, not once per parent: a fan-in child of n parents
# that end in one batched ack is updated once (by n), not n times. A statement without a
# success of a row with dependents stops at the first test.
_SUCCESS_FN = f"""
CREATE FUNCTION jobs_settle_successes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    q text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows WHERE has_dependents AND status = 'succeeded') THEN
        RETURN NULL;
    END IF;
    FOR q IN
        WITH ended AS (
            SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.has_dependents AND n.status = 'succeeded'
                AND o.status NOT IN {_TERMINAL}
        ), counts AS (
            SELECT d.child_id, count(*)::int AS k, max(d.parent_id::text)::uuid AS last
            FROM job_dependencies d JOIN ended e ON e.id = d.parent_id
            GROUP BY d.child_id
        ), ready AS (
            UPDATE jobs c SET waiting_on = c.waiting_on - counts.k,
                status = CASE WHEN c.waiting_on <= counts.k THEN 'queued' ELSE 'waiting' END,
                updated_at = now()
            FROM counts
            WHERE c.id = counts.child_id AND c.status = 'waiting'
            RETURNING c.id, c.queue, c.status, c.attempt, counts.last
        ), ev AS (
            INSERT INTO job_events (job_id, event, attempt, details)
            SELECT ready.id, 'ready', ready.attempt, jsonb_build_object('lastParentId', ready.last)
            FROM ready WHERE ready.status = 'queued'
        )
        SELECT DISTINCT ready.queue FROM ready WHERE ready.status = 'queued'
    LOOP
        PERFORM pg_notify('jobserver_jobs', q);
    END LOOP;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.drop_constraint("jobs_status_check", "jobs", type_="check")
    op.create_check_constraint("jobs_status_check", "jobs", f"status IN {_NEW_STATUSES}")
    op.add_column("jobs", sa.Column("depends_on", ARRAY(UUID(as_uuid=True)), nullable=True))
    op.add_column("jobs", sa.Column("on_parent_failure", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("name", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("waiting_on", sa.Integer(), nullable=True))
    op.add_column(
        "jobs",
        sa.Column("has_dependents", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_check_constraint(
        "jobs_on_parent_failure_check",
        "jobs",
        "on_parent_failure IS NULL OR on_parent_failure IN ('cancel', 'continue')",
    )
    op.create_table(
        "job_dependencies",
        sa.Column(
            "child_id",
            UUID(as_uuid=True),
            sa.ForeignKey("jobs.id", ondelete="CASCADE", name="job_dependencies_child_id_fkey"),
            nullable=False,
        ),
        sa.Column(
            "parent_id",
            UUID(as_uuid=True),
            sa.ForeignKey("jobs.id", ondelete="CASCADE", name="job_dependencies_parent_id_fkey"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("child_id", "parent_id", name="job_dependencies_pkey"),
    )
    op.create_index("job_dependencies_parent_idx", "job_dependencies", ["parent_id"])
    op.drop_index("jobs_expiry_idx", table_name="jobs")
    op.create_index(
        "jobs_expiry_idx",
        "jobs",
        ["expires_at"],
        postgresql_where=sa.text("status IN ('queued', 'waiting') AND expires_at IS NOT NULL"),
    )
    op.create_index(
        "jobs_waiting_idx",
        "jobs",
        ["owner", "queue"],
        postgresql_where=sa.text("status = 'waiting'"),
    )
    op.execute(_SETTLE)
    op.execute(_TRIGGER_FN)
    op.execute(_SUCCESS_FN)
    op.execute(
        "CREATE TRIGGER jobs_settle_dependents AFTER UPDATE OF status ON jobs FOR EACH ROW"
        " WHEN (NEW.has_dependents AND NEW.status IN ('failed', 'cancelled', 'expired')"
        f" AND OLD.status NOT IN {_TERMINAL})"
        " EXECUTE FUNCTION jobs_settle_dependents()"
    )
    op.execute(
        "CREATE TRIGGER jobs_settle_successes AFTER UPDATE ON jobs"
        " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
        " FOR EACH STATEMENT EXECUTE FUNCTION jobs_settle_successes()"
    )
    op.execute(
        "CREATE TRIGGER jobs_deleted_parent BEFORE DELETE ON jobs FOR EACH ROW"
        f" WHEN (OLD.has_dependents AND OLD.status NOT IN {_TERMINAL})"
        " EXECUTE FUNCTION jobs_settle_dependents()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER jobs_deleted_parent ON jobs")
    op.execute("DROP TRIGGER jobs_settle_successes ON jobs")
    op.execute("DROP TRIGGER jobs_settle_dependents ON jobs")
    op.execute("DROP FUNCTION jobs_settle_successes()")
    op.execute("DROP FUNCTION jobs_settle_dependents()")
    op.execute("DROP FUNCTION job_dependents_settle(uuid, text, uuid[])")
    op.execute("UPDATE jobs SET status = 'cancelled', finished_at = now() WHERE status = 'waiting'")
    op.drop_index("jobs_waiting_idx", table_name="jobs")
    op.drop_index("jobs_expiry_idx", table_name="jobs")
    op.create_index(
        "jobs_expiry_idx",
        "jobs",
        ["expires_at"],
        postgresql_where=sa.text("status = 'queued' AND expires_at IS NOT NULL"),
    )
    op.drop_index("job_dependencies_parent_idx", table_name="job_dependencies")
    op.drop_table("job_dependencies")
    op.drop_constraint("jobs_on_parent_failure_check", "jobs", type_="check")
    for col in ("has_dependents", "waiting_on", "name", "on_parent_failure", "depends_on"):
        op.drop_column("jobs", col)
    op.drop_constraint("jobs_status_check", "jobs", type_="check")
    op.create_check_constraint("jobs_status_check", "jobs", f"status IN {_OLD_STATUSES}")
