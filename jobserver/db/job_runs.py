"""SQL for the worker side of `jobs`: claim, heartbeat, progress, and the batched outcomes.

Every write about a held job is fenced: it applies only while the row is `running` or
`cancelling`, held by this worker id, at this attempt. A write that matches nothing changed
nothing; callers compare the ids returned with the ids sent to find fenced-off jobs.

The hot path writes one row per transition and nothing else: a claim is one UPDATE of `jobs`
(status, worker, attempt + 1, lease, started_at) and a success is one UPDATE of `jobs` (result,
finished_at, and started_at moved on by the time the job waited in the worker's local buffer,
so it is when the job's code began, on the database clock). The standard events `created`,
`started` and `succeeded`, and the attempt row of the current run, are derived from those
columns by the readers (`db/events.py`, `db/attempts.py`). Rarer outcomes store their rows: a
failure, a timeout, a cancellation or a hand-back inserts the closed `job_attempts` row of that
attempt and its events (retry_scheduled, timed_out, failed, dead_lettered, cancelled,
handed_back); progress, custom (ctx.emit_event: details {"name", "data"}), hook_failed and
events_truncated (the worker's per-job event cap was reached) are stored events. A job's
metadata (ctx.set_metadata) is merged into `jobs.metadata` by a fenced write of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import asyncpg

from jobserver.db.conn import Conn
from jobserver.db.dlq import dlq_insert_from_jobs
from jobserver.db.feed import announce

# Settings for the worker's own sessions (claims, acknowledgements). Right after a bulk insert,
# before autovacuum has analyzed `jobs`, the planner believes the table is tiny and plans the
# claim as a bitmap scan of every ready row plus a sort (tens of ms per claim at 20k rows), and a
# batched acknowledgement as a hash join over a scan of `jobs`. A claim must always walk
# jobs_ready_idx in order and stop after LIMIT rows, and an acknowledgement must look each row up
# by primary key, so those dedicated sessions rule the other plans out.
# JIT is off too: the disabled plans' cost penalty puts every claim over jit_above_cost, and
# compiling a limited claim took 1.5 s for a statement that runs in 2 ms.
_PLANS = {"enable_seqscan": "off", "enable_bitmapscan": "off", "jit": "off"}
# The claim session plans each claim once (a generic plan, kept by the prepared statement):
# planning it anew each time cost 0.9 to 2.4 ms per claim (pg_stat_statements' plan time in
# bench/dependencies.py's burn-down), 10 % of that burn-down. A generic plan is made once, from
# whatever the statistics said then, so no join of it may depend on them: nested loops are ruled
# out wherever another join exists (the fair walk's LATERAL probes have none and keep theirs),
# and the claim's UPDATE reads `jobs` by primary key for the chosen ids only (`_CLAIMED`). A
# generic plan made while `jobs` looked empty had walked the whole table once per chosen row
# (1.2 s for a claim of 300 among 20,000). tests/db/test_queue_index.py holds both.
CLAIM_SESSION_SETTINGS = {
    **_PLANS,
    "enable_nestloop": "off",
    "plan_cache_mode": "force_generic_plan",
}
# The acknowledgement session also rules out nested loops: a batch joins its unnest()ed values
# to the rows it reads by primary key (`j.id = ANY($2)`, see below), and a hash join does that in
# one pass whatever the statistics say. Right after a bulk insert they said one row was held,
# and the planner looped over the whole batch once per row (500 ms instead of 20 ms per 1,000).
WRITE_SESSION_SETTINGS = {**_PLANS, "enable_nestloop": "off"}

# When the job's code began, on the database clock: the claim's now() (jobs.started_at as the
# claim wrote it) plus the time the worker kept the job in its local buffer (`d.waited`, measured
# by the worker's monotonic clock). It errs early by at most the claim's own round trip, so it is
# never after anything the running job did (progress, events) nor before the claim.
# A rate-limited job keeps the claim's started_at: that is the start its bucket's log counted.
_STARTED = (
    "CASE WHEN j.rate_bucket IS NULL"
    " THEN LEAST(j.started_at + make_interval(secs => d.waited), now()) ELSE j.started_at END"
)

# The fence every worker write repeats; $1 is always the worker id. Writes address rows by id;
# the fence is written `(…) IS TRUE` (same truth table: status is never NULL and a NULL
# worker_id fails either way) so the planner cannot answer it from jobs_held_idx instead of the
# primary key: that index holds an entry for every row version a worker ever ran until vacuum
# removes them, so walking it grows with the jobs done (150 ms per batch after 20k jobs).
_HELD = "(j.status IN ('running', 'cancelling') AND j.worker_id = $1) IS TRUE"
_BY_BATCH_ID = "j.id = d.id AND j.id = ANY($2::uuid[]) AND j.attempt = d.attempt"

# Batched writes address their rows twice: joined to the unnest()ed batch `d` for the values,
# and `j.id = ANY($2)` (the batch's ids), so `jobs` is always read by primary-key lookups, never
# by a walk of the whole primary key (which enable_seqscan=off would otherwise pick when the
# statistics are stale).

# -- claims -------------------------------------------------------------------------------------
#
# A claim is fair between owners: at equal priority, every owner with ready jobs gets its turn
# before any owner gets a second one, however deep one owner's backlog is. One statement:
#
# 1. `owners`: the owners with queued rows, found by a loose index scan of jobs_owner_queued_idx
#    (one index probe per owner, not a walk of the rows), in descending name order starting
#    below the worker's cursor and wrapping around, at most $7 of them. The worker moves its
#    cursor past the owners it was served, so with more owners than that they take turns.
# 2. `fair`: a share of ceil(limit / owners) rows from each owner, walking that owner's part of
#    the index in claim order and skipping rows other claimers hold (SKIP LOCKED).
# 3. `fill`: when there are several owners, the global claim-order walk of jobs_ready_idx for up
#    to `limit` rows: a claim still comes back full when some owners have fewer ready rows than
#    their share (delayed jobs, other definitions or queues), and an owner's higher-priority
#    rows beyond its share still come first. With one owner it is not run.
# 4. Rank each candidate within its (owner, priority) and take `limit` rows by priority, then
#    shares before top-ups, then rank, then age: round robin between owners at each priority.
#    Rows locked but not taken are released when the statement ends.
#
# With a single owner this is the walk it always was plus a few index probes.

# The filters every candidate passes: ready, not expired, one of ours, in our queues, not in a
# paused queue, not rate-limited (those only the rated claim takes, see `job_claim_rated`).
# The paused queues come as a parameter ({skip}: NULL when none is paused, the
# common case, which costs nothing), from the set the worker keeps in memory: the claim never
# reads paused_queues. A private queue (`@<worker id>`, a broadcast's children: see
# db/broadcast.py) is claimed by its worker only ($1), whatever queues it serves.
_READY = """j.status = 'queued' AND j.run_at <= now() AND {rated}
      AND (j.expires_at IS NULL OR j.expires_at > now())
      AND (j.definition_key || '@' || j.definition_version) = ANY($3::text[])
      AND CASE WHEN left(j.queue, 1) = '@' THEN j.queue = '@' || $1::text
          ELSE $4::text[] IS NULL OR j.queue = ANY($4::text[]) END
      AND ({skip}::text[] IS NULL OR j.queue <> ALL({skip}::text[]))"""
_READY_WITH = _READY.replace("{rated}", "j.rate_bucket IS NULL")

# The next owner with queued rows below `{before}` in name order, wrapping to the highest one.
# The walk goes down the index: each probe lands on the newest queued rows of an owner, which
# are live, where a walk up would first step over every row claimed since the last vacuum.
_NEXT_OWNER = """coalesce(
        (SELECT q.owner FROM jobs q WHERE {queued} AND q.owner < {before}
         ORDER BY q.owner DESC LIMIT 1),
        (SELECT owner FROM highest))"""
_QUEUED = "q.status = 'queued'"
# The rated claim walks the owners of queued rate-limited rows (jobs_rate_owner_queued_idx).
_RATED_QUEUED = "q.status = 'queued' AND q.rate_bucket IS NOT NULL"


def _owners(queued: str = _QUEUED) -> str:
    """The `highest` and `owners` CTEs: the walk of owners with `queued` rows from the
    cursor ($6), at most $7 of them. OFFSET 0 keeps each probe a subquery evaluated once
    (not inlined into every use)."""
    return f"""highest AS MATERIALIZED (
    SELECT q.owner FROM jobs q WHERE {queued} ORDER BY q.owner DESC LIMIT 1
),
owners(owner, first, n) AS (
    SELECT s.owner, s.owner, 1
    FROM (SELECT {_NEXT_OWNER.format(queued=queued, before="$6::text")} AS owner OFFSET 0) s
    WHERE s.owner IS NOT NULL
    UNION ALL
    SELECT s.owner, o.first, o.n + 1
    FROM owners o CROSS JOIN LATERAL (
        SELECT {_NEXT_OWNER.format(queued=queued, before="o.owner")} AS owner OFFSET 0) s
    WHERE o.n < $7 AND s.owner <> o.first
)"""


_OWNERS = _owners()

_CANDIDATES = """share AS (
    SELECT ceil($2::float8 / greatest(count(*), 1))::int AS m, count(*) AS k FROM owners o
    WHERE {owner_open}
),
fair AS (
    SELECT p.* FROM owners o CROSS JOIN LATERAL (
        SELECT {cols} FROM jobs j
        WHERE j.owner = o.owner AND {ready}
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT (SELECT m FROM share)
        FOR UPDATE OF j SKIP LOCKED
    ) p
    WHERE {owner_open}
),
fill AS (
    {fill}
),
ranked AS (
    SELECT c.*, row_number() OVER (PARTITION BY c.owner, c.priority ORDER BY c.run_at, c.id) AS rn
    FROM (SELECT *, 0 AS extra FROM fair
          UNION ALL
          SELECT *, 1 FROM fill WHERE NOT EXISTS (SELECT FROM fair WHERE fair.id = fill.id)) c
)"""

_CAND_COLS = "j.id, j.owner, j.definition_key, j.priority, j.run_at"
# The fill walk: the global claim order of jobs_ready_idx.
_FILL = """SELECT {cols} FROM jobs j
    WHERE {ready} AND (SELECT k FROM share) > 1 {fill_extra}
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT $2
    FOR UPDATE OF j SKIP LOCKED"""


def _candidates(
    ready: str, owner_open: str, fill_extra: str, *, cols: str = _CAND_COLS, fill: str = _FILL
) -> str:
    """The `share`, `fair`, `fill` and `ranked` CTEs (see above) of rows passing `ready`, from
    owners passing `owner_open`; `fill_extra` narrows the fill walk."""
    return _CANDIDATES.format(
        ready=ready,
        owner_open=owner_open,
        cols=cols,
        fill=fill.format(cols=cols, ready=ready, fill_extra=fill_extra),
    )


# The claim's own time, not its transaction's: a limited or rated claim runs after a lock
# statement in one transaction, and a job that ended between that transaction's BEGIN and the
# claim (freeing the slot it takes) must not look as if it overlapped the job that replaced it.
# `j.id = ANY(...)`: `jobs` is read by primary key for the chosen rows alone, whatever the plan
# (see CLAIM_SESSION_SETTINGS).
_CLAIMED = """claimed AS (
    UPDATE jobs j SET status = 'running', worker_id = $1, attempt = j.attempt + 1,
        lease_expires_at = statement_timestamp() + make_interval(secs => $5),
        started_at = statement_timestamp(), updated_at = statement_timestamp()
    FROM chosen c WHERE j.id = c.id AND j.id = ANY(ARRAY(SELECT id FROM chosen))
    RETURNING j.id, j.definition_key, j.definition_version, j.params, j.attempt,
        j.max_attempts, j.timeout_seconds, j.expires_at, j.owner, j.priority, j.run_at, c.extra,
        c.rn{returning}
)"""
# The claimed jobs, announced on the feed (jobserver/db/feed.py).
_FED = f"""(SELECT {announce("SELECT id FROM claimed")} AS fed) f"""
_TAKE = (
    _CLAIMED.format(returning="")
    + f"""
