"""SQL for `jobs` as clients see them: submission, reads, listing and cancellation.

Worker-side transitions (claim, heartbeat, complete, fail, hand back) live in `job_runs.py`;
maintenance (rescue, expire, prune) in `maintenance.py`.
"""

from __future__ import annotations

import os
import struct
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from operator import attrgetter
from typing import Any

import asyncpg
from asyncpg.pgproto.pgproto import UUID as _FastUUID

from jobserver.codec import dumps_stored, loads
from jobserver.db.channels import CANCEL_CHANNEL, JOBS_CHANNEL
from jobserver.db.conn import Conn, ConnOrPool, Queries
from jobserver.db.dependencies import insert_with_parents
from jobserver.db.feed import announce

_RAND_B = (1 << 62) - 1
_VARIANT = 0b10 << 62
_id_clock = [0, 0]  # last millisecond used, sequence within it
_random_bits: list[int] = []  # from os.urandom, 512 at a time (one system call, not one per id)
os.register_at_fork(after_in_child=_random_bits.clear)  # a child never reuses its parent's


def _random62() -> int:
    try:
        return _random_bits.pop()
    except IndexError:
        _random_bits.extend(v & _RAND_B for (v,) in struct.iter_unpack(">Q", os.urandom(4096)))
        return _random_bits.pop()


