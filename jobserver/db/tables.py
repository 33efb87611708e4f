"""The schema as SQLAlchemy Core metadata: the reference that migrations must match.

A test applies every Alembic migration to an empty database and diffs the result against this
metadata, so a table or index changed here without a migration (or the reverse) fails CI.
Runtime queries do not use SQLAlchemy; they are plain SQL through asyncpg in `jobserver.db.*`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, OID, UUID

from jobserver.statuses import JOB_STATUSES

metadata = MetaData()

STATUS_CHECK = "status IN (" + ",".join(f"'{s}'" for s in JOB_STATUSES) + ")"

NOW = text("now()")


def _ts(name: str, nullable: bool = True, default: bool = False) -> Column[datetime]:
    return Column(
        name,
        DateTime(timezone=True),
        nullable=nullable,
        server_default=NOW if default else None,
    )


job_definitions = Table(
    "job_definitions",
    metadata,
    Column("key", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("default_max_attempts", Integer, nullable=False, server_default=text("3")),
    Column("timeout_seconds", Float, nullable=True),
    Column("concurrency_limit", Integer, nullable=True),
    Column("params_schema", JSONB, nullable=True),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("backoff", JSONB, nullable=True),
    Column("fingerprint", Text, nullable=False),
    Column("outbound", Boolean, nullable=False, server_default=text("false")),
    # {"limit", "periodSeconds", "key"?}: at most `limit` starts per period (core/rate_limits.py)
    Column("rate_limit", JSONB, nullable=True),
    _ts("registered_at", nullable=False, default=True),
    _ts("updated_at", nullable=False, default=True),
    PrimaryKeyConstraint("key", "version", name="job_definitions_pkey"),
    CheckConstraint("version >= 1", name="job_definitions_version_check"),
    CheckConstraint("default_max_attempts >= 1", name="job_definitions_attempts_check"),
    CheckConstraint(
        "concurrency_limit IS NULL OR concurrency_limit >= 1",
        name="job_definitions_concurrency_check",
    ),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("definition_key", Text, nullable=False),
    Column("definition_version", Integer, nullable=False),
    Column("queue", Text, nullable=False, server_default=text("'default'")),
    Column("params", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("status", Text, nullable=False, server_default=text("'queued'")),
    Column("priority", Integer, nullable=False, server_default=text("0")),
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Column("max_attempts", Integer, nullable=False),
    _ts("run_at", nullable=False, default=True),
    _ts("expires_at"),
    Column("timeout_seconds", Float, nullable=True),
    Column("owner", Text, nullable=False, server_default=text("'system:anonymous'")),
    Column("idempotency_key", Text, nullable=True),
    Column("request_fingerprint", Text, nullable=True),
    Column("result", JSONB, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("progress", JSONB, nullable=True),
    Column("worker_id", Text, nullable=True),
    _ts("lease_expires_at"),
    _ts("cancel_requested_at"),
    Column("schedule_name", Text, nullable=True),
    _ts("scheduled_for"),
    Column("redriven_from", UUID(as_uuid=True), nullable=True),
    # Optional labels a client gives a job to find it again (NULL for most jobs).
    Column("event", Text, nullable=True),
    Column("tags", ARRAY(Text), nullable=True),
    _ts("created_at", nullable=False, default=True),
    _ts("started_at"),
    _ts("finished_at"),
    _ts("updated_at", nullable=False, default=True),
    # The job's own retry delays in seconds (NULL: its definition's back-off). Read only when
    # an attempt fails (db/job_runs.py), never by the claim.
    Column("retry_delays", ARRAY(Float), nullable=True),
    # The saved job that made it (execute, trigger or retry) and the execution a retry repeats.
    # No foreign keys: a deleted saved job (or a pruned job) leaves its id behind as a plain
    # reference, and deleting one never rewrites its jobs.
    Column("saved_job_id", UUID(as_uuid=True), nullable=True),
    Column("retry_of", UUID(as_uuid=True), nullable=True),
    # What the running job set with ctx.set_metadata (merged shallowly; NULL until then).
    Column("metadata", JSONB, nullable=True),
    # A retry and the job it repeats, linked both ways, and the job a clone was made from:
    # plain references like saved_job_id (no foreign keys, no indexes: looked up by the id held).
    Column("retried_from", UUID(as_uuid=True), nullable=True),
    Column("retried_as", UUID(as_uuid=True), nullable=True),
    Column("cloned_from", UUID(as_uuid=True), nullable=True),
    # Dependencies (db/dependencies.py; NULL/false for a plain job): the parents in the order
    # given, what a parent's failure does to it, its name in its batch, how many parents have
    # not settled yet (status `waiting` while > 0), and whether some job waits on it (the one
    # thing the settle triggers of migration 0014 test).
    Column("depends_on", ARRAY(UUID(as_uuid=True)), nullable=True),
    Column("on_parent_failure", Text, nullable=True),
    Column("name", Text, nullable=True),
    Column("waiting_on", Integer, nullable=True),
    Column("has_dependents", Boolean, nullable=False, server_default=text("false")),
    # A broadcast parent (db/broadcast.py, migration 0017): true; NULL on every other job.
    Column("broadcast", Boolean, nullable=True),
    CheckConstraint(STATUS_CHECK, name="jobs_status_check"),
    CheckConstraint(
        "on_parent_failure IS NULL OR on_parent_failure IN ('cancel', 'continue')",
        name="jobs_on_parent_failure_check",
    ),
    # A rate-limited job's bucket and its N starts per period (seconds), computed at submission
    # (jobserver/core/rate_limits.py); NULL for unlimited jobs. Read by the rated claim only.
    Column("rate_bucket", Text, nullable=True),
    Column("rate_limit", Integer, nullable=True),
    Column("rate_period", Float, nullable=True),
    CheckConstraint(
        "(rate_bucket IS NULL) = (rate_limit IS NULL)"
        " AND (rate_limit IS NULL) = (rate_period IS NULL)"
        " AND (rate_limit IS NULL OR (rate_limit >= 1 AND rate_period > 0))",
        name="jobs_rate_limit_check",
    ),
    CheckConstraint("max_attempts >= 1", name="jobs_max_attempts_check"),
    CheckConstraint("attempt >= 0", name="jobs_attempt_check"),
    # The claim path: only queued rows live in this index, ordered as claims are.
    Index(
        "jobs_ready_idx",
        text("priority DESC"),
        "run_at",
        "id",
        postgresql_where=text("status = 'queued'"),
    ),
    # The rated claim: queued rate-limited rows per bucket, in claim order.
    Index(
        "jobs_rate_queued_idx",
        "rate_bucket",
        text("priority DESC"),
        "run_at",
        "id",
        postgresql_where=text("status = 'queued' AND rate_bucket IS NOT NULL"),
    ),
    # ... and per owner in claim order: the rated claim's walk of owners and their fair shares.
    Index(
        "jobs_rate_owner_queued_idx",
        "owner",
        text("priority DESC"),
        "run_at",
        "id",
        postgresql_where=text("status = 'queued' AND rate_bucket IS NOT NULL"),
    ),
    # Fair claims: each owner's queued rows in claim order. The claim walks the distinct owners
    # with queued rows (a loose index scan) and takes a share from each; per-owner quotas count
    # an owner's queued rows here (bounded by the quota).
    Index(
        "jobs_owner_queued_idx",
        "owner",
        text("priority DESC"),
        "run_at",
        "id",
        postgresql_where=text("status = 'queued'"),
    ),
    # Queue health (db/queues.py): each queue's queued rows by run time, so the names of the
    # queues with waiting jobs are a loose index scan, and a queue's ready (run_at <= now)
    # and delayed rows two bounded ranges. Only queued rows live here: an insert writes one
    # entry more, a claim none (its new row version is not queued). The predicate compares
    # in the "C" collation, which no claim writes, so no claim can prove it and no claim plan
    # ever uses this index: a claim of a queue the statistics think small would otherwise
    # read and sort its ready rows here, or the planner scan the whole index as the smallest
    # set of queued rows, instead of walking jobs_ready_idx / jobs_owner_queued_idx in order.
    # (The schema diff does not read the predicate's collation: tests/db/test_queue_index.py
    # pins it.)
    Index(
        "jobs_queue_queued_idx",
        "queue",
        "run_at",
        postgresql_where=text("status COLLATE \"C\" = 'queued'"),
    ),
    # Heartbeats and rescue look only at held rows. No index has lease_expires_at (the rescuer
    # walks this one and sorts what it finds): a claim writes one index entry less, and a
    # heartbeat, which changes nothing else, can be a heap-only (HOT) update that writes no
    # index entry at all when its page has room.
    Index(
        "jobs_held_idx",
        "worker_id",
        postgresql_where=text("status IN ('running', 'cancelling')"),
    ),
    Index(
        "jobs_idempotency_idx",
        "owner",
        "idempotency_key",
        unique=True,
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
    Index(
        "jobs_schedule_fire_idx",
        "schedule_name",
        "scheduled_for",
        unique=True,
        postgresql_where=text("schedule_name IS NOT NULL"),
    ),
    # The expirer walks only queued (or waiting) rows that carry a deadline.
    Index(
        "jobs_expiry_idx",
        "expires_at",
        postgresql_where=text("status IN ('queued', 'waiting') AND expires_at IS NOT NULL"),
    ),
    # Waiting rows only (outside the claim indexes): quota and queue counts.
    Index("jobs_waiting_idx", "owner", "queue", postgresql_where=text("status = 'waiting'")),
    # Queued jobs of private queues (`@<worker id>`: broadcast children), for the rescue pass
    # that fails those whose worker is gone.
    Index(
        "jobs_private_queued_idx",
        "queue",
        postgresql_where=text("status = 'queued' AND left(queue, 1) = '@'"),
    ),
    # Listing. Every index here costs an entry per job and per status change (a status change
    # is never a HOT update), so listing leans on the primary key: ids are time-ordered
    # (UUIDv7), so newest-first is a backward walk of the primary key. An owner's jobs (plain
    # tokens) have their own ordered index; the settled statuses, rare next to `succeeded`,
    # a partial one. Queued and held rows are found through jobs_ready_idx and jobs_held_idx.
    # Dropping the former (created_at), (status, created_at) and (definition_key, created_at)
    # indexes raised bulk enqueue from about 40,000 to 65,000 jobs/s (bench/, 1 process).
    Index("jobs_owner_idx", "owner", "id"),
    Index(
        "jobs_settled_idx",
        "status",
        "id",
        postgresql_where=text("status IN ('failed', 'cancelled', 'expired')"),
    ),
    Index(
        "jobs_finished_idx",
        "finished_at",
        postgresql_where=text("finished_at IS NOT NULL"),
    ),
    # Priority order (db/jobs.py `job_list`): the jobs off the default priority, partial so the
    # rest (nearly all) write no entry; those at 0 are read through the primary key. Only the
    # list states the predicate's form: a claim's `priority > $1` cannot prove it, so no claim
    # plan walks this index.
    Index("jobs_priority_idx", "priority", "id", postgresql_where=text("abs(priority) > 0")),
    # Event and tag filters: partial, so jobs without labels write no entry here.
    Index("jobs_event_idx", "event", "id", postgresql_where=text("event IS NOT NULL")),
    Index(
        "jobs_tags_idx",
        "tags",
        postgresql_using="gin",
        postgresql_where=text("tags IS NOT NULL"),
    ),
    # A saved job's executions, newest first; partial: other jobs write no entry here.
    Index(
        "jobs_saved_job_idx",
        "saved_job_id",
        "id",
        postgresql_where=text("saved_job_id IS NOT NULL"),
    ),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column(
        "job_id",
        UUID(as_uuid=True),
        ForeignKey("jobs.id", ondelete="CASCADE", name="job_events_job_id_fkey"),
        nullable=False,
    ),
    Column("event", Text, nullable=False),
    _ts("at", nullable=False, default=True),
    Column("worker_id", Text, nullable=True),
    Column("attempt", Integer, nullable=True),
    Column("details", JSONB, nullable=True),
    Index("job_events_job_idx", "job_id", "id"),
)

# One edge per (child, parent), written with its child (db/dependencies.py), for a parent that
# had not succeeded then. No foreign keys (a check per edge cost a fan-in more than its jobs):
# triggers on jobs remove the edges of deleted jobs (migration 0018); a deleted unfinished parent
# is settled first (jobs_deleted_parent).
job_dependencies = Table(
    "job_dependencies",
    metadata,
    Column("child_id", UUID(as_uuid=True), nullable=False),
    Column("parent_id", UUID(as_uuid=True), nullable=False),
    PrimaryKeyConstraint("child_id", "parent_id", name="job_dependencies_pkey"),
    Index("job_dependencies_parent_idx", "parent_id"),
)

# Parents that succeeded in the running statement, noted by the row trigger jobs_note_success
# and taken out by the statement trigger jobs_settle_successes before the statement ends
# (migration 0018): rows never outlive their statement, so it is UNLOGGED.
job_settle_queue = Table(
    "job_settle_queue",
    metadata,
    Column("parent_id", UUID(as_uuid=True), nullable=False),
    prefixes=["UNLOGGED"],
)

# The API processes that stream job changes (GET /v1/stream) right now, one row each, renewed
# while they have subscribers: the statements that change jobs send the feed NOTIFY only while
# some row is live (migration 0019). Lost rows only pause the feed until the next renewal.
job_feed_readers = Table(
    "job_feed_readers",
    metadata,
    Column("reader", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("reader", name="job_feed_readers_pkey"),
    prefixes=["UNLOGGED"],
)

job_attempts = Table(
    "job_attempts",
    metadata,
    Column(
        "job_id",
        UUID(as_uuid=True),
        ForeignKey("jobs.id", ondelete="CASCADE", name="job_attempts_job_id_fkey"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("worker_id", Text, nullable=True),
    _ts("started_at", nullable=False, default=True),
    _ts("finished_at"),
    Column("outcome", Text, nullable=False, server_default=text("'running'")),
    Column("error", Text, nullable=True),
    Column("traceback", Text, nullable=True),
    Column("result", JSONB, nullable=True),
    Column("duration_ms", Float, nullable=True),
    PrimaryKeyConstraint("job_id", "attempt", name="job_attempts_pkey"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("name", Text, nullable=False, unique=True),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("prefix", Text, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("owner", Text, nullable=False),
    # Per-owner quotas (NULL: the OWNER_MAX_* default); when several active tokens share an
    # owner the smallest value holds.
    Column("max_running", Integer, nullable=True),
    Column("max_queued", Integer, nullable=True),
    _ts("created_at", nullable=False, default=True),
    _ts("last_used_at"),
    _ts("revoked_at"),
    CheckConstraint("max_running >= 1", name="api_tokens_max_running_check"),
    CheckConstraint("max_queued >= 1", name="api_tokens_max_queued_check"),
)

workers = Table(
    "workers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("queues", ARRAY(Text), nullable=True),
    Column("definitions", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("status", Text, nullable=False, server_default=text("'active'")),
    Column("running", Integer, nullable=False, server_default=text("0")),
    Column("max_concurrency", Integer, nullable=False, server_default=text("0")),
    _ts("started_at", nullable=False, default=True),
    _ts("last_seen_at", nullable=False, default=True),
    _ts("stopped_at"),
    CheckConstraint(
        "status IN ('active','stopping','stopped','gone')", name="workers_status_check"
    ),
)

schedules = Table(
    "schedules",
    metadata,
    Column("name", Text, primary_key=True),
    Column("cron", Text, nullable=True),
    Column("every_seconds", Integer, nullable=True),
    Column("timezone", Text, nullable=False, server_default=text("'UTC'")),
    Column("definition_key", Text, nullable=False),
    Column("definition_version", Integer, nullable=True),
    Column("params", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("queue", Text, nullable=False, server_default=text("'default'")),
    Column("priority", Integer, nullable=False, server_default=text("0")),
    Column("max_attempts", Integer, nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    _ts("start_at"),
    _ts("expires_at"),
    Column("overlap_policy", Text, nullable=False, server_default=text("'allow'")),
    Column("catchup_policy", Text, nullable=False, server_default=text("'latest'")),
    Column("catchup_limit", Integer, nullable=False, server_default=text("10")),
    Column("source", Text, nullable=False, server_default=text("'api'")),
    _ts("next_fire_at"),
    _ts("last_fire_at"),
    Column("last_job_id", UUID(as_uuid=True), nullable=True),
    _ts("created_at", nullable=False, default=True),
    _ts("updated_at", nullable=False, default=True),
    # Stamped on every job the schedule fires.
    Column("event", Text, nullable=True),
    Column("tags", ARRAY(Text), nullable=True),
    # A schedule whose runs keep failing is disabled (NULL: the MAX_CONSECUTIVE_FAILURES
    # default; 0: never).
    Column("max_consecutive_failures", Integer, nullable=True),
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    Column("disabled_reason", Text, nullable=True),
    _ts("disabled_at"),
    # Stamped on every job the schedule fires, like event and tags.
    Column("timeout_seconds", Float, nullable=True),
    Column("retry_delays", ARRAY(Float), nullable=True),
    # A saved job's own (lowered) rate limit, for the jobs its trigger fires (NULL: the
    # definition's).
    Column("rate_limit", JSONB, nullable=True),
    # The saved job that owns this schedule (its trigger; NULL for other schedules), and the
    # owner of the jobs it fires (NULL: system:scheduler). Deleting the saved job deletes it.
    Column(
        "saved_job_id",
        UUID(as_uuid=True),
        ForeignKey("saved_jobs.id", ondelete="CASCADE", name="schedules_saved_job_id_fkey"),
        nullable=True,
    ),
    Column("job_owner", Text, nullable=True),
    CheckConstraint(
        "(cron IS NULL) <> (every_seconds IS NULL)", name="schedules_cron_or_every_check"
    ),
    CheckConstraint("max_consecutive_failures >= 0", name="schedules_max_failures_check"),
    CheckConstraint("overlap_policy IN ('allow','skip')", name="schedules_overlap_check"),
    CheckConstraint("catchup_policy IN ('none','latest','all')", name="schedules_catchup_check"),
    Index("schedules_due_idx", "next_fire_at", postgresql_where=text("enabled")),
    Index(
        "schedules_saved_job_idx",
        "saved_job_id",
        unique=True,
        postgresql_where=text("saved_job_id IS NOT NULL"),
    ),
)

# Saved jobs: named, reusable job configurations (the admin console's "job"), per owner. A
# trigger (cron + timezone, or every_seconds) makes the saved job own one schedule row
# (`schedules.saved_job_id`), which the scheduler fires as any other.
saved_jobs = Table(
    "saved_jobs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("owner", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("definition_key", Text, nullable=False),
    Column("definition_version", Integer, nullable=True),
    Column("params", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("tags", ARRAY(Text), nullable=True),
    Column("max_attempts", Integer, nullable=True),
    Column("timeout_seconds", Float, nullable=True),
    Column("retry_delays", ARRAY(Float), nullable=True),
    # {"limit", "periodSeconds"}: its jobs' own rate limit (may only lower the definition's)
    Column("rate_limit", JSONB, nullable=True),
    Column("cron", Text, nullable=True),
    Column("every_seconds", Integer, nullable=True),
    Column("timezone", Text, nullable=False, server_default=text("'UTC'")),
    Column("created_by", Text, nullable=True),
    Column("updated_by", Text, nullable=True),
    _ts("created_at", nullable=False, default=True),
    _ts("updated_at", nullable=False, default=True),
    CheckConstraint("cron IS NULL OR every_seconds IS NULL", name="saved_jobs_one_trigger_check"),
    # Names are unique per owner; the owner's list (plain tokens) walks this index.
    Index("saved_jobs_owner_name_idx", "owner", "name", unique=True),
)

dead_letter_jobs = Table(
    "dead_letter_jobs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("definition_key", Text, nullable=False),
    Column("definition_version", Integer, nullable=False),
    Column("queue", Text, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("owner", Text, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("history", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    _ts("created_at", nullable=False),
    _ts("failed_at", nullable=False, default=True),
    _ts("redriven_at"),
    Column("redriven_job_id", UUID(as_uuid=True), nullable=True),
    Index("dead_letter_jobs_definition_idx", "definition_key", "failed_at"),
    Index("dead_letter_jobs_failed_idx", "failed_at"),
)

scheduler_leader = Table(
    "scheduler_leader",
    metadata,
    Column("name", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    _ts("acquired_at", nullable=False, default=True),
    _ts("lease_expires_at", nullable=False),
)

# What the pruner deleted, per definition/queue/status: Prometheus counters are live rows plus
# this tally, so they never go down when finished rows are pruned.
job_counts_pruned = Table(
    "job_counts_pruned",
    metadata,
    Column("definition_key", Text, nullable=False),
    Column("queue", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("jobs", BigInteger, nullable=False, server_default=text("0")),
    Column("attempts", BigInteger, nullable=False, server_default=text("0")),
    Column("retries", BigInteger, nullable=False, server_default=text("0")),
    Column("rescues", BigInteger, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("definition_key", "queue", "status", name="job_counts_pruned_pkey"),
)

# What `log.message` jobs write (jobserver.db.audit_log), searched by GET /v1/logs and pruned
# after LOG_RETENTION_DAYS. No foreign key to jobs: a row outlives its job (jobs are pruned
# after a week, audit rows after a month).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    _ts("created_at", nullable=False, default=True),
    Column("level", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("job_id", UUID(as_uuid=True), nullable=True),
    Column("owner", Text, nullable=True),
    Column("definition", Text, nullable=True),
    CheckConstraint("level IN ('debug','info','warn','error')", name="audit_log_level_check"),
    # Newest first, the since/until window and the pruner's oldest-first walk.
    Index("audit_log_created_idx", "created_at", "id"),
    Index("audit_log_category_idx", "category", "created_at", "id"),
    # warn and error: the rows searched for most, and few next to debug and info.
    Index(
        "audit_log_serious_idx",
        "created_at",
        "id",
        postgresql_where=text("level IN ('warn', 'error')"),
    ),
    # One row per job (a retried attempt finds its row), and the jobId filter.
    Index(
        "audit_log_job_idx",
        "job_id",
        unique=True,
        postgresql_where=text("job_id IS NOT NULL"),
    ),
    # Text anywhere in the message, ignoring case (ILIKE '%...%'): trigrams (pg_trgm).
    # (Left out by the migration when the server has no pg_trgm.)
    Index(
        "audit_log_message_trgm_idx",
        "message",
        postgresql_using="gin",
        postgresql_ops={"message": "gin_trgm_ops"},
    ),
)


# Stored credentials (jobserver/credentials): plain columns, and the secret fields sealed with
# AES-GCM under the key `key_id` names (`secret`), bound to the row's name and kind.
credentials = Table(
    "credentials",
    metadata,
    Column("name", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("username", Text, nullable=False),
    # [{"fingerprint": "SHA256:...", "key": "ssh-ed25519 AAAA..." | null}]
    Column("host_keys", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("public_key", Text, nullable=True),  # the client key's public half
    Column("public_key_fingerprint", Text, nullable=True),
    Column("secret_fields", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("options", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("key_id", Text, nullable=False),
    Column("secret", LargeBinary, nullable=False),
    _ts("created_at", nullable=False, default=True),
    _ts("updated_at", nullable=False, default=True),
    Column("created_by", Text, nullable=True),
    Column("updated_by", Text, nullable=True),
    CheckConstraint("kind IN ('ssh','smtp')", name="credentials_kind_check"),
)


# Named mail templates (`mail.send` renders them with the job's variables).
mail_templates = Table(
    "mail_templates",
    metadata,
    Column("name", Text, primary_key=True),
    Column("subject", Text, nullable=False),
    Column("text", Text, nullable=True),
    Column("html", Text, nullable=True),
    Column("description", Text, nullable=False, server_default=text("''")),
    _ts("created_at", nullable=False, default=True),
    _ts("updated_at", nullable=False, default=True),
    Column("created_by", Text, nullable=False),
    Column("updated_by", Text, nullable=False),
    CheckConstraint("text IS NOT NULL OR html IS NOT NULL", name="mail_templates_body_check"),
)


# Files jobs take and produce (jobserver/blobs): one row per blob whatever holds its bytes, a
# PostgreSQL large object (`lo_oid`) or a file under BLOB_DIR (`path`, relative to it). A blob
# belongs to its job (deleted with it); one no job took yet is deleted by the scheduler after
# BLOB_UNATTACHED_SECONDS. The trigger `blobs_free` (migration 0010, plain plpgsql) frees the
# bytes of every deleted row: it unlinks the large object, or queues the file in
# `blob_garbage` for the scheduler to remove (only a process with BLOB_DIR can).
blobs = Table(
    "blobs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("owner", Text, nullable=False),
    Column(
        "job_id",
        UUID(as_uuid=True),
        ForeignKey("jobs.id", ondelete="CASCADE", name="blobs_job_id_fkey"),
        nullable=True,
    ),
    Column("role", Text, nullable=False),
    Column("filename", Text, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("storage", Text, nullable=False),
    Column("lo_oid", OID, nullable=True),
    Column("path", Text, nullable=True),
    _ts("created_at", nullable=False, default=True),
    CheckConstraint("storage IN ('lo','dir')", name="blobs_storage_check"),
    CheckConstraint(
        "(storage = 'lo' AND lo_oid IS NOT NULL AND path IS NULL)"
        " OR (storage = 'dir' AND path IS NOT NULL AND lo_oid IS NULL)",
        name="blobs_location_check",
    ),
    CheckConstraint("size >= 0", name="blobs_size_check"),
    CheckConstraint("char_length(role) BETWEEN 1 AND 32", name="blobs_role_check"),
    # A job's blobs (and the cascade when a job goes).
    Index("blobs_job_idx", "job_id"),
    # The scheduler's walk of blobs no job took, oldest first.
    Index("blobs_unattached_idx", "created_at", postgresql_where=text("job_id IS NULL")),
)

# Files of deleted directory blobs, waiting for the scheduler to remove them (then the row).
blob_garbage = Table(
    "blob_garbage",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("path", Text, nullable=False),
    _ts("created_at", nullable=False, default=True),
)

# The control channel (jobserver/db/runner_commands.py): a command to one worker (`target`) or
# to every live one (NULL), announced by NOTIFY with its id; each worker that acts on it writes
# one reply row. Both go with the scheduler's pruner after a day.
runner_commands = Table(
    "runner_commands",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("target", Text, nullable=True),
    Column("command", Text, nullable=False),
    Column("args", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _ts("created_at", nullable=False, default=True),
    Column("created_by", Text, nullable=True),
    Index("runner_commands_created_idx", "created_at"),
)

runner_replies = Table(
    "runner_replies",
    metadata,
    Column(
        "command_id",
        UUID(as_uuid=True),
        ForeignKey("runner_commands.id", ondelete="CASCADE", name="runner_replies_command_id_fkey"),
        nullable=False,
    ),
    Column("worker_id", Text, nullable=False),
    Column("reply", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _ts("answered_at", nullable=False, default=True),
    PrimaryKeyConstraint("command_id", "worker_id", name="runner_replies_pkey"),
)

# Durable per-queue pause (jobserver/db/paused_queues.py): a queue listed here is claimed by no
# worker until its row is deleted (resume). Workers keep the set in memory.
paused_queues = Table(
    "paused_queues",
    metadata,
    Column("queue", Text, primary_key=True),
    _ts("paused_at", nullable=False, default=True),
    Column("paused_by", Text, nullable=True),
    Column("reason", Text, nullable=True),
)

# Stored workflows (jobserver/db/workflows.py): a named DAG of steps per owner, versioned. The
# `workflows` row holds the latest version's fields; every version (the first included) is a
# `workflow_versions` row that runs point at, so an edit never changes a run under way. DELETE
# is soft (`deleted_at`): the name is free again, the versions stay for the runs.
workflows = Table(
    "workflows",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("owner", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("steps", JSONB, nullable=False),
    Column("created_by", Text, nullable=True),
    Column("updated_by", Text, nullable=True),
    _ts("created_at", nullable=False, default=True),
    _ts("updated_at", nullable=False, default=True),
    _ts("deleted_at"),
    Index(
        "workflows_owner_name_idx",
        "owner",
        "name",
        unique=True,
        postgresql_where=text("deleted_at IS NULL"),
    ),
)

workflow_versions = Table(
    "workflow_versions",
    metadata,
    Column(
        "workflow_id",
        UUID(as_uuid=True),
        ForeignKey("workflows.id", ondelete="CASCADE", name="workflow_versions_workflow_id_fkey"),
        nullable=False,
    ),
    Column("version", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("steps", JSONB, nullable=False),
    Column("created_by", Text, nullable=True),
    _ts("created_at", nullable=False, default=True),
    PrimaryKeyConstraint("workflow_id", "version", name="workflow_versions_pkey"),
)

# One run of one version: its input and the resolved plan of its steps (definition version,
# attempts, timeout), so a step made later (an expander's) is built as the run started it.
workflow_runs = Table(
    "workflow_runs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("workflow_id", UUID(as_uuid=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("owner", Text, nullable=False),
    Column("input_data", JSONB, nullable=True),
    Column("priority", Integer, nullable=False, server_default=text("0")),
    Column("plan", JSONB, nullable=False),
    Column("job_id", UUID(as_uuid=True), nullable=False),
    Column("idempotency_key", Text, nullable=True),
    Column("request_fingerprint", Text, nullable=True),
    Column("created_by", Text, nullable=True),
    _ts("created_at", nullable=False, default=True),
    _ts("cancelled_at"),
    ForeignKeyConstraint(
        ["workflow_id", "version"],
        ["workflow_versions.workflow_id", "workflow_versions.version"],
        ondelete="CASCADE",
        name="workflow_runs_version_fkey",
    ),
    Index("workflow_runs_workflow_idx", "workflow_id", "id"),
    Index(
        "workflow_runs_idempotency_idx",
        "owner",
        "idempotency_key",
        unique=True,
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
)

# The jobs of a run: per step its job (item -1) or its forEach children (item 0..n-1), and the
# expander job (kind 'expand') of a step made once its parents end. The primary key is what
# makes an expander idempotent: a retried one finds its step's rows and adds nothing. Plain
# references to jobs (no foreign key): a pruned job leaves its row, shown as pruned.
workflow_run_jobs = Table(
    "workflow_run_jobs",
    metadata,
    Column(
        "run_id",
        UUID(as_uuid=True),
        ForeignKey("workflow_runs.id", ondelete="CASCADE", name="workflow_run_jobs_run_id_fkey"),
        nullable=False,
    ),
    Column("kind", Text, nullable=False),
    Column("step", Text, nullable=False),
    Column("item", Integer, nullable=False),
    Column("job_id", UUID(as_uuid=True), nullable=False),
    PrimaryKeyConstraint("run_id", "kind", "step", "item", name="workflow_run_jobs_pkey"),
    CheckConstraint("kind IN ('step', 'expand')", name="workflow_run_jobs_kind_check"),
)

# The sliding log of rated starts (jobserver/db/job_runs.py, job_claim_rated): one row per claim
# of a rate-limited job, written in the claim's transaction, pruned once `expires_at` (start +
# period) passed.
rate_limit_starts = Table(
    "rate_limit_starts",
    metadata,
    Column("bucket", Text, nullable=False),
    _ts("started_at", nullable=False),
    _ts("expires_at", nullable=False),
    Index("rate_limit_starts_bucket_idx", "bucket", "started_at"),
    Index("rate_limit_starts_expires_idx", "expires_at"),
)