SELECT id, definition_key, definition_version, params, attempt, max_attempts, timeout_seconds,
    expires_at, owner
FROM claimed, {_FED} ORDER BY priority DESC, extra, rn, run_at, id"""
)

_ORDER = "ORDER BY priority DESC, extra, rn, run_at, id"

# No limits among ours: fair pick and take, nothing else.
_CLAIM = f"""
WITH RECURSIVE {_OWNERS},
{_candidates(_READY_WITH.format(skip="$8"), "true", "")},
chosen AS (SELECT id, extra, rn FROM ranked {_ORDER} LIMIT $2),
{_TAKE}
"""

# Owner limits: an owner's quota (the smallest max_running of its active tokens, else the
# default $10 for token owners) minus its held jobs. An owner with a quota this claim did not
# lock (it appeared after the lock statement) gets nothing this time.
_OWNER_QUOTA = """coalesce(
        (SELECT min(t.max_running) FROM api_tokens t
         WHERE t.owner = {owner} AND t.revoked_at IS NULL),
        CASE WHEN {owner} NOT LIKE 'system:%' THEN $10::int END)"""

# The caps of a limited claim (after `owners`): `held`, `caps` ($8 keys, $9 limits) and `ocaps`
# ($10 the default quota, $11 the owners whose quota this claim locked).
_CAPS = f"""held AS (
    SELECT r.owner, r.definition_key FROM jobs r WHERE r.status IN ('running', 'cancelling')
),
caps AS (
    -- free slots per concurrency-limited definition key, counted across the whole fleet
    SELECT l.k, l.lim - (SELECT count(*) FROM held h WHERE h.definition_key = l.k) AS free
    FROM unnest($8::text[], $9::int[]) AS l(k, lim)
),
ocaps AS (
    -- free slots per owner with a quota, counted across the whole fleet
    SELECT o.owner, CASE WHEN o.owner = ANY($11::text[])
        THEN q.lim - (SELECT count(*) FROM held h WHERE h.owner = o.owner) ELSE 0 END AS free
    FROM owners o CROSS JOIN LATERAL (SELECT {_OWNER_QUOTA.format(owner="o.owner")} AS lim) q
    WHERE q.lim IS NOT NULL
)"""
# Candidates of a limited claim: none of a definition or an owner at its cap.
_UNCAPPED = " AND j.definition_key <> ALL (SELECT k FROM caps WHERE free <= 0)"
_OWNER_OPEN = "o.owner <> ALL (SELECT c.owner FROM ocaps c WHERE c.free <= 0)"
# The owner test is written `(… = ANY (ARRAY(…))) IS TRUE` (same truth table here: owner is
# never NULL) so that it can only filter the fill walk of jobs_ready_idx in claim order, which
# stops after LIMIT rows. Written `IN (SELECT …)`, the planner made it a hash semi-join fed by
# every ready row of those owners, sorted (708,000 rows and 4.1 s a claim at a million queued
# jobs); as a bare `= ANY (ARRAY(…))` it became an index condition on jobs_owner_idx, read
# every ready row the same way, and sorted them (100 owners, 100,000 queued: 350 ms a claim).
_FILL_OPEN = (
    "AND (j.owner = ANY (ARRAY(SELECT owner FROM owners))) IS TRUE"
    " AND j.owner <> ALL (SELECT c.owner FROM ocaps c WHERE c.free <= 0)"
)
# The candidates within the caps (after `ranked`): `by_definition`, then `allowed`.
_WITHIN_CAPS = f"""by_definition AS (
    -- at most `free` rows of each limited definition, in fair order
    SELECT r.* FROM (SELECT *, row_number() OVER (PARTITION BY definition_key {_ORDER}) AS drn
                     FROM ranked) r
    LEFT JOIN caps c ON c.k = r.definition_key
    WHERE c.k IS NULL OR r.drn <= c.free
),
allowed AS (
    -- and at most `free` rows of each owner with a quota
    SELECT r.* FROM (SELECT *, row_number() OVER (PARTITION BY owner {_ORDER}) AS orn
                     FROM by_definition) r
    LEFT JOIN ocaps c ON c.owner = r.owner
    WHERE c.owner IS NULL OR r.orn <= c.free
)"""

_CLAIM_LIMITED = f"""
WITH RECURSIVE {_OWNERS},
{_CAPS},
{_candidates(_READY_WITH.format(skip="$12") + _UNCAPPED, _OWNER_OPEN, _FILL_OPEN)},
{_WITHIN_CAPS},
chosen AS (SELECT id, extra, rn FROM allowed {_ORDER} LIMIT $2),
{_TAKE}
"""

# The keys a limited claim locks (after `owners`): its limited definition keys ($3) and the
# owners with a quota ($4: the default quota).
_LOCK_KEYS = f"""SELECT 'jobserver.limit:' || k AS key FROM unnest($3::text[]) AS k
    UNION
    SELECT 'jobserver.owner:' || o.owner FROM owners o
    WHERE {_OWNER_QUOTA.format(owner="o.owner").replace("$10", "$4")} IS NOT NULL"""

# The advisory locks of a limited claim: one per concurrency-limited definition key of ours,
# one per owner with a quota and queued rows. Each is *tried*, never waited for: a key another
# claimer holds is left out of this claim (its rows are not taken: the cap counts as full), as
# is an owner whose lock another claimer holds. Waiting serialized every claimer of the fleet
# behind the one holding a key (every default worker has encode.video's limit of 3): with two
# worker processes the second one's claims spent their time queued on that lock (12 ms a claim,
# as long as the claim itself) and two processes ran 1.1x one. Skipping takes nothing a
# waiting claim would have been allowed: the holder counts and claims that key's rows itself.
# The answer is (key, got) in key order.
_CLAIM_LOCKS = f"""
WITH RECURSIVE {_OWNERS.replace("$6", "$1").replace("$7", "$2")},
keys AS (
    {_LOCK_KEYS}
)
SELECT key, pg_try_advisory_xact_lock(hashtextextended(key, 0)) AS got FROM (
    SELECT key FROM keys ORDER BY key) s