def new_job_id() -> uuid.UUID:
    """A time-ordered UUID (version 7, RFC 9562): 48-bit Unix milliseconds, a 12-bit sequence
    within the millisecond, 62 random bits.

    Random (version 4) keys scatter every insert over the primary-key and job_events indexes:
    each touches a cold page and, after a checkpoint, writes a full page image to the WAL
    (about 4 KB of WAL per job instead of 1 KB, and about 20% slower inserts). Time-ordered
    keys append at the right edge of those indexes, and jobs created by one process sort in
    creation order (FIFO within a priority and run_at, as claims order).

    The value is asyncpg's own `uuid.UUID` subclass (what it returns for uuid columns), made
    in C from 16 bytes: a third of the cost of `uuid.UUID(int=...)`, which bulk enqueue pays
    per job."""
    return _FastUUID(_next_id_int(time.time_ns() // 1_000_000).to_bytes(16, "big"))


def new_job_ids(n: int) -> list[uuid.UUID]:
    """`n` ids as `new_job_id` would make them one after the other."""
    now = time.time_ns() // 1_000_000
    return [_FastUUID(_next_id_int(now).to_bytes(16, "big")) for _ in range(n)]


def _next_id_int(now: int) -> int:
    last, seq = _id_clock
    if now <= last:  # same millisecond (or the clock stepped back): next in sequence
        seq += 1
        if seq > 0xFFF:
            last, seq = last + 1, 0
    else:
        last, seq = now, 0
    _id_clock[0], _id_clock[1] = last, seq
    return (last << 80) | ((0x7000 | seq) << 64) | _VARIANT | _random62()


@dataclass
class NewJob:
    """One job to insert; defaults already resolved against its definition."""

    definition_key: str
    definition_version: int
    max_attempts: int
    params: Any = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    run_at: datetime | None = None
    expires_at: datetime | None = None
    timeout_seconds: float | None = None
    owner: str = "system:anonymous"  # jobserver.owners.ANONYMOUS
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    schedule_name: str | None = None
    scheduled_for: datetime | None = None
    redriven_from: uuid.UUID | None = None
    event: str | None = None
    tags: list[str] | None = None
    id: uuid.UUID = field(default_factory=new_job_id)
    retry_delays: list[float] | None = None  # the job's own retry delays (seconds)
    saved_job_id: uuid.UUID | None = None  # the saved job that made it (execute, trigger, retry)
    retry_of: uuid.UUID | None = None  # the execution of a saved job this one repeats
    retried_from: uuid.UUID | None = None  # the job this one retries (POST /v1/jobs/{id}/retry)
    cloned_from: uuid.UUID | None = None  # the job this one was cloned from
    # Dependencies (see db/dependencies.py): the parents' ids in the order given, what a
    # parent's failure does ('cancel' | 'continue'), the job's name in its batch. `status`,
    # `waiting_on` and `has_dependents` are set by the insert itself (None: the defaults).
    depends_on: list[uuid.UUID] | None = None
    on_parent_failure: str | None = None
    name: str | None = None
    status: str | None = None
    waiting_on: int | None = None
    has_dependents: bool | None = None
    broadcast: bool | None = None  # a broadcast parent (db/broadcast.py); None: a plain job
    # rate-limited jobs: the bucket and N starts per period (jobserver.core.rate_limits)
    rate_bucket: str | None = None
    rate_limit: int | None = None
    rate_period: float | None = None


JOB_COLUMNS = (
    "id, definition_key, definition_version, queue, status, priority, attempt, max_attempts,"
    " params, result, last_error, progress, worker_id, run_at, expires_at, timeout_seconds,"
    " owner, idempotency_key, request_fingerprint, schedule_name, scheduled_for, redriven_from,"
    " event, tags, created_at, started_at, finished_at, cancel_requested_at, updated_at,"
    " retry_delays, saved_job_id, retry_of, metadata, retried_from, retried_as, cloned_from,"
    " depends_on, on_parent_failure, name, broadcast,"
    " rate_bucket, rate_limit, rate_period"
)

# Inserted columns of a NewJob (attribute = column) with their SQL types. This is the one insert
# path for jobs: the API, cron, manual schedule triggers and redrive all call
# `job_insert_many` / `job_insert_times` / `job_insert_returning`, and the Python API's
# transactional enqueue (on asyncpg, psycopg or SQLAlchemy) `job_insert_resolved`, which runs the
# same statement through any `Queries` connection. One statement inserts the
# jobs and sends the NOTIFY, so a submission outside an explicit transaction is still atomic
# and costs a single round trip. The `created` event is not stored: readers derive it from
# jobs.created_at (see db/events.py), which saves a job_events row, its two index entries and
# its foreign-key check per job, about a third of an insert's cost in PostgreSQL. A column
# whose value is the same for every job of the call travels once as a scalar parameter, one
# that is NULL for all of them is left to its default (NULL, or now() for run_at), and only the
# rest travel as arrays through unnest: a typical batch sends two arrays (ids, params), not
# sixteen, which roughly halves both the client's encoding and the server's work per row.
_INSERT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "uuid"),
    ("definition_key", "text"),
    ("definition_version", "int"),
    ("queue", "text"),
    ("params", "text"),  # JSON text, cast to jsonb in SQL
    ("priority", "int"),
    ("max_attempts", "int"),
    ("run_at", "timestamptz"),
    ("expires_at", "timestamptz"),
    ("timeout_seconds", "float8"),
    ("owner", "text"),
    ("idempotency_key", "text"),
    ("request_fingerprint", "text"),
    ("schedule_name", "text"),
    ("scheduled_for", "timestamptz"),
    ("redriven_from", "uuid"),
    ("event", "text"),
    ("tags", "text[]"),  # as arrays: one JSON text per job (unnest would flatten text[][])
    ("retry_delays", "float8[]"),  # as arrays: one JSON text per job, as tags
    ("saved_job_id", "uuid"),
    ("retry_of", "uuid"),
    ("retried_from", "uuid"),
    ("cloned_from", "uuid"),
    ("depends_on", "uuid[]"),  # as arrays: one JSON text per job, as tags
    ("on_parent_failure", "text"),
    ("name", "text"),
    ("status", "text"),
    ("waiting_on", "int"),
    ("has_dependents", "bool"),
    ("broadcast", "bool"),
    ("rate_bucket", "text"),
    ("rate_limit", "int"),
    ("rate_period", "float8"),
)
# Array-valued columns: mixed values travel as one JSON text per job (see `_insert_sql`).
_NESTED = {"tags": "t", "retry_delays": "t::float8", "depends_on": "t::uuid"}
_OMIT, _SCALAR, _ARRAY = 0, 1, 2
# Columns whose None in an array stands for the column default.
_DEFAULTS = {"status": "'queued'", "has_dependents": "false"}

