"""dependency edges without foreign keys: their rows are removed by triggers on jobs

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 23:45:00

A foreign key check runs once per inserted edge and key-share locks the job it names: a fan-in
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