"""

# Owners a claim visits at most (their turns rotate beyond that: see `next_owner_cursor`).
MAX_FAIR_OWNERS = 256
_OWNER_KEY = "jobserver.owner:"
_LIMIT_KEY = "jobserver.limit:"


def next_owner_cursor(cursor: str, rows: Sequence[Any]) -> str:
    """Where the next claim starts its walk of owners: at the last owner this claim served in
    the walk's order (names below `cursor` downwards, then from the highest down to it)."""
    if not rows:
        return cursor
    served: set[str] = {r[8] for r in rows}
    wrapped = [o for o in served if o >= cursor]
    return min(wrapped) if wrapped else min(served)


async def job_claim_available(
    conn: Conn,
    worker_id: str,
    limit: int,
    refs: Sequence[str],
    queues: Sequence[str] | None,
    lease_seconds: float,
    limits: dict[str, int] | None = None,
    *,
    owner_quotas: bool = False,
    owner_default: int | None = None,
    cursor: str = "",
    skip_queues: Sequence[str] | None = None,
) -> list[asyncpg.Record]:
    """Claim up to `limit` ready jobs of `refs` ("key@version") in one round trip, fairly
    between owners (see above), none of the queues in `skip_queues` (the paused ones).

    Returns (id, definition_key, definition_version, params, attempt, max_attempts,
    timeout_seconds, expires_at, owner) in claim order. Without limits this is one autocommit
    UPDATE. With `limits` ({definition key: concurrencyLimit}) or owner quotas (`owner_quotas`:
    some token has max_running; `owner_default`: OWNER_MAX_RUNNING) it runs in a transaction
    that first tries one advisory lock per limited key and per owner with a quota and queued
    rows, so the count of held jobs (buffered ones included) and the claim are atomic across
    the fleet; the keys another claimer holds are left out of this claim (see _CLAIM_LOCKS).
    """
    if limit <= 0:
        return []
    qs = list(queues) if queues else None
    skip = list(skip_queues) if skip_queues else None
    quotas = owner_quotas or owner_default is not None
    if not limits and not quotas:
        return await conn.fetch(
            _CLAIM,
            worker_id,
            limit,
            list(refs),
            qs,
            float(lease_seconds),
            cursor,
            MAX_FAIR_OWNERS,
            skip,
        )
    keys = sorted(limits or {})
    async with conn.transaction():
        tried = await conn.fetch(
            _CLAIM_LOCKS, cursor, MAX_FAIR_OWNERS, keys, owner_default if quotas else None
        )
        got = {r[0] for r in tried if r[1]}
        owners = [k[len(_OWNER_KEY) :] for k in got if k.startswith(_OWNER_KEY)]
        # a limited key whose lock another claimer holds: no free slot in this claim
        caps = [(limits or {})[k] if _LIMIT_KEY + k in got else 0 for k in keys]
        return await conn.fetch(
            _CLAIM_LIMITED,
            worker_id,
            limit,
            list(refs),
            qs,
            float(lease_seconds),
            cursor,
            MAX_FAIR_OWNERS,
            keys,
            caps,
            owner_default,
            owners,
            skip,
        )


