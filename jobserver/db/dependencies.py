"""SQL for job dependencies: a job that waits for other jobs (`dependsOn`).

A job with parents is inserted in the same transaction as its edges (`job_dependencies`):
`waiting` with `waiting_on` = the parents that have not succeeded yet, or `queued` when all
have. Its parents are locked first (in id order, so two submissions cannot deadlock) and the
unfinished ones get `has_dependents = true` (an end is final: a parent that ended already is
not locked, and one that succeeded is a satisfied edge, neither counted, marked nor stored as an
edge row); a parent that ends afterwards
settles its children in the statement that ends it, whatever that statement is (the worker's
batched ack, a rescue, a cancel, the expirer): the triggers of migration 0014, once per
statement for successes, per row with dependents for other ends. Locking the parent
row is what makes the race with its end safe: either the end committed first and the insert
reads the final status under the lock, or the end waits for the insert's commit and its
trigger then sees the new edges.

A parent already failed, cancelled or expired at insert is applied at once by the same
function (the child is cancelled, or under 'continue' counts it as done).

- `insert_with_parents` (used by `db.jobs`' inserts for jobs that name parents)
- `add_parents(conn, child_id, parent_ids)`: more parents for a waiting job (fan-in)
- `parent_results(conn, child_id)`: the parents' id, name, status and result, in dependsOn order
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import asyncpg

from jobserver.db.conn import Conn, ConnOrPool

if TYPE_CHECKING:
    from jobserver.db.jobs import NewJob

T = TypeVar("T")
FAILED_ENDS = frozenset(("failed", "cancelled", "expired"))
_TERMINAL = "('succeeded', 'failed', 'cancelled', 'expired')"


class UnknownParent(Exception):
    """A job names a parent that does not exist (never did, or was pruned or deleted)."""

    def __init__(self, child_id: uuid.UUID, position: int, parent_id: uuid.UUID) -> None:
        super().__init__(f"job {parent_id} does not exist")
        self.child_id = child_id
        self.position = position
        self.parent_id = parent_id


class NotWaiting(Exception):
    """`add_parents` on a job that is not `waiting` (it started, or ended, already)."""

    def __init__(self, child_id: uuid.UUID, status: str | None) -> None:
        super().__init__(f"job {child_id} is {status or 'absent'}, not waiting")
        self.status = status


# Lock the parents that have not ended, in id order, and mark those not marked yet; the lock
# answers with each row's latest version (read committed follows a concurrent update), so a
# parent that ended meanwhile is seen ended. A parent seen ended needs no lock: an end is final
# (a job never leaves a terminal status; a rerun is a new job). A parent that succeeded is not
# marked: it is a satisfied edge (not counted in `waiting_on`, and given no `job_dependencies`
# row: its end will not settle anything again). Nor is a parent marked already: a fan-in over a
# fan-out whose children another job waits for rewrites no row. So a step made after its
# parents ended (a workflow's fan-in) writes nothing to them.
_MARK_PARENTS = f"""
WITH s AS (
    SELECT id, status FROM jobs WHERE id = ANY($1::uuid[])
), l AS (
    SELECT j.id, j.status, j.has_dependents FROM jobs j
    WHERE j.id IN (SELECT id FROM s WHERE status NOT IN {_TERMINAL})
    ORDER BY j.id FOR NO KEY UPDATE
), m AS (
    UPDATE jobs j SET has_dependents = true FROM l
    WHERE j.id = l.id AND l.status <> 'succeeded' AND NOT l.has_dependents
    RETURNING j.id, j.status
)
SELECT s.id, coalesce(m.status, l.status, s.status) AS status
FROM s LEFT JOIN l ON l.id = s.id LEFT JOIN m ON m.id = s.id
"""
_EDGES = (
    "INSERT INTO job_dependencies (child_id, parent_id)"
    " SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING"
)
_SETTLE = "SELECT job_dependents_settle($1::uuid, $2::text, $3::uuid[])"


async def _mark_parents(conn: Conn, parent_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """{parent id: status} of the parents that exist, locked, and marked as having dependents
    unless they succeeded already."""
    if not parent_ids:
        return {}
    return {r["id"]: r["status"] for r in await conn.fetch(_MARK_PARENTS, list(parent_ids))}


async def insert_with_parents(
    conn: Conn, jobs: Sequence[NewJob], insert: Callable[[Conn], Awaitable[T]]
) -> T:
    """Insert `jobs` (some naming parents, in the batch or stored) with their edges, in one
    transaction (a savepoint inside the caller's). Sets each job's `status` and `waiting_on`
    and marks its in-batch parents; raises `UnknownParent` (nothing written) for a parent
    that does not exist. `insert` is the plain insert of the jobs."""
    in_batch = {j.id: j for j in jobs}
    stored: set[uuid.UUID] = set()
    for j in jobs:
        if j.depends_on:
            j.depends_on = list(dict.fromkeys(j.depends_on))  # a repeat is one edge
        for p in j.depends_on or ():
            parent = in_batch.get(p)
            if parent is None:
                stored.add(p)
            else:
                parent.has_dependents = True
    async with conn.transaction():
        found = await _mark_parents(conn, sorted(stored))
        ends: dict[tuple[uuid.UUID, str], list[uuid.UUID]] = {}
        children: list[uuid.UUID] = []
        parents: list[uuid.UUID] = []
        for j in jobs:
            if not j.depends_on:
                continue
            pending = 0
            for i, p in enumerate(j.depends_on):
                status = "queued" if p in in_batch else found.get(p)
                if status is None:
                    raise UnknownParent(j.id, i, p)
                if status == "succeeded":
                    continue  # a satisfied edge: kept in depends_on only
                pending += 1
                if status in FAILED_ENDS:
                    ends.setdefault((p, status), []).append(j.id)
                children.append(j.id)
                parents.append(p)
            j.on_parent_failure = j.on_parent_failure or "cancel"
            j.waiting_on = pending or None
            j.status = "waiting" if pending else "queued"
        out = await insert(conn)
        if children:
            await conn.execute(_EDGES, children, parents)
        for (p, status), kids in ends.items():
            await conn.execute(_SETTLE, p, status, kids)
        if ends:  # some were cancelled (or queued) at once: answer what is stored
            rows = await conn.fetch(
                "SELECT id, status FROM jobs WHERE id = ANY($1::uuid[])", list(in_batch)
            )
            now = {r["id"]: r["status"] for r in rows}
            for j in jobs:
                j.status = now.get(j.id, j.status)
        return out


async def add_parents(conn: Conn, child_id: uuid.UUID, parent_ids: Sequence[uuid.UUID]) -> None:
    """Make the waiting job `child_id` wait for `parent_ids` too (a fan-in step whose fan-out
    was just inserted), in the caller's transaction. Only parents that have not succeeded are
    counted; one already failed, cancelled or expired applies the child's policy at once
    (cancel: the child is cancelled). Parents it has already are skipped. Raises
    `UnknownParent` for a parent that does not exist and `NotWaiting` when the child is not
    waiting. Parents are locked before the child, as a parent's end locks them."""
    wanted = list(dict.fromkeys(parent_ids))
    async with conn.transaction():
        found = await _mark_parents(conn, sorted(wanted))
        child = await conn.fetchrow(
            "SELECT status, depends_on FROM jobs WHERE id = $1 FOR NO KEY UPDATE", child_id
        )
        if child is None or child["status"] != "waiting":
            raise NotWaiting(child_id, None if child is None else child["status"])
        have = set(child["depends_on"] or ())
        new = [p for p in wanted if p not in have]
        for i, p in enumerate(new):
            if p not in found:
                raise UnknownParent(child_id, len(have) + i, p)
        if not new:
            return
        pending = sum(1 for p in new if found[p] != "succeeded")
        await conn.execute(
            "UPDATE jobs SET depends_on = coalesce(depends_on, '{}') || $2::uuid[],"
            " waiting_on = coalesce(waiting_on, 0) + $3, updated_at = now() WHERE id = $1",
            child_id,
            new,
            pending,
        )
        open_edges = [p for p in new if found[p] != "succeeded"]
        if open_edges:
            await conn.execute(_EDGES, [child_id] * len(open_edges), open_edges)
        for p in new:
            if found[p] in FAILED_ENDS:
                await conn.execute(_SETTLE, p, found[p], [child_id])


async def parent_results(conn: ConnOrPool, child_id: uuid.UUID) -> list[asyncpg.Record]:
    """The job's parents in dependsOn order: (id, name, status, result); a parent pruned
    since has NULL name, status and result."""
    return await conn.fetch(
        """
        SELECT u.id, p.name, p.status, p.result
        FROM jobs c CROSS JOIN LATERAL unnest(c.depends_on) WITH ORDINALITY AS u(id, n)
        LEFT JOIN jobs p ON p.id = u.id
        WHERE c.id = $1
        ORDER BY u.n
        """,
        child_id,
    )


async def job_owners(conn: ConnOrPool, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """{id: owner} of the stored jobs among `ids` (a submission's parents, checked before
    the insert locks them)."""
    if not ids:
        return {}
    rows = await conn.fetch("SELECT id, owner FROM jobs WHERE id = ANY($1::uuid[])", list(ids))
    return {r["id"]: r["owner"] for r in rows}
