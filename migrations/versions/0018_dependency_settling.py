"""dependency settling without a cost to other jobs; edges without foreign keys

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 23:45:00

Successes. 0014 settled them once per UPDATE statement of `jobs` from its transition tables;
PostgreSQL captures those for every row of every UPDATE (claims, heartbeats, acks of jobs that
nobody waits for): +7 % on the worker's ack of 1,000 jobs. Now:

- `jobs_note_success` (AFTER UPDATE OF status, FOR EACH ROW, WHEN the row has dependents and
  just succeeded: nothing runs for any other row) notes the parent in `job_settle_queue` and
  sets the transaction's `jobserver.settle_queue` flag;
- `jobs_settle_successes` (AFTER UPDATE, FOR EACH STATEMENT, no transition tables) returns at
  once unless the flag is set; else it takes the noted parents out of the queue and lowers each
  waiting child once by the number of its parents among them, as before (a fan-in of 1,000
  parents acked in batches of 200 is still 5 updates of the child, not 1,000).
`job_settle_queue` is UNLOGGED and holds rows only inside the statement that wrote them (a
transaction sees no other's uncommitted rows, and takes out all of its own before its statement
ends), so a crash that empties it loses nothing.

Edges. A foreign key check runs once per inserted edge and key-share locks the job it names: a fan-in
of 1,000 parents submitted in one batch spent more on its 2,000 checks than on inserting the
1,000 jobs. Every edge is written by `jobserver.db.dependencies` in the transaction that
inserts its child, after it found (and, when unfinished, locked) each parent, so the checks
guarded nothing the code does not; what the cascades did is done by triggers:

- `jobs_drop_edges` (AFTER DELETE, once per statement, with the deleted rows): removes the
  edges of deleted children and deleted parents. A deleted unfinished parent's children are
  settled first, as before (`jobs_deleted_parent`, BEFORE DELETE).
- `jobs_truncate_edges` (AFTER TRUNCATE): empties `job_dependencies` with `jobs`.

An edge to a parent that ended before its child was inserted can outlive that parent when the
two commit at the same moment; it is removed with its child, and an ended parent's edges are
never read again (an end is final).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TERMINAL = "('succeeded', 'failed', 'cancelled', 'expired')"

_NOTE_FN = """
CREATE FUNCTION jobs_note_success() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_settle_queue (parent_id) VALUES (NEW.id);
    PERFORM set_config('jobserver.settle_queue', 'on', true);
    RETURN NULL;
END
$$
"""

_SETTLE_FN = """
CREATE OR REPLACE FUNCTION jobs_settle_successes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    q text;
BEGIN
    IF current_setting('jobserver.settle_queue', true) IS DISTINCT FROM 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('jobserver.settle_queue', 'off', true);
    FOR q IN
        WITH ended AS (
            DELETE FROM job_settle_queue RETURNING parent_id AS id
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

# 0014's version, for the downgrade
_SETTLE_FN_0014 = f"""
CREATE OR REPLACE FUNCTION jobs_settle_successes() RETURNS trigger LANGUAGE plpgsql AS $$
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

_DROP_EDGES = """
CREATE FUNCTION jobs_drop_edges() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_dependencies d USING gone
    WHERE d.child_id = gone.id AND gone.depends_on IS NOT NULL;
    DELETE FROM job_dependencies d USING gone WHERE d.parent_id = gone.id;
    RETURN NULL;
END
$$
"""

_TRUNCATE_EDGES = """
CREATE FUNCTION jobs_truncate_edges() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_dependencies;  -- not TRUNCATE: the statement may name this table too
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute("CREATE UNLOGGED TABLE job_settle_queue (parent_id uuid NOT NULL)")
    op.execute(_NOTE_FN)
    op.execute("DROP TRIGGER jobs_settle_successes ON jobs")
    op.execute(_SETTLE_FN)
    op.execute(
        "CREATE TRIGGER jobs_note_success AFTER UPDATE OF status ON jobs FOR EACH ROW"
        " WHEN (NEW.has_dependents AND NEW.status = 'succeeded'"
        f" AND OLD.status NOT IN {_TERMINAL})"
        " EXECUTE FUNCTION jobs_note_success()"
    )
    op.execute(
        "CREATE TRIGGER jobs_settle_successes AFTER UPDATE ON jobs"
        " FOR EACH STATEMENT EXECUTE FUNCTION jobs_settle_successes()"
    )
    op.drop_constraint("job_dependencies_child_id_fkey", "job_dependencies", type_="foreignkey")
    op.drop_constraint("job_dependencies_parent_id_fkey", "job_dependencies", type_="foreignkey")
    op.execute(_DROP_EDGES)
    op.execute(_TRUNCATE_EDGES)
    op.execute(
        "CREATE TRIGGER jobs_drop_edges AFTER DELETE ON jobs REFERENCING OLD TABLE AS gone"
        " FOR EACH STATEMENT EXECUTE FUNCTION jobs_drop_edges()"
    )
    op.execute(
        "CREATE TRIGGER jobs_truncate_edges AFTER TRUNCATE ON jobs"
        " FOR EACH STATEMENT EXECUTE FUNCTION jobs_truncate_edges()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER jobs_settle_successes ON jobs")
    op.execute("DROP TRIGGER jobs_note_success ON jobs")
    op.execute(_SETTLE_FN_0014)
    op.execute(
        "CREATE TRIGGER jobs_settle_successes AFTER UPDATE ON jobs"
        " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
        " FOR EACH STATEMENT EXECUTE FUNCTION jobs_settle_successes()"
    )
    op.execute("DROP FUNCTION jobs_note_success()")
    op.execute("DROP TABLE job_settle_queue")
    op.execute("DROP TRIGGER jobs_truncate_edges ON jobs")
    op.execute("DROP TRIGGER jobs_drop_edges ON jobs")
    op.execute("DROP FUNCTION jobs_truncate_edges()")
    op.execute("DROP FUNCTION jobs_drop_edges()")
    op.execute(
        "DELETE FROM job_dependencies d WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id ="
        " d.child_id) OR NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = d.parent_id)"
    )
    op.create_foreign_key(
        "job_dependencies_child_id_fkey",
        "job_dependencies",
        "jobs",
        ["child_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        "job_dependencies_parent_id_fkey",
        "job_dependencies",
        "jobs",
        ["parent_id"],
        ["id"],
        ondelete="CASCADE",
    )