# -- rated claims -------------------------------------------------------------------------------
#
# Rate limits (jobserver/core/rate_limits.py): a rate-limited job carries its bucket and its N
# starts per period (seconds) from its submission; the claims above never take it. The rated
# claim does, for the rated definitions of a worker, in one transaction of two statements:
#
# 1. `_RATED_LOCKS`: the buckets with queued rows (a loose index scan of jobs_rate_queued_idx,
#    at most MAX_RATE_BUCKETS) of our rated keys, the concurrency-limited keys among those, and
#    the owners with a quota among the owners of queued rated rows (the walk of the ordinary
#    claim, on jobs_rate_owner_queued_idx), each locked by an advisory xact lock in one sorted
#    order. A bucket's lock serializes every claimer of that bucket, fleet-wide; the
#    `jobserver.limit:` and `jobserver.owner:` locks are the ones the ordinary limited claim
#    takes, so a concurrency limit and an owner's running quota hold across both claims. Those
#    sort before `jobserver.rate:`, so a claimer never waits in an order another one reversed.
#    Unlimited claims take no bucket lock.
# 2. `_CLAIM_RATED`: the ordinary limited claim's pieces on rated rows of the locked buckets:
#    the walk of owners, a fair share of each one's rows and a fill walk (per bucket, on
#    jobs_rate_queued_idx) ranked round robin between owners at each priority, within the
#    concurrency caps and the owners' running quotas. Then, in that fair order, each row counts
#    the starts of its bucket within its own period in `rate_limit_starts` and is taken while
#    that count plus the rows ahead of it in its bucket stays under its N (a row ahead that is
#    not taken still counts: stricter, never looser, when jobs of one bucket lowered their
#    limit differently). The taken rows' starts go into the log in the same statement, and the
#    answer says when the earliest skipped row's bucket opens its next slot (its oldest start in
#    the window plus its period), and whether a cap held rows back (`capped`: a concurrency
#    limit or an owner's quota of ours was full, or cut the candidates), which no rate slot
#    opening frees: the worker then runs the rated claim again when one of its jobs ends.
#
# Why a sliding log and not a token bucket / GCRA row per bucket: the guarantee is "at most N
# starts in ANY window of the period", which a GCRA with a burst of N breaks (N at once, then
# one more a period/N later, inside the same window); the log is exact, lets the jobs of one
# bucket carry different (lower) limits, and costs one small row per rated start (pruned by
# the scheduler's pruner once it is older than its period).

MAX_RATE_BUCKETS = 256
_RATE_KEY = "jobserver.rate:"