# A schedule's fire time has at most one job: the unique index jobs_schedule_fire_idx on
# (schedule_name, scheduled_for) is the arbiter, and a repeat (another scheduler, a restart, a
# failover replaying the tick) inserts nothing.
_SKIP_FIRED = (
    " ON CONFLICT (schedule_name, scheduled_for) WHERE schedule_name IS NOT NULL DO NOTHING"
)


@lru_cache(maxsize=256)
def _insert_sql(modes: tuple[int, ...], returning: str, skip_fired: bool = False) -> str:
    """The insert statement for one combination of column modes (few in practice; asyncpg
    keeps each prepared). With `skip_fired`, fire times that already have their job are
    skipped and the NOTIFY is sent only when a row was inserted."""
    names: list[str] = []
    exprs: list[str] = []
    arrays: list[str] = []
    aliases: list[str] = []
    n = 0
    for (col, typ), mode in zip(_INSERT_COLUMNS, modes, strict=True):
        if mode == _OMIT:
            continue
        n += 1
        if mode == _SCALAR:
            src = f"${n}::{typ}"
        else:
            src = f"c{n}"
            arrays.append(f"${n}::{typ}[]")
            aliases.append(src)
        if col == "params":
            src += "::jsonb"
        elif col in _NESTED and mode == _ARRAY:
            arrays[-1] = f"${n}::text[]"
            src = (
                f"(SELECT array_agg({_NESTED[col]} ORDER BY o)"
                f" FROM jsonb_array_elements_text({src}::jsonb) WITH ORDINALITY AS e(t, o))"
            )
        elif col == "run_at" and mode == _ARRAY:
            src = f"COALESCE({src}, now())"  # None = now, as the column default
        elif col in _DEFAULTS and mode == _ARRAY:
            src = f"COALESCE({src}, {_DEFAULTS[col]})"
        names.append(col)
        exprs.append(src)
    source = f" FROM unnest({', '.join(arrays)}) AS t({', '.join(aliases)})" if arrays else ""
    conflict = _SKIP_FIRED if skip_fired else ""
    inserted = " AND EXISTS (SELECT 1 FROM ins)" if skip_fired else ""
    return f"""
WITH ins AS (
    INSERT INTO jobs ({", ".join(names)})
    SELECT {", ".join(exprs)}{source}{conflict}
    RETURNING {returning}
), n AS (
    SELECT (SELECT count(pg_notify(${n + 1}, ${n + 2})) WHERE ${n + 3}{inserted}) AS woke,
        {announce("SELECT id FROM ins")} AS fed
)
"""


def _insert_args(jobs: Sequence[NewJob], notify: bool) -> tuple[tuple[int, ...], list[Any]]:
    """(column modes, parameters) for `_insert_sql`. Params are encoded by the codec's strict
    encoder: NaN and infinities raise `ValueError` before anything is written."""
    modes: list[int] = []
    args: list[Any] = []
    for col, _ in _INSERT_COLUMNS:
        values: list[Any]
        if col == "params":
            values = [dumps_stored(j.params) for j in jobs]
        else:
            values = list(map(attrgetter(col), jobs))
        first = values[0]
        if col in _NESTED and values.count(first) != len(values):  # mixed: JSON text per job
            modes.append(_ARRAY)
            if col == "depends_on":
                values = [None if t is None else list(map(str, t)) for t in values]
            args.append([None if t is None else dumps_stored(t) for t in values])
        elif col == "id" and len(values) > 1:  # distinct by construction (and UUID == is slow)
            modes.append(_ARRAY)
            args.append(values)
        elif values.count(first) == len(values):
            if first is None:
                modes.append(_OMIT)
            else:
                modes.append(_SCALAR)
                args.append(first)
        else:
            modes.append(_ARRAY)
            args.append(values)
    queues = {j.queue for j in jobs}
    payload = next(iter(queues)) if len(queues) == 1 else "*"
    args.extend((JOBS_CHANNEL, payload, notify))
    return tuple(modes), args


