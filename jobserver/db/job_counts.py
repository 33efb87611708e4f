"""SQL for where jobs stand: a queued job's place in its queue, and how many of the jobs a list
shows wait or run. Each reads a bounded number of index entries whatever the table holds.

- `job_queue_position`: the ready jobs of the job's queue that a claim would take before it,
  in claim order (priority, then run_at, then id: `jobs_ready_idx`). It walks that index from
  its start to the job, at most `scan` entries (any queue: the index has no queue column),
  so it is exact for a job among the first `scan` queued jobs and a lower bound (`capped`)
  behind them. Approximate by nature: claims are fair between owners at equal priority, a
  worker takes only its own definitions and queues, concurrency limits skip jobs, and a
  delayed job is counted against the jobs ready now.
- `job_status_counts`: the queued and the running (or cancelling) jobs a list filter matches.
  Each count reads at most `cap` + 1 rows of its statuses through their partial index
  (`jobs_ready_idx`, `jobs_owner_queued_idx` for one owner, `jobs_held_idx`) and applies the
  rest of the filter to them, so its cost does not grow with the table nor with how selective
  the filter is. It is exact while there are at most `cap` such rows (queued ones: a backlog;
  of the owner, for a plain token's list; running ones: never more than the fleet runs), and
  the planner's estimate beyond (at least what the rows read matched).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from jobserver.db.conn import ConnOrPool
from jobserver.db.jobs import JobFilter, job_count_estimate

POSITION_SCAN = 10_000
PENDING_STATUSES = ("queued",)
RUNNING_STATUSES = ("running", "cancelling")

# Two ordered walks of jobs_ready_idx: the higher priorities, then the same priority up to the
# job (a row comparison on the index's (run_at, id)). The outer LIMIT stops the walk after
# $5 entries; the count keeps the ready rows of the job's queue among them.
_POSITION = """
SELECT count(*) FILTER (WHERE s.queue = $4 AND s.run_at <= now()
        AND (s.expires_at IS NULL OR s.expires_at > now())),
    count(*)
FROM (
    (SELECT j.queue, j.run_at, j.expires_at FROM jobs j
     WHERE j.status = 'queued' AND j.priority > $1
     ORDER BY j.priority DESC, j.run_at, j.id LIMIT $5)
    UNION ALL
    (SELECT j.queue, j.run_at, j.expires_at FROM jobs j
     WHERE j.status = 'queued' AND j.priority = $1 AND (j.run_at, j.id) < ($2, $3)
     ORDER BY j.priority DESC, j.run_at, j.id LIMIT $5)
    LIMIT $5
) s
"""


async def job_queue_position(
    conn: ConnOrPool,
    queue: str,
    priority: int,
    run_at: datetime,
    job_id: uuid.UUID,
    scan: int = POSITION_SCAN,
) -> tuple[int, bool]:
    """(jobs ahead, capped) of the queued job with this queue, priority, run_at and id; capped:
    the walk stopped after `scan` queued jobs, so the job has at least that many ahead."""
    row = await conn.fetchrow(_POSITION, priority, run_at, job_id, queue, scan)
    assert row is not None
    ahead, walked = row[0], row[1]
    return int(ahead), walked >= scan


# The order of each group's partial index (jobs_ready_idx, and jobs_owner_queued_idx after its
# owner; jobs_held_idx): asked for, it keeps the planner on the index, where a LIMIT alone lets
# it pick a sequential scan that expects to stop early and may read most of the table first.
_INDEX_ORDER = {
    "queued": "priority DESC, run_at, id",
    "running": "worker_id",
    "cancelling": "worker_id",
}


def _status_sql(statuses: tuple[str, ...]) -> str:
    """Literal statuses (from the constants above), so the planner matches the partial
    indexes' predicates, which a parameter would hide from a generic plan."""
    if len(statuses) == 1:
        return f"status = '{statuses[0]}'"
    return "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"


async def job_status_counts(
    conn: ConnOrPool, flt: JobFilter, cap: int = 10_000
) -> tuple[int, int, bool]:
    """(queued, running or cancelling, whether either is an estimate) among the jobs `flt`
    matches (its statuses narrow both: a filter on `failed` counts none). See the module doc:
    each count reads at most `cap` + 1 rows of its statuses (of the filter's owner)."""
    wanted = set(flt.statuses)
    groups = [
        tuple(s for s in group if not wanted or s in wanted)
        for group in (PENDING_STATUSES, RUNNING_STATUSES)
    ]
    if not any(groups):
        return 0, 0, False
    args: list[Any] = []
    rest = replace(flt, statuses=(), owner=None).where(args)
    owner = ""
    if flt.owner is not None:
        args.append(flt.owner)
        owner = f" AND owner = ${len(args)}"
    args.append(cap + 1)
    counts = [
        # (every column, so any filter of JobFilter applies outside; none is read unless used)
        f"(SELECT ARRAY[count(*) FILTER (WHERE {rest}), count(*)] FROM (SELECT *"
        f" FROM jobs WHERE {_status_sql(g)}{owner} ORDER BY {_INDEX_ORDER[g[0]]}"
        f" LIMIT ${len(args)}) t)"
        if g
        else "ARRAY[0, 0]::bigint[]"
        for g in groups
    ]
    row = await conn.fetchrow(f"SELECT {', '.join(counts)}", *args)
    assert row is not None
    found: list[int] = []
    estimated = False
    for (matched, seen), group in zip(row, groups, strict=True):
        if seen <= cap:  # every row of the group was read: exact
            found.append(int(matched))
            continue
        estimated = True
        full: list[Any] = []
        where = f"{_status_sql(group)} AND {replace(flt, statuses=()).where(full)}"
        found.append(max(await job_count_estimate(conn, where, full), int(matched)))
    return found[0], found[1], estimated
