"""One submission -> one `NewJob`: the rules every producer applies before inserting a job.

A submission is the JSON object of `POST /v1/jobs` (or one item of a batch), already checked
against `JOB_SUBMISSION_SCHEMA`. `build_job` then checks `params` against the definition's own
schema, applies the run/expiry rules (`jobserver.core.timing`; `default_expires` is the
`DEFAULT_EXPIRES_DURATION` setting), carries its labels (`event`, `tags`: stored NULL when not
given), marks a job asked to run more than a second from now as scheduled (`scheduled_for` =
its run time; schedule fires set it to their fire time), fills the definition's defaults
(`maxAttempts`; a job may lower its definition's attempts and timeout, never raise them),
keeps its own `retryDelays` (bounded by the schema; see `jobserver.core.retry_delays`),
computes its rate-limit bucket and N/period (`jobserver.core.rate_limits`: a `rateLimit` may
only lower its definition's),
and fingerprints it when it carries an `idempotencyKey`. Errors are
`RuleError`s naming the field as the request spells it (`jobs[3].params.name`, or `params.name`
for a single submission). This runs once per job of a 1,000-job batch: it allocates nothing
beyond the `NewJob`, and builds error paths only on failure.

Other producers: `schedule_job` (a schedule's fire), and `repeated_job`, the one copy of a
stored job that a retry (saved jobs' and `POST /v1/jobs/{id}/retry`), a redrive
(`redriven_job`) and a clone's template start from (see `jobserver.core.reruns`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import asyncpg

from jobserver.core.dependencies import parent_ids
from jobserver.core.errors import RuleError, at, format_path
from jobserver.core.idempotency import fingerprint
from jobserver.core.rate_limits import RateLimit, job_rate
from jobserver.core.retry_delays import stored_delays
from jobserver.core.timing import run_window
from jobserver.db.jobs import NewJob, new_job_id

ParamsFailure = tuple[tuple[str | int, ...], str]
# A job asked to run later than this after its submission counts as scheduled (isScheduled).
SCHEDULED_AFTER = dt.timedelta(seconds=1)
_TIMING = frozenset(("runAt", "delaySeconds", "expiresAt", "expiresIn"))
Row = Mapping[str, Any] | asyncpg.Record  # a stored row (schedules, dead-letter jobs)


class DefinitionRules(Protocol):
    """What a submission needs of its definition (the API's cached definition is one)."""

    @property
    def key(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def default_max_attempts(self) -> int: ...
    @property
    def timeout_seconds(self) -> float | None: ...
    @property
    def check_params(self) -> Callable[[Any], ParamsFailure | None]: ...
    @property
    def rate_limit(self) -> RateLimit | None: ...


def item_path(index: int | None, prefix: str = "jobs") -> str:
    """Where a submission sits in its request: `jobs[i]` in a batch, the root (``) alone."""
    return "" if index is None else f"{prefix}[{index}]"


def build_job(
    item: Mapping[str, Any],
    index: int | None,
    definition: DefinitionRules,
    owner: str,
    now: dt.datetime,
    job_id: uuid.UUID | None = None,
    default_expires: dt.timedelta | None = None,
    names: Mapping[str, int] | None = None,
    ids: Sequence[uuid.UUID] = (),
) -> NewJob:
    """The job `item` asks for; `index` is its place in a batch (None: a single submission).
    `default_expires` is the expiry (from the run time) of a job that gives none. `names`
    and `ids` are its batch's names and minted ids, which `dependsOn` may refer to
    (`jobserver.core.dependencies`)."""
    get = item.get
    params = get("params", {})
    failure = definition.check_params(params)
    if failure is not None:
        raise RuleError(format_path(failure[0], at(item_path(index), "params")), failure[1])
    run_at = expires_at = scheduled_for = None
    if default_expires is not None or not _TIMING.isdisjoint(item):
        run_at, expires_at, scheduled_for = job_timing(item, item_path(index), now, default_expires)
    key = get("idempotencyKey")
    timeout = get("timeoutSeconds")
    max_attempts = definition.default_max_attempts
    if "maxAttempts" in item or timeout is not None:
        max_attempts = _within_definition(item, index, definition)
    if job_id is None:
        job_id = new_job_id()
    parents = None
    if "dependsOn" in item:
        parents = parent_ids(item, item_path(index), job_id, names, ids)
    rate = None
    if definition.rate_limit is not None or "rateLimit" in item:
        rate = job_rate(
            get("rateLimit"), definition.key, definition.rate_limit, params, item_path(index)
        )
    job = NewJob(
        definition_key=definition.key,
        definition_version=definition.version,
        max_attempts=max_attempts,
        params=params,
        queue=get("queue", "default"),
        priority=int(get("priority", 0)),
        run_at=run_at,
        expires_at=expires_at,
        timeout_seconds=float(timeout) if timeout is not None else None,
        owner=owner,
        idempotency_key=key,
        request_fingerprint=fingerprint(item) if key is not None else None,
        scheduled_for=scheduled_for,
        event=get("event"),
        tags=_tags(item, index) if "tags" in item else None,
        id=job_id,
        retry_delays=stored_delays(get("retryDelays")),
        depends_on=parents,
        on_parent_failure=get("onParentFailure", "cancel") if parents else None,
        name=get("name"),
    )
    if rate is not None:
        job.rate_bucket, job.rate_limit, job.rate_period = rate
    return job


def job_timing(
    item: Mapping[str, Any],
    where: str,
    now: dt.datetime,
    default_expires: dt.timedelta | None = None,
) -> tuple[dt.datetime | None, dt.datetime | None, dt.datetime | None]:
    """(run_at, expires_at, scheduled_for) of a submission's timing fields (`run_window`); a
    job asked to run more than SCHEDULED_AFTER from now is scheduled for its run time."""
    run_at, expires_at = run_window(item, where, now, default_expires)
    scheduled = run_at if run_at is not None and run_at > now + SCHEDULED_AFTER else None
    return run_at, expires_at, scheduled


def _tags(item: Mapping[str, Any], index: int | None) -> list[str] | None:
    """The job's tags (the schema bounds them); an empty list is stored as none."""
    tags: list[str] = item["tags"]
    if len(set(tags)) != len(tags):
        raise RuleError(at(item_path(index), "tags"), "must not repeat a tag")
    return list(tags) or None


def _within_definition(item: Mapping[str, Any], index: int | None, d: DefinitionRules) -> int:
    """The job's maxAttempts; a job may lower its definition's attempts and timeout, never
    raise them (one tenant's job must not hold a slot longer than the definition allows)."""
    attempts = int(item.get("maxAttempts", d.default_max_attempts))
    if attempts > d.default_max_attempts:
        raise RuleError(
            at(item_path(index), "maxAttempts"),
            f"{attempts} is above the definition's defaultMaxAttempts"
            f" ({d.default_max_attempts}); a job may only lower it",
        )
    timeout = item.get("timeoutSeconds")
    if timeout is not None and d.timeout_seconds is not None and timeout > d.timeout_seconds:
        raise RuleError(
            at(item_path(index), "timeoutSeconds"),
            f"{timeout:g} is above the definition's timeoutSeconds ({d.timeout_seconds:g});"
            " a job may only lower it",
        )
    return attempts


def schedule_job(
    schedule: Row,
    definition: tuple[str, int, int],
    owner: str,
    scheduled_for: dt.datetime,
    rate_limit: RateLimit | None = None,
) -> NewJob:
    """The job a schedule row fires for `scheduled_for` (its own maxAttempts, or the
    definition's default). `definition` is (key, version, default max attempts): the cron
    service reads it from the table, the trigger route from the API's definition cache.
    The schedule's `timeout_seconds` and `retry_delays` are stamped on the job; a schedule a
    saved job owns also stamps `saved_job_id`, and its jobs belong to the saved job's owner
    (`job_owner`) instead of `owner`. `rate_limit` is the definition's: its fires count
    against it, or against the schedule's own `rate_limit` (a saved job's lowered one) within
    it; a fire whose params lack the key counts against the definition's whole bucket
    (stricter, never looser)."""
    key, version, default_max_attempts = definition
    job = NewJob(
        definition_key=key,
        definition_version=version,
        max_attempts=schedule["max_attempts"] or default_max_attempts,
        params=schedule["params"],
        queue=schedule["queue"],
        priority=schedule["priority"],
        owner=schedule["job_owner"] or owner,
        schedule_name=schedule["name"],
        scheduled_for=scheduled_for,
        timeout_seconds=schedule["timeout_seconds"],
        retry_delays=stored_delays(schedule["retry_delays"]),
        saved_job_id=schedule["saved_job_id"],
    )
    if rate_limit is not None:
        job.rate_bucket, job.rate_limit, job.rate_period = definition_rate(
            key, rate_limit, schedule["params"], schedule.get("rate_limit")
        )
    return job


def definition_rate(
    key: str, rate: RateLimit, params: Any, own: Mapping[str, Any] | None = None
) -> tuple[str, int, float]:
    """The rate fields of a job made without a submission (a schedule's fire, a redrive):
    per key when its params have the key, else the whole definition's bucket. `own` (a saved
    job's `rateLimit`, checked when it was saved) lowers the definition's; were the definition
    lowered since, the stricter of the two holds: a fire is never refused for it."""
    if own is not None:
        rate = RateLimit(
            min(rate.limit, int(own["limit"])),
            max(rate.period_seconds, float(own["periodSeconds"])),
            rate.key,
        )
    try:
        fields = job_rate(None, key, rate, params)
    except RuleError:
        return key, rate.limit, rate.period_seconds
    assert fields is not None
    return fields


def repeated_job(row: Row, **fields: Any) -> NewJob:
    """A new job doing again what a stored one (a `jobs` or dead-letter row) did: its
    definition version, params, queue, priority, attempts and owner, and, when the row has
    them (a dead-letter row has not), its timeout, retry delays, labels, name and parents
    (`dependsOn`: the copy waits for them again, and one that failed applies its policy at
    once; the old job's dependents are not moved to the copy). `fields` are the
    NewJob fields that differ: the link to the row, timing, attempts. It carries no schedule
    name, fire time or idempotency key: it is no fire of a schedule and no repeated request.
    The one way a retry (saved jobs' and /v1/jobs'), a redrive and a clone's template copy
    a job."""
    get = row.get
    copied: dict[str, Any] = {
        "definition_key": row["definition_key"],
        "definition_version": row["definition_version"],
        "max_attempts": row["max_attempts"],
        "params": row["params"],
        "queue": row["queue"],
        "priority": row["priority"],
        "owner": row["owner"],
        "timeout_seconds": get("timeout_seconds"),
        "retry_delays": stored_delays(get("retry_delays")),
        "event": get("event"),
        "tags": get("tags"),
        "depends_on": get("depends_on"),
        "on_parent_failure": get("on_parent_failure"),
        "name": get("name"),
        "rate_bucket": get("rate_bucket"),
        "rate_limit": get("rate_limit"),
        "rate_period": get("rate_period"),
    }
    return NewJob(**{**copied, **fields})


def redriven_job(dead: Row, max_attempts: int | None = None) -> NewJob:
    """A new job from a dead-letter row: same definition, params, queue, priority and owner;
    `max_attempts` defaults to the failed job's."""
    if max_attempts is None:
        return repeated_job(dead, redriven_from=dead["id"])
    return repeated_job(dead, redriven_from=dead["id"], max_attempts=max_attempts)
