"""The parents a submission names (`dependsOn`), as the API checks them before and after
the insert: an id that is no job, or (for a token that sees only its own jobs) another
owner's job, is a 422 naming `dependsOn[i]` (or `jobs[k].dependsOn[i]`); nothing is written.
The insert itself re-checks existence under its locks (`db.dependencies.UnknownParent`, for a
parent deleted meanwhile), which `unknown_parent` renders the same way."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from jobserver.api.auth import Principal
from jobserver.api.errors import ApiError, invalid
from jobserver.db.dependencies import UnknownParent, job_owners
from jobserver.db.jobs import NewJob


def _field(where: str, position: int) -> str:
    return f"{where}.dependsOn[{position}]" if where else f"dependsOn[{position}]"


async def check_parents(
    pool: asyncpg.Pool, principal: Principal, jobs: Sequence[NewJob], batch: bool
) -> None:
    """422 for the first parent that is not a stored job the principal may see (parents in
    the batch itself are not looked up)."""
    mine = {j.id for j in jobs}
    wanted = {p for j in jobs for p in j.depends_on or () if p not in mine}
    if not wanted:
        return
    owners = await job_owners(pool, list(wanted))
    only = principal.owner_filter()
    for k, j in enumerate(jobs):
        for i, p in enumerate(j.depends_on or ()):
            if p in mine:
                continue
            owner = owners.get(p)
            if owner is None or (only is not None and owner != only):
                raise invalid(_field(f"jobs[{k}]" if batch else "", i), f"no job {p}")


def unknown_parent(err: UnknownParent, ids: Sequence[uuid.UUID] | None = None) -> ApiError:
    """The 422 of a parent the insert did not find; `ids` are a batch's job ids in order."""
    where = "" if ids is None else f"jobs[{list(ids).index(err.child_id)}]"
    return invalid(_field(where, err.position), f"no job {err.parent_id}")