class _Plain(list["NewJob"]):
    """Jobs whose parents are already resolved (`insert_with_parents` calls back with them)."""


def _plain(jobs: Sequence[NewJob]) -> _Plain:
    return _Plain(jobs)


def _with_parents(jobs: Sequence[NewJob]) -> bool:
    """Whether some of `jobs` name parents still to resolve (see db/dependencies.py)."""
    return not isinstance(jobs, _Plain) and any(j.depends_on for j in jobs)


@asynccontextmanager
async def _connection(conn: ConnOrPool) -> AsyncIterator[Conn]:
    """`conn` itself, or a connection of the pool `conn` for one transaction."""
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as c:
            yield c
    else:
        yield conn


async def job_insert_many(
    conn: Conn,
    jobs: Sequence[NewJob],
    *,
    notify: bool = True,
    skip_fired: bool = False,
) -> list[uuid.UUID]:
    """Insert jobs and NOTIFY once, in one statement (the `created` event is derived from
    created_at by readers). Returns the ids inserted, in input order.

    Inside a transaction (the caller's, for enqueue-in-your-transaction) the NOTIFY is
    delivered only when that transaction commits. Idempotency conflicts raise
    `asyncpg.UniqueViolationError`; callers that accept repeats resolve them first.

    `skip_fired` is for schedule fires: a job whose (schedule_name, scheduled_for) already has
    its job is skipped, not an error, so a fire time yields exactly one job however many
    schedulers, restarts or failovers replay it; the result then lists only the jobs inserted
    and no NOTIFY is sent when there are none.
    """
    if not jobs:
        return []
    if _with_parents(jobs):
        return await insert_with_parents(
            conn, jobs, lambda c: job_insert_many(c, _plain(jobs), notify=notify)
        )
    return await job_insert_resolved(conn, jobs, notify=notify, skip_fired=skip_fired)


async def job_insert_resolved(
    conn: Conn | Queries,
    jobs: Sequence[NewJob],
    *,
    notify: bool = True,
    skip_fired: bool = False,
) -> list[uuid.UUID]:
    """`job_insert_many` for jobs that name no parents still to resolve: the statement alone,
    through any connection that runs `Queries` (asyncpg's, or a psycopg or SQLAlchemy one
    adapted by `jobserver.db.drivers` for enqueue-in-your-transaction)."""
    if not jobs:
        return []
    modes, args = _insert_args(jobs, notify)
    if skip_fired:
        sql = _insert_sql(modes, "id", True) + "SELECT ins.id FROM ins LEFT JOIN n ON true"
        inserted = {r[0] for r in await conn.fetch(sql, *args)}
        return [j.id for j in jobs if j.id in inserted]
    sql = _insert_sql(modes, "id, created_at")
    sql += "SELECT count(*) FROM ins LEFT JOIN n ON true"
    await conn.fetchval(sql, *args)
    return [j.id for j in jobs]


async def job_insert_times(
    conn: ConnOrPool,
    jobs: Sequence[NewJob],
    *,
    notify: bool = True,
) -> list[tuple[datetime, datetime]]:
    """`job_insert_many` returning each job's (created_at, run_at), in input order: with the
    NewJob, all a client needs to see the stored job, at half the cost of returning rows."""
    if not jobs:
        return []
    if _with_parents(jobs):
        async with _connection(conn) as c:
            return await insert_with_parents(
                c, jobs, lambda c: job_insert_times(c, _plain(jobs), notify=notify)
            )
    modes, args = _insert_args(jobs, notify)
    sql = _insert_sql(modes, "id, created_at, run_at") + (
        "SELECT ins.id, ins.created_at, ins.run_at FROM ins LEFT JOIN n ON true"
    )
    times = {r[0]: (r[1], r[2]) for r in await conn.fetch(sql, *args)}
    return [times[j.id] for j in jobs]


