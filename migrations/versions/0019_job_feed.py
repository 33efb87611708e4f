"""the job feed: NOTIFY of the jobs a statement changed, while some API streams them

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 07:00:00

GET /v1/stream tells browsers and clients of job changes as they commit. Each API process holds
one LISTEN session on `jobserver_feed` for all of its subscribers; the statements that change a
job's status or progress name the jobs they changed in that channel (jobserver/db/feed.py).

- `job_feed_readers (reader, expires_at)`, UNLOGGED: one row per API process that has
  subscribers, renewed while it has them. The statements test it first, so with nobody
  watching a claim or an acknowledgement pays one probe of an empty table, not a NOTIFY.
- `job_feed(ids uuid[])`: NOTIFY `jobserver_feed` with the ids, comma-separated, 200 per
  message (7,400 bytes, under the 8,000 a payload may hold). Delivered at commit, so a rolled
  back change is never announced. Returns the number of messages.
- The settle functions of 0014/0018 and the broadcast functions of 0017 announce the children
  and parents they change in the same way.

0014's statement trigger with transition tables cost every UPDATE of `jobs` about 7 %
(0018); a feed from such triggers would cost the same, so the statements announce their own
rows instead.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FEED_FN = """
CREATE FUNCTION job_feed(p_ids uuid[]) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    chunk text;
    n int := 0;
BEGIN
    IF p_ids IS NULL OR cardinality(p_ids) = 0
        OR NOT EXISTS (SELECT FROM job_feed_readers WHERE expires_at > now()) THEN
        RETURN 0;
    END IF;
    FOR chunk IN
        SELECT string_agg(u.id::text, ',') FROM unnest(p_ids) WITH ORDINALITY AS u(id, i)
        GROUP BY (u.i - 1) / 200
    LOOP
        PERFORM pg_notify('jobserver_feed', chunk);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$
"""


def _earlier(name: str) -> ModuleType:
    """An earlier migration of this directory, for the function texts it created."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_jobserver_migration_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _edit(sql: str, *changes: tuple[str, str]) -> str:
    """`sql` as CREATE OR REPLACE, with each (old, new) text changed once (old must be there)."""
    sql = sql.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    for old, new in changes:
        assert sql.count(old) == 1, old
        sql = sql.replace(old, new)
    return sql


_M14 = _earlier("0014_job_dependencies")
_M17 = _earlier("0017_broadcast_jobs")
_M18 = _earlier("0018_dependency_settling")

# The children a parent's end makes queued: announced with the queue's wake-up.
_READY_LOOP = (
    "        SELECT DISTINCT ready.queue FROM ready WHERE ready.status = 'queued'\n    LOOP",
    "        , fed AS (\n"
    "            SELECT job_feed(array_agg(ready.id) FILTER (WHERE ready.status = 'queued'))\n"
    "            FROM ready\n"
    "        )\n"
    "        SELECT DISTINCT ready.queue FROM ready, fed WHERE ready.status = 'queued'\n    LOOP",
)
# The children cancelled with their parent.
_GONE_EVENTS = (
    (
        "    )\n    INSERT INTO job_events (job_id, event, attempt, details)\n    SELECT gone.id,",
        "    ), ev AS (\n    INSERT INTO job_events (job_id, event, attempt, details)\n"
        "    SELECT gone.id,",
    ),
    (
        "    FROM gone;\nEND",
        "    FROM gone\n    )\n    SELECT job_feed(array_agg(id)) INTO fed FROM gone;\nEND",
    ),
    ("DECLARE\n    q text;", "DECLARE\n    q text;\n    fed int;"),
)
_SETTLE = _edit(_M14._SETTLE, _READY_LOOP, *_GONE_EVENTS)
_SETTLE_0014 = _edit(_M14._SETTLE)
_SETTLE_SUCCESSES = _edit(_M18._SETTLE_FN.replace("CREATE OR REPLACE", "CREATE"), _READY_LOOP)
_SETTLE_SUCCESSES_0018 = _M18._SETTLE_FN
# A broadcast parent's end (its step to queued turned terminal in the same update).
_BROADCAST_SUM = _edit(
    _M17._SUM_FN, ("    RETURN NEW;", "    PERFORM job_feed(ARRAY[NEW.id]);\n    RETURN NEW;")
)
_BROADCAST_SUM_0017 = _edit(_M17._SUM_FN)
# The children a broadcast parent's cancel cancels (or asks to).
_BROADCAST_CANCEL = _edit(
    _M17._CANCEL_FN,
    (
        "    SELECT count(pg_notify('jobserver_cancel', upd.id::text)) INTO notified\n"
        "    FROM upd WHERE upd.status = 'cancelling';",
        "    SELECT count(pg_notify('jobserver_cancel', upd.id::text))\n"
        "            FILTER (WHERE upd.status = 'cancelling'),\n"
        "        job_feed(array_agg(upd.id))\n"
        "    INTO notified, fed FROM upd;",
    ),
    ("    notified bigint;", "    notified bigint;\n    fed int;"),
)
_BROADCAST_CANCEL_0017 = _edit(_M17._CANCEL_FN)


def upgrade() -> None:
    op.execute(
        "CREATE UNLOGGED TABLE job_feed_readers (reader text NOT NULL, "
        "expires_at timestamptz NOT NULL, CONSTRAINT job_feed_readers_pkey PRIMARY KEY (reader))"
    )
    op.execute(_FEED_FN)
    op.execute(_SETTLE)
    op.execute(_SETTLE_SUCCESSES)
    op.execute(_BROADCAST_SUM)
    op.execute(_BROADCAST_CANCEL)


def downgrade() -> None:
    op.execute(_SETTLE_0014)
    op.execute(_SETTLE_SUCCESSES_0018)
    op.execute(_BROADCAST_SUM_0017)
    op.execute(_BROADCAST_CANCEL_0017)
    op.execute("DROP FUNCTION job_feed(uuid[])")
    op.execute("DROP TABLE job_feed_readers")