_RATED_LOCKS = f"""
WITH RECURSIVE {_owners(_RATED_QUEUED).replace("$6", "$1").replace("$7", "$2")},
b(bucket, n) AS (
    (SELECT q.rate_bucket, 1 FROM jobs q WHERE q.status = 'queued' AND q.rate_bucket IS NOT NULL
     ORDER BY q.rate_bucket LIMIT 1)
    UNION ALL
    SELECT s.bucket, b.n + 1 FROM b CROSS JOIN LATERAL (
        SELECT q.rate_bucket AS bucket FROM jobs q
        WHERE q.status = 'queued' AND q.rate_bucket IS NOT NULL AND q.rate_bucket > b.bucket
        ORDER BY q.rate_bucket LIMIT 1) s
    WHERE b.n < $6
),
keys AS (
    SELECT 'jobserver.rate:' || b.bucket AS key FROM b
    WHERE split_part(b.bucket, ':', 1) = ANY($5::text[])
    UNION
    {_LOCK_KEYS}
)
SELECT key, pg_advisory_xact_lock(hashtextextended(key, 0))::text FROM (
    SELECT key FROM keys ORDER BY key) s
"""

_RATED_COLS = _CAND_COLS + ", j.rate_bucket, j.rate_limit, j.rate_period"
# Rated candidates: ready rate-limited rows of the buckets this claim locked ($13).
_RATED_READY = _READY.replace(
    "{rated}", "j.rate_bucket IS NOT NULL AND j.rate_bucket = ANY($13::text[])"
).format(skip="$12")
# The fill walk of the rated claim: each locked bucket's rows in claim order.
_RATED_FILL = """SELECT p.* FROM unnest($13::text[]) AS b(bucket) CROSS JOIN LATERAL (
        SELECT {cols} FROM jobs j
        WHERE j.rate_bucket = b.bucket AND {ready} {fill_extra}
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT $2
        FOR UPDATE OF j SKIP LOCKED
    ) p
    WHERE (SELECT k FROM share) > 1"""

_RATED_CANDIDATES = _candidates(
    _RATED_READY + _UNCAPPED, _OWNER_OPEN, _FILL_OPEN, cols=_RATED_COLS, fill=_RATED_FILL
)

_CLAIM_RATED = f"""
WITH RECURSIVE {_owners(_RATED_QUEUED)},
{_CAPS},
{_RATED_CANDIDATES},
{_WITHIN_CAPS},
rated AS (
    -- the starts of each row's bucket within its own period, and its rank in the bucket
    SELECT a.*, w.used, w.oldest,
        row_number() OVER (PARTITION BY a.rate_bucket {_ORDER}) AS brn
    FROM allowed a CROSS JOIN LATERAL (
        SELECT count(*) AS used, min(s.started_at) AS oldest FROM rate_limit_starts s
        WHERE s.bucket = a.rate_bucket
            AND s.started_at > statement_timestamp() - make_interval(secs => a.rate_period)) w
),
chosen AS (SELECT id, extra, rn FROM rated WHERE used + brn <= rate_limit {_ORDER} LIMIT $2),
{_CLAIMED.format(returning=", j.rate_bucket, j.rate_period")},
logged AS (
    INSERT INTO rate_limit_starts (bucket, started_at, expires_at)
    SELECT rate_bucket, statement_timestamp(),
        statement_timestamp() + make_interval(secs => rate_period)
    FROM claimed
),
blocked AS (
    SELECT (SELECT extract(epoch FROM min(coalesce(r.oldest, statement_timestamp())
                + make_interval(secs => r.rate_period)) - statement_timestamp())::float8
            FROM rated r WHERE r.used + r.brn > r.rate_limit) AS next_in,
        -- a concurrency limit or an owner's quota was full, or cut candidates: a slot may
        -- free when a held job ends (no rate slot to wait for)
        (EXISTS (SELECT FROM caps WHERE free <= 0) OR EXISTS (SELECT FROM ocaps WHERE free <= 0)
            OR EXISTS (SELECT FROM ranked r WHERE r.id NOT IN (SELECT id FROM allowed)))
            AS capped
)
SELECT c.id, c.definition_key, c.definition_version, c.params, c.attempt, c.max_attempts,
    c.timeout_seconds, c.expires_at, c.owner, b.next_in, b.capped
FROM blocked b CROSS JOIN {_FED} LEFT JOIN claimed c ON true
ORDER BY c.priority DESC, c.extra, c.rn, c.run_at, c.id
"""


class RatedClaim(NamedTuple):
    """What a rated claim answers (see `job_claim_rated`)."""

    rows: list[tuple[object, ...]]
    next_in: float | None  # seconds until a bucket a ready row was skipped for opens a slot
    capped: bool  # a concurrency limit or an owner's quota held rows back


async def job_claim_rated(
    conn: Conn,
    worker_id: str,
    limit: int,
    rated_refs: Sequence[str],
    queues: Sequence[str] | None,
    lease_seconds: float,
    limits: dict[str, int] | None = None,
    *,
    owner_default: int | None = None,
    cursor: str = "",
    skip_queues: Sequence[str] | None = None,
) -> RatedClaim:
    """Claim up to `limit` ready rate-limited jobs of `rated_refs` ("key@version") within
    their buckets' limits, fairly between owners and within the owners' running quotas
    (`owner_default`: OWNER_MAX_RUNNING; a token's max_running always applies) and `limits`,
    the concurrency limits of ours (see above). `cursor` is where the walk of owners starts
    (`next_owner_cursor` of the previous rated claim's rows).

    Returns (rows, next_in, capped): the rows as `job_claim_available` answers them, the
    seconds until the earliest bucket a ready row was skipped for opens a slot (None: no row
    was skipped for its rate limit; the worker sleeps until then or until woken), and whether
    a concurrency limit or an owner's quota held rows back (a slot frees when a held job ends:
    the worker looks again when one of its own ends, as after a limited ordinary claim).
    """
    if limit <= 0 or not rated_refs:
        return RatedClaim([], None, False)
    keys = sorted({r.rsplit("@", 1)[0] for r in rated_refs})
    capped = sorted(k for k in (limits or {}) if k in keys)
    async with conn.transaction():
        locked = await conn.fetch(
            _RATED_LOCKS, cursor, MAX_FAIR_OWNERS, capped, owner_default, keys, MAX_RATE_BUCKETS
        )
        buckets = [r[0][len(_RATE_KEY) :] for r in locked if r[0].startswith(_RATE_KEY)]
        if not buckets:
            return RatedClaim([], None, False)
        owners = [r[0][len(_OWNER_KEY) :] for r in locked if r[0].startswith(_OWNER_KEY)]
        found = await conn.fetch(
            _CLAIM_RATED,
            worker_id,
            limit,
            list(rated_refs),
            list(queues) if queues else None,
            float(lease_seconds),
            cursor,
            MAX_FAIR_OWNERS,
            capped,
            [(limits or {})[k] for k in capped],
            owner_default,
            owners,
            list(skip_queues) if skip_queues else None,
            buckets,
        )
    next_in = found[0][9] if found else None
    rows = [tuple(r)[:9] for r in found if r[0] is not None]
    return RatedClaim(
        rows,
        None if next_in is None else max(0.0, float(next_in)),
        bool(found and found[0][10]),
    )