class QuotaExceeded(Exception):
    """The owner already has `queued` queued (or waiting) jobs: adding these would pass its
    quota."""

    def __init__(self, queued: int) -> None:
        super().__init__(f"{queued} jobs queued")
        self.queued = queued


async def job_insert_within_quota(
    conn: Conn, jobs: Sequence[NewJob], owner: str, max_queued: int
) -> list[tuple[datetime, datetime]]:
    """`job_insert_times` for an owner with a queued-jobs quota: all of `jobs` or none.

    One transaction under a per-owner advisory lock, so concurrent submissions of one owner on
    any API instance cannot both pass the check; the count stops at the quota (it reads at most
    `max_queued` entries of jobs_owner_queued_idx). Raises `QuotaExceeded`. Only admission is
    bounded: a retry or a hand-back that returns a job to the queue is not refused.
    """
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('jobserver.queued:' || $1, 0))", owner
        )
        queued: int = await conn.fetchval(  # waiting jobs count: they will be queued
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM jobs"
            " WHERE owner = $1 AND status = 'queued' LIMIT $2) s)"
            " + (SELECT count(*) FROM (SELECT 1 FROM jobs"
            " WHERE owner = $1 AND status = 'waiting' LIMIT $2) w)",
            owner,
            max_queued,
        )
        if queued + len(jobs) > max_queued:
            raise QuotaExceeded(queued)
        return await job_insert_times(conn, jobs)


async def job_insert_returning(
    conn: ConnOrPool,
    jobs: Sequence[NewJob],
    *,
    notify: bool = True,
) -> list[asyncpg.Record]:
    """`job_insert_many` returning the stored rows (`JOB_COLUMNS`, in input order)."""
    if not jobs:
        return []
    if _with_parents(jobs):
        async with _connection(conn) as c:
            return await insert_with_parents(
                c, jobs, lambda c: job_insert_returning(c, _plain(jobs), notify=notify)
            )
    modes, args = _insert_args(jobs, notify)
    sql = _insert_sql(modes, JOB_COLUMNS)
    sql += "SELECT ins.* FROM ins LEFT JOIN n ON true"
    rows = await conn.fetch(sql, *args)
    order = {j.id: i for i, j in enumerate(jobs)}
    return sorted(rows, key=lambda r: order[r["id"]])


