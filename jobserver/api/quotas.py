"""What one owner may ask of the shared fleet at submission: priority and queued jobs.

- Priorities above MAX_PRIORITY_PLAIN need `manage_jobs` (403 naming `priority`): a plain
  token cannot jump every other tenant's queue.
- An owner's queued jobs are bounded by its quota: the smallest `--max-queued` of its active
  tokens, else OWNER_MAX_QUEUED (0 = none). Internal owners (`system:*`) have none. A
  submission that would pass it is refused whole with a 429 `quota_exceeded`, nothing written;
  it goes through `db.jobs.job_insert_within_quota` (a per-owner lock and a bounded count)
  instead of the group committer, so owners without a quota keep the fast path.
Running jobs are bounded at claim time (db/job_runs.py), not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from jobserver.api.auth import Principal
from jobserver.api.errors import ApiError
from jobserver.config import Settings
from jobserver.core.errors import at
from jobserver.db.conn import Conn
from jobserver.db.jobs import NewJob, QuotaExceeded, job_insert_within_quota
from jobserver.owners import INTERNAL_PREFIX


def check_priority(principal: Principal, settings: Settings, item: Any, where: str = "") -> None:
    """403 naming `priority` when a token without manage_jobs asks for more than the bound."""
    priority = item.get("priority", 0)
    if priority > settings.max_priority_plain and not principal.can_manage:
        raise ApiError(
            403,
            "forbidden",
            f"priority {priority} is above {settings.max_priority_plain}, the highest a token"
            " without manage_jobs may give (MAX_PRIORITY_PLAIN)",
            at(where, "priority"),
            {"maxPriority": settings.max_priority_plain},
        )


def queued_quota(principal: Principal, settings: Settings) -> int | None:
    """The owner's queued-jobs quota, or None when it has none."""
    if principal.owner.startswith(INTERNAL_PREFIX):
        return None
    return principal.max_queued or settings.owner_max_queued or None


async def insert_within_quota(
    pool: asyncpg.Pool, jobs: Sequence[NewJob], owner: str, quota: int
) -> list[tuple[datetime, datetime]]:
    """Insert all of `jobs` or raise the 429 `quota_exceeded`."""
    async with pool.acquire() as conn:
        return await insert_within_quota_on(conn, jobs, owner, quota)


async def insert_within_quota_on(
    conn: Conn, jobs: Sequence[NewJob], owner: str, quota: int
) -> list[tuple[datetime, datetime]]:
    """`insert_within_quota` on the caller's connection (inside its transaction, if any: the
    video upload attaches its file in the same one)."""
    try:
        return await job_insert_within_quota(conn, jobs, owner, quota)
    except QuotaExceeded as e:
        raise ApiError(
            429,
            "quota_exceeded",
            f"owner {owner!r} has {e.queued} queued jobs; {len(jobs)} more would pass its"
            f" quota of {quota} (maxQueued)",
            None,
            {"maxQueued": quota, "queued": e.queued},
        ) from None