async def job_heartbeat(
    conn: Conn,
    worker_id: str,
    ids: Sequence[uuid.UUID],
    attempts: Sequence[int],
    lease_seconds: float,
) -> list[asyncpg.Record]:
    """Extend the lease of every job this worker holds in one statement.

    Returns (id, status) of the rows still held; a sent id missing from the answer was lost
    (rescued or taken over) and its result must be dropped.
    """
    if not ids:
        return []
    return await conn.fetch(
        f"""
        UPDATE jobs j SET lease_expires_at = now() + make_interval(secs => $4)
        FROM unnest($2::uuid[], $3::int[]) AS h(id, attempt)
        WHERE j.id = h.id AND j.attempt = h.attempt AND {_HELD}
        RETURNING j.id, j.status
        """,
        worker_id,
        list(ids),
        list(attempts),
        float(lease_seconds),
    )


async def job_held_status(
    conn: Conn, worker_id: str, ids: Sequence[uuid.UUID], attempts: Sequence[int]
) -> list[asyncpg.Record]:
    """(id, status) of the given jobs still held by this worker at these attempts.

    The cancel fallback: `cancelling` rows are jobs to cancel, missing rows were lost.
    """
    if not ids:
        return []
    return await conn.fetch(
        f"""
        SELECT j.id, j.status FROM jobs j
        JOIN unnest($2::uuid[], $3::int[]) AS h(id, attempt) ON j.id = h.id
        WHERE j.attempt = h.attempt AND {_HELD}
        """,
        worker_id,
        list(ids),
        list(attempts),
    )


async def job_progress(
    conn: Conn,
    worker_id: str,
    job_id: uuid.UUID,
    attempt: int,
    progress_json: str,
    *,
    event: bool = True,
) -> bool:
    """Store progress on the job and (with `event`) as a `progress` event; False when fenced
    off. Without `event` (the job's event cap is reached) only `jobs.progress` changes."""
    row = await conn.fetchval(
        f"""
        WITH p AS (
            UPDATE jobs j SET progress = $4::text::jsonb, updated_at = now()
            WHERE j.id = $2 AND j.attempt = $3 AND {_HELD}
            RETURNING j.id
        ), ev AS (
            INSERT INTO job_events (job_id, event, worker_id, attempt, details)
            SELECT id, 'progress', $1, $3, $4::text::jsonb FROM p WHERE $5
        )
        SELECT count(*) + 0 * coalesce({announce("SELECT id FROM p")}, 0) FROM p
        """,
        worker_id,
        job_id,
        attempt,
        progress_json,
        event,
    )
    return bool(row)


async def job_metadata_merge(
    conn: Conn,
    worker_id: str,
    job_id: uuid.UUID,
    attempt: int,
    patch_json: str,
    max_bytes: int,
) -> tuple[bool, int | None]:
    """Merge the object `patch_json` shallowly into the job's metadata (its keys replace the
    stored ones), fenced; the merged object must print to at most `max_bytes` bytes.

    Returns (stored, size): stored False with a size is a merge over `max_bytes` (nothing
    written); with size None the write was fenced off (the job is no longer held)."""
    row = await conn.fetchrow(
        f"""
        WITH m AS (
            UPDATE jobs j SET metadata = coalesce(j.metadata, '{{}}'::jsonb) || $4::text::jsonb,
                updated_at = now()
            WHERE j.id = $2 AND j.attempt = $3 AND {_HELD}
                AND octet_length((coalesce(j.metadata, '{{}}'::jsonb) || $4::text::jsonb)::text)
                    <= $5
            RETURNING j.id
        )
        SELECT (SELECT count(*) FROM m) AS stored,
            (SELECT octet_length((coalesce(j.metadata, '{{}}'::jsonb) || $4::text::jsonb)::text)
             FROM jobs j WHERE j.id = $2 AND j.attempt = $3 AND {_HELD}) AS size
        """,
        worker_id,
        job_id,
        attempt,
        patch_json,
        max_bytes,
    )
    assert row is not None
    return bool(row["stored"]), row["size"]


async def job_event_emit(
    conn: Conn,
    worker_id: str,
    job_id: uuid.UUID,
    attempt: int,
    event: str,
    details_json: str | None,
) -> bool:
    """Write one event about a held job (custom events, hook failures); False when fenced off."""
    row = await conn.fetchval(
        f"""
        WITH ev AS (
            INSERT INTO job_events (job_id, event, worker_id, attempt, details)
            SELECT j.id, $4, $1, $3, $5::text::jsonb FROM jobs j
            WHERE j.id = $2 AND j.attempt = $3 AND {_HELD}
            RETURNING 1
        )
        SELECT count(*) FROM ev
        """,
        worker_id,
        job_id,
        attempt,
        event,
        details_json,
    )
    return bool(row)