async def job_get(
    conn: ConnOrPool, job_id: uuid.UUID, owner: str | None = None
) -> asyncpg.Record | None:
    """One job; with `owner`, only if it belongs to that owner."""
    if owner is None:
        return await conn.fetchrow(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1", job_id)
    return await conn.fetchrow(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND owner = $2", job_id, owner
    )


async def job_get_by_idempotency_keys(
    conn: ConnOrPool | Queries, owner: str, keys: Sequence[str]
) -> list[asyncpg.Record]:
    """The owner's jobs holding any of these idempotency keys (unique per owner)."""
    return await conn.fetch(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE owner = $1 AND idempotency_key = ANY($2::text[])",
        owner,
        list(keys),
    )


SORT_COLUMNS = {
    "createdAt": "created_at",
    "priority": "priority",
    "status": "status",
    "event": "event",
}


@dataclass
class JobFilter:
    """Listing filters; None/empty means no restriction."""

    statuses: Sequence[str] = ()
    definition_key: str | None = None
    queue: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    owner: str | None = None
    event: str | None = None
    tags: Sequence[str] = ()  # every one must be present
    schedule_name: str | None = None

    def where(self, args: list[Any]) -> str:
        """SQL conditions joined with AND, appending their parameters to `args`."""
        conds: list[str] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if len(self.statuses) == 1:  # plain `=` lets the planner pick a partial index
            conds.append(f"status = {arg(self.statuses[0])}::text")
        elif self.statuses:
            conds.append(f"status = ANY({arg(list(self.statuses))}::text[])")
        if self.definition_key is not None:
            conds.append(f"definition_key = {arg(self.definition_key)}")
        if self.queue is not None:
            conds.append(f"queue = {arg(self.queue)}")
        if self.created_after is not None:
            conds.append(f"created_at > {arg(self.created_after)}")
        if self.created_before is not None:
            conds.append(f"created_at < {arg(self.created_before)}")
        if self.owner is not None:
            conds.append(f"owner = {arg(self.owner)}")
        if self.event is not None:  # jobs_event_idx
            conds.append(f"event = {arg(self.event)}::text")
        if self.tags:  # the GIN index jobs_tags_idx answers @>
            conds.append(f"tags @> {arg(list(self.tags))}::text[]")
        if self.schedule_name is not None:  # jobs_schedule_fire_idx leads with it
            conds.append(f"schedule_name = {arg(self.schedule_name)}::text")
        return " AND ".join(conds) if conds else "true"


async def job_list(
    conn: ConnOrPool,
    flt: JobFilter,
    *,
    sort_by: str = "createdAt",
    descending: bool = True,
    after: tuple[Any, uuid.UUID] | None = None,
    limit: int = 20,
    offset: int = 0,
) -> list[asyncpg.Record]:
    """A page of jobs in (sort column, id) order; `after` is the last row of the previous page
    (keyset pagination: stable under inserts, no OFFSET scans). `offset` is for page numbers
    (the API bounds it); keyset paging leaves it 0.

    `event` order lists only the jobs that have an event (through jobs_event_idx): jobs
    without one have no place in it.

    `createdAt` order is id order: ids are time-ordered (UUIDv7, minted at submission), so
    the primary key (or jobs_owner_idx, jobs_settled_idx) walks jobs in creation order and a
    page is read off an index, without a created_at index to maintain on every write. Jobs
    submitted in the same millisecond by different API processes may swap places.

    `priority` order reads three bands in order off indexes (`_priority_page`)."""
    if sort_by == "priority":
        return await conn.fetch(*_priority_page(flt, descending, after, limit, offset))
    args: list[Any] = []
    where = flt.where(args)
    direction = "DESC" if descending else "ASC"
    op = "<" if descending else ">"
    if sort_by == "createdAt":
        if after is not None:
            args.append(after[1])
            where += f" AND id {op} ${len(args)}"
        order = f"id {direction}"
    else:
        col = SORT_COLUMNS[sort_by]
        if sort_by == "event":
            where += " AND event IS NOT NULL"
        if after is not None:
            args.extend(after)
            where += f" AND ({col}, id) {op} (${len(args) - 1}, ${len(args)})"
        order = f"{col} {direction}, id {direction}"
    args.append(limit)
    sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY {order} LIMIT ${len(args)}"
    if offset:
        args.append(offset)
        sql += f" OFFSET ${len(args)}"
    return await conn.fetch(sql, *args)


# Priority order in three bands, each read in order off an index: above the default priority
# and below it from jobs_priority_idx (partial: only those jobs write an entry), the default
# (0, nearly every job) by primary key. Sorting the whole table took 37.8 s at 10 million rows.
# The bands off 0 state jobs_priority_idx's predicate as it is written (abs(priority) > 0).
_BANDS = (
    ("abs(priority) > 0 AND priority > 0", True),
    ("priority = 0", False),
    ("abs(priority) > 0 AND priority < 0", True),
)


def _priority_page(
    flt: JobFilter,
    descending: bool,
    after: tuple[Any, uuid.UUID] | None,
    limit: int,
    offset: int,
) -> tuple[str, *tuple[Any, ...]]:
    """`job_list` in (priority, id) order: the bands a page can reach, each cut to the page,
    then merged. A band wholly before `after` is left out; within the default band `after`
    is an id bound."""
    args: list[Any] = []
    where = flt.where(args)
    direction = "DESC" if descending else "ASC"
    op = "<" if descending else ">"
    args.append(limit + offset)
    band_limit = f"${len(args)}"
    parts: list[str] = []
    for cond, indexed in _BANDS if descending else reversed(_BANDS):
        bound = ""
        if after is not None and indexed:
            args.extend(after)
            bound = f" AND (priority, id) {op} (${len(args) - 1}, ${len(args)})"
        elif after is not None:
            last = after[0]
            if (last < 0) if descending else (last > 0):
                continue  # every default-priority job came before `after`
            if last == 0:
                args.append(after[1])
                bound = f" AND id {op} ${len(args)}"
        parts.append(
            f"(SELECT {JOB_COLUMNS} FROM jobs WHERE {where} AND {cond}{bound}"
            f" ORDER BY priority {direction}, id {direction} LIMIT {band_limit})"
        )
    args.append(limit)
    sql = (
        f"SELECT * FROM ({' UNION ALL '.join(parts)}) page"
        f" ORDER BY priority {direction}, id {direction} LIMIT ${len(args)}"
    )
    if offset:
        args.append(offset)
        sql += f" OFFSET ${len(args)}"
    return sql, *args


async def job_count_upto(
    conn: ConnOrPool, flt: JobFilter, cap: int, *, with_event: bool = False
) -> int:
    """How many jobs match, counting at most `cap` (reads at most `cap` index entries or rows:
    a page-number total stays cheap on a large table). `with_event`: only jobs with an event,
    as the `event` order lists them."""
    args: list[Any] = []
    where = flt.where(args)
    if with_event:
        where += " AND event IS NOT NULL"
    args.append(cap)
    count: int = await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM jobs WHERE {where} LIMIT ${len(args)}) t", *args
    )
    return count


