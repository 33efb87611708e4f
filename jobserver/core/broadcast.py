"""`broadcast: true`: a submission run once on every live worker that has its definition.

`broadcast_jobs(parent, workers)` turns the job a submission built (`build_job`: the same
validation, defaults and idempotency fingerprint as any job) into the jobs to insert: one
child per worker, a copy of the job in that worker's private queue (`@<worker id>`) with
max_attempts 1 (a dead worker's child fails, it never moves to another worker) and no
idempotency key, name or expiry of its own beyond the job's; and the parent, which keeps the
key and waits on the children (dependsOn = the children, policy 'continue'). The parent is
never claimed: the database ends it with its last child (see db/broadcast.py). A broadcast
job may not name parents of its own (`dependsOn`): its parents are its children.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from jobserver.core.errors import RuleError
from jobserver.db.broadcast import private_queue
from jobserver.db.jobs import NewJob, new_job_ids


def check_broadcast(job: NewJob, where: str = "") -> None:
    """Refuse what a broadcast job cannot be (RuleError naming the field)."""
    if job.depends_on:
        raise RuleError(
            f"{where}.dependsOn" if where else "dependsOn",
            "a broadcast job cannot wait for other jobs",
        )


def broadcast_jobs(parent: NewJob, workers: Sequence[str]) -> list[NewJob]:
    """The children (one per worker, in `workers` order) followed by the parent, ready for
    one insert; `parent` is updated in place."""
    ids = new_job_ids(len(workers))
    children = [
        dataclasses.replace(
            parent,
            id=job_id,
            queue=private_queue(worker),
            max_attempts=1,
            idempotency_key=None,
            request_fingerprint=None,
            name=None,
            depends_on=None,
            on_parent_failure=None,
            broadcast=None,
        )
        for job_id, worker in zip(ids, workers, strict=True)
    ]
    parent.depends_on = list(ids)
    parent.on_parent_failure = "continue"
    parent.broadcast = True
    parent.expires_at = None  # its children expire; the parent ends with them
    return [*children, parent]