_COMPLETE = f"""
WITH d AS (
    SELECT * FROM unnest($2::uuid[], $3::int[], $4::text[], $5::float8[])
        AS d(id, attempt, result, waited)
), done AS (
    UPDATE jobs j SET status = 'succeeded', result = d.result::jsonb,
        started_at = {_STARTED}, finished_at = now(), lease_expires_at = NULL,
        updated_at = now()
    FROM d WHERE {_BY_BATCH_ID} AND {_HELD}
    RETURNING j.id
)
SELECT array_agg(id), {announce("SELECT id FROM done")} AS fed
FROM d WHERE id NOT IN (SELECT id FROM done)
"""


async def job_runs_prepare(conn: Conn, *, claim: bool = False) -> None:
    """Prepare the hot statements on a new worker session (asyncpg keeps them), so its first
    claim or acknowledgement costs one round trip, not a parse and type lookup first."""
    await conn.prepare(_CLAIM if claim else _COMPLETE)


async def job_complete_many(
    conn: Conn,
    worker_id: str,
    ids: Sequence[uuid.UUID],
    attempts: Sequence[int],
    results_json: Sequence[str],
    waited_seconds: Sequence[float],
) -> list[uuid.UUID]:
    """Mark many jobs succeeded in one UPDATE of `jobs` and nothing else.

    `results_json` are JSON texts (already validated by the worker); `waited_seconds` is, per
    job, how long it waited in the worker's buffer between the claim and the start of its code
    (see `_STARTED`). The attempt row and the `started`/`succeeded` events are derived from the
    row. Returns the ids written; the others were fenced off. The statement itself answers
    with the fenced ids only (usually none), so a batch of a thousand returns one short row.
    """
    if not ids:
        return []
    fenced = await conn.fetchval(
        _COMPLETE,
        worker_id,
        ids,
        attempts,
        results_json,
        waited_seconds,
    )
    if not fenced:
        return list(ids)
    gone = set(fenced)
    return [i for i in ids if i not in gone]


@dataclass(frozen=True)
class Failure:
    """One failed attempt to record: `delay_seconds` is used only when attempts remain;
    `waited_seconds` is the time the job spent in the worker's buffer (see `_STARTED`)."""

    job_id: uuid.UUID
    attempt: int
    outcome: str  # failed | timed_out
    error: str
    traceback: str | None
    delay_seconds: float
    duration_ms: float
    waited_seconds: float = 0.0
    final: bool = False  # the code raised PermanentError: no retry, whatever attempts remain
    pinned: bool = False  # the code raised RetryAfter: the job's retryDelays do not apply


# The closed attempt row of a run that did not succeed. A row already there for this attempt
# number (one handed back earlier, or from older data) is overwritten: the number was reused.
_ATTEMPT_UPSERT = """
    INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, finished_at, outcome,
        error, traceback, duration_ms)
    {select}
    ON CONFLICT (job_id, attempt) DO UPDATE SET worker_id = EXCLUDED.worker_id,
        started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
        outcome = EXCLUDED.outcome, error = EXCLUDED.error, traceback = EXCLUDED.traceback,
        result = NULL, duration_ms = EXCLUDED.duration_ms
"""


# A failed attempt is retried while attempts remain, unless it failed for good (PermanentError).
_RETRY = "(j.attempt < j.max_attempts AND NOT d.final)"

# Whether the job's own `retry_delays` decide the delay: it has a list, and the code did not
# ask for a delay of its own (RetryAfter: `pinned`).
_LISTED = "(j.retry_delays IS NOT NULL AND NOT d.pinned)"
# The retry delay: the job's own list (the retry after attempt n waits retry_delays[n], 1-based,
# the last one repeating), else what the worker computed (its definition's back-off or delays,
# or the RetryAfter). The claim never reads the list: only a failing attempt does, here.
_DELAY = (
    f"(CASE WHEN {_LISTED} THEN coalesce(greatest(0, j.retry_delays["
    "least(j.attempt, cardinality(j.retry_delays))]), d.delay) ELSE d.delay END)"
)


async def job_fail_many(
    conn: Conn, worker_id: str, failures: Sequence[Failure]
) -> list[asyncpg.Record]:
    """Record failed attempts: retry later when attempts remain, else fail and dead-letter.

    One transaction: the jobs update (queued with run_at = now + delay, or failed), the closed
    attempt rows (error, traceback), the events (timed_out, retry_scheduled / failed +
    dead_lettered) and the DLQ copy of the jobs failed for good. The delay is the failure's
    own unless the job lists `retry_delays` (see `_DELAY`). Returns (id, status, delay,
    listed) of the rows written: `delay` is the delay applied, `listed` whether it came from
    the job's own list (the worker then rings its doorbell for it).
    """
    if not failures:
        return []
    cols = list(
        zip(
            *(
                (
                    f.job_id,
                    f.attempt,
                    f.outcome,
                    f.error,
                    f.traceback,
                    f.delay_seconds,
                    f.duration_ms,
                    f.waited_seconds,
                    f.final,
                    f.pinned,
                )
                for f in failures
            ),
            strict=True,
        )
    )
    attempt_row = _ATTEMPT_UPSERT.format(
        select="SELECT done.id, done.attempt, $1, done.started_at, now(), d.outcome, d.error,"
        " d.tb, d.ms FROM done JOIN d ON d.id = done.id"
    )
    async with conn.transaction():
        rows = await conn.fetch(
            f"""
            WITH d AS (
                SELECT * FROM unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::text[],
                    $7::float8[], $8::float8[], $9::float8[], $10::bool[], $11::bool[])
                    AS d(id, attempt, outcome, error, tb, delay, ms, waited, final, pinned)
            ), done AS (
                UPDATE jobs j SET
                    status = CASE WHEN {_RETRY} THEN 'queued' ELSE 'failed' END,
                    run_at = CASE WHEN {_RETRY}
                        THEN now() + make_interval(secs => {_DELAY}) ELSE j.run_at END,
                    started_at = {_STARTED},
                    finished_at = CASE WHEN {_RETRY} THEN NULL ELSE now() END,
                    worker_id = CASE WHEN {_RETRY} THEN NULL ELSE j.worker_id END,
                    lease_expires_at = NULL, last_error = d.error, updated_at = now()
                FROM d WHERE {_BY_BATCH_ID} AND {_HELD}
                RETURNING j.id, j.attempt, j.status, j.run_at, j.started_at,
                    {_DELAY} AS delay, {_LISTED} AS listed
            ), att AS ({attempt_row}
            ), ev AS (
                INSERT INTO job_events (job_id, event, worker_id, attempt, details)
                SELECT done.id, e.event, $1, done.attempt, e.details
                FROM done JOIN d ON d.id = done.id
                CROSS JOIN LATERAL (VALUES
                    (1, 'timed_out', jsonb_build_object('error', d.error),
                        d.outcome = 'timed_out'),
                    (2, 'retry_scheduled', jsonb_build_object('delaySeconds', done.delay,
                        'runAt', done.run_at, 'error', d.error), done.status = 'queued'),
                    (3, 'failed', jsonb_build_object('error', d.error), done.status = 'failed'),
                    (4, 'dead_lettered', NULL::jsonb, done.status = 'failed')
                ) AS e(ord, event, details, wanted)
                WHERE e.wanted
                ORDER BY done.id, e.ord
            )
            SELECT id, status, delay, listed, f.fed
            FROM done, (SELECT {announce("SELECT id FROM done")} AS fed) f
            """,
            worker_id,
            *[list(c) for c in cols],
        )
        dead = [r["id"] for r in rows if r["status"] == "failed"]
        if dead:
            await dlq_insert_from_jobs(conn, dead)
    return rows