async def job_count(conn: ConnOrPool, flt: JobFilter, cap: int = 10_000) -> tuple[int, bool]:
    """(count, is_estimate): exact up to `cap` rows, the planner's estimate above, so a count
    never scans millions of rows."""
    args: list[Any] = []
    where = flt.where(args)
    args.append(cap + 1)
    exact = await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM jobs WHERE {where} LIMIT ${len(args)}) t", *args
    )
    if exact <= cap:
        return exact, False
    return max(await job_count_estimate(conn, where, args[:-1]), cap + 1), True


async def job_count_estimate(conn: ConnOrPool, where: str, args: Sequence[Any]) -> int:
    """The planner's estimate of the jobs matching `where` (no row is read)."""
    plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM jobs WHERE {where}", *args)
    if isinstance(plan, str):
        plan = loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


async def job_cancel(
    conn: ConnOrPool, job_id: uuid.UUID, owner: str | None = None
) -> asyncpg.Record | None:
    """Cancel in one statement: queued or waiting -> cancelled (finished now, 'cancelled'
    event; a cancelled parent's dependents are settled by their policy in this statement, by
    the trigger of db/dependencies.py);
    running -> cancelling (cancel_requested_at, 'cancel_requested' event, NOTIFY on
    CANCEL_CHANNEL with the job id). Returns the updated row, or None when the job is not
    queued/running (absent, other owner, already cancelling or terminal): the caller reads it.

    The status condition is re-checked under the row lock, so a worker claiming the job at the
    same moment is either before us (we see running) or after us (it finds it cancelled).
    """
    return await conn.fetchrow(
        f"""
        WITH upd AS (
            UPDATE jobs SET
                status = CASE WHEN status = 'running' THEN 'cancelling' ELSE 'cancelled' END,
                finished_at = CASE WHEN status = 'running' THEN finished_at ELSE now() END,
                cancel_requested_at = now(),
                updated_at = now()
            WHERE id = $1 AND status IN ('queued', 'waiting', 'running')
                AND ($2::text IS NULL OR owner = $2)
            RETURNING {JOB_COLUMNS}
        ), ev AS (
            INSERT INTO job_events (job_id, event, worker_id, attempt)
            SELECT id, CASE WHEN status = 'cancelled' THEN 'cancelled' ELSE 'cancel_requested' END,
                worker_id, attempt
            FROM upd
        ), n AS (
            SELECT pg_notify($3, id::text) FROM upd WHERE status = 'cancelling'
        )
        SELECT upd.*, (SELECT count(*) FROM n) AS notified,
            {announce("SELECT id FROM upd")} AS fed
        FROM upd
        """,
        job_id,
        owner,
        CANCEL_CHANNEL,
    )