async def job_cancel_ack_many(
    conn: Conn,
    worker_id: str,
    ids: Sequence[uuid.UUID],
    attempts: Sequence[int],
    durations_ms: Sequence[float],
    waited_seconds: Sequence[float] | None = None,
    ran: Sequence[bool] | None = None,
) -> list[uuid.UUID]:
    """End jobs the worker stopped on request: cancelled, closed attempt row, `cancelled` event.

    A job cancelled while still in the worker's buffer (`ran` false) never ran: like a queued
    job cancelled, it gets its attempt back and no attempt row (nor `started` event).
    """
    if not ids:
        return []
    attempt_row = _ATTEMPT_UPSERT.format(
        select="SELECT done.id, done.attempt, $1, done.started_at, now(), 'cancelled', NULL,"
        " NULL, d.ms FROM done JOIN d ON d.id = done.id WHERE d.ran"
    )
    rows = await conn.fetch(
        f"""
        WITH d AS (
            SELECT * FROM unnest($2::uuid[], $3::int[], $4::float8[], $5::float8[], $6::bool[])
                AS d(id, attempt, ms, waited, ran)
        ), done AS (
            UPDATE jobs j SET status = 'cancelled', finished_at = now(),
                attempt = CASE WHEN d.ran THEN j.attempt ELSE j.attempt - 1 END,
                started_at = CASE WHEN d.ran THEN {_STARTED} ELSE j.started_at END,
                lease_expires_at = NULL, updated_at = now()
            FROM d WHERE {_BY_BATCH_ID} AND {_HELD}
            RETURNING j.id, j.attempt, j.started_at
        ), att AS ({attempt_row}
        ), ev AS (
            INSERT INTO job_events (job_id, event, worker_id, attempt)
            SELECT id, 'cancelled', $1, attempt FROM done
        )
        SELECT id FROM done, (SELECT {announce("SELECT id FROM done")} AS fed) f
        """,
        worker_id,
        list(ids),
        list(attempts),
        list(durations_ms),
        list(waited_seconds) if waited_seconds is not None else [0.0] * len(ids),
        list(ran) if ran is not None else [True] * len(ids),
    )
    return [r[0] for r in rows]


async def job_hand_back_many(
    conn: Conn,
    worker_id: str,
    ids: Sequence[uuid.UUID],
    attempts: Sequence[int],
    ran: Sequence[bool] | None = None,
) -> list[asyncpg.Record]:
    """Give unfinished (or never started) jobs back without using an attempt.

    A running job returns to `queued` (attempt - 1, attempt row outcome `handed_back`, event
    `handed_back`); the next claim reuses the attempt number, and its run supersedes that row.
    A job whose cancel was requested (`cancelling`) ends `cancelled` instead. A job that never
    left the worker's buffer (`ran` false) gets no attempt row, so no `started` event either.
    Returns (id, status) of the rows written.
    """
    if not ids:
        return []
    attempt_row = _ATTEMPT_UPSERT.format(
        select="SELECT id, attempt, $1, started_at, now(), CASE WHEN status = 'queued'"
        " THEN 'handed_back' ELSE 'cancelled' END, NULL, NULL, NULL FROM done WHERE ran"
    )
    return await conn.fetch(
        f"""
        WITH d AS (
            SELECT * FROM unnest($2::uuid[], $3::int[], $4::bool[]) AS d(id, attempt, ran)
        ), done AS (
            UPDATE jobs j SET
                status = CASE WHEN j.status = 'cancelling' THEN 'cancelled' ELSE 'queued' END,
                attempt = CASE WHEN j.status = 'cancelling' THEN j.attempt ELSE j.attempt - 1 END,
                finished_at = CASE WHEN j.status = 'cancelling' THEN now() END,
                worker_id = CASE WHEN j.status = 'cancelling' THEN j.worker_id END,
                lease_expires_at = NULL, updated_at = now()
            FROM d WHERE {_BY_BATCH_ID} AND {_HELD}
            RETURNING j.id, d.attempt, j.status, j.started_at, d.ran
        ), att AS ({attempt_row}
        ), ev AS (
            INSERT INTO job_events (job_id, event, worker_id, attempt)
            SELECT id, CASE WHEN status = 'queued' THEN 'handed_back' ELSE 'cancelled' END, $1,
                attempt
            FROM done
        )
        SELECT id, status FROM done, (SELECT {announce("SELECT id FROM done")} AS fed) f
        """,
        worker_id,
        list(ids),
        list(attempts),
        list(ran) if ran is not None else [True] * len(ids),
    )
