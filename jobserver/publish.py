"""Publish the definitions found in code to the `job_definitions` table (and the schedules
declared in code to `schedules`): what `register-definitions` and `jobserver up` run.

Per definition the outcome is one of:

- `created`   new key+version, stored;
- `unchanged` stored with the same metadata (publishing again is a no-op);
- `conflict`  stored with different metadata under the same key+version: kept as it was;
- `replaced`  such a conflict overwritten because the caller passed `force`.

All definitions are written in one transaction: a conflict without `force` writes nothing (the
outcomes still say which definitions conflicted), and the code schedules are then not synced.

`enqueue(conn, key, params, ...)` is the Python way to submit a job, inside the caller's own
transaction when `conn` is in one (the job and its NOTIFY then commit with the caller's
writes). It takes what `POST /v1/jobs` takes, as keywords (`event`, `tags`, `run_at` or
`delay_seconds`, `expires_at` or `expires_in`, `priority`, `queue`, `retry_delays`, ...), and
applies the same
rules as `POST /v1/jobs` through `jobserver.core.submission.build_job`: the submission schema,
the stored definition's params schema and then its code's `check_params` when this process
has the code (the shipped definitions and any imported here, as the API sees them), the
run/expiry rules (with `default_expires`, e.g. `Settings.from_env().default_expires` for
DEFAULT_EXPIRES_DURATION) and the idempotency fingerprint; then the references
(`jobserver.api.reference_checks`): a stored credential the params name must exist and be of
the kind the definition wants, and the definition's `check_stored` hook must pass (`mail.send`:
its template exists). The caller is trusted code: no token scope, capability or quota applies.
A bad value raises `RuleError` naming the field (and the API's error code) as the REST API
would answer it, and nothing is inserted.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from typing import Any

import asyncpg

from jobserver.api.definitions_cache import definition_info
from jobserver.api.errors import ApiError
from jobserver.api.reference_checks import check_references
from jobserver.api.schemas import JOB_SUBMISSION
from jobserver.core.errors import RuleError, format_path
from jobserver.core.submission import build_job
from jobserver.db.definitions import definition_get, definition_replace, definition_upsert
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.db.pool import connect
from jobserver.owners import ANONYMOUS
from jobserver.registry import Definition, Registry, load_modules
from jobserver.schedules import sync_code_schedules
from jobserver.validation import compile_schema

_CHECK_SUBMISSION = compile_schema(JOB_SUBMISSION)
# enqueue keyword -> submission field
_FIELDS = {
    "priority": "priority",
    "queue": "queue",
    "max_attempts": "maxAttempts",
    "idempotency_key": "idempotencyKey",
    "run_at": "runAt",
    "delay_seconds": "delaySeconds",
    "expires_at": "expiresAt",
    "expires_in": "expiresIn",
    "timeout_seconds": "timeoutSeconds",
    "retry_delays": "retryDelays",
    "rate_limit": "rateLimit",
    "event": "event",
    "tags": "tags",
}


@functools.cache
def _code() -> Registry:
    """The definitions this process has in code: the shipped ones (imported once) and any
    the caller imported (the registry they register in)."""
    return load_modules(check_schemas=False)


async def enqueue(
    conn: asyncpg.Connection,
    definition_key: str,
    params: Any = None,
    *,
    version: int | None = None,
    owner: str = ANONYMOUS,
    default_expires: dt.timedelta | None = None,
    **fields: Any,
) -> NewJob:
    """Insert one job (see the module doc); returns it as inserted. Datetimes may be given
    as `datetime` values; `expires_in` as seconds or a duration string such as `15m`."""
    unknown = sorted(set(fields) - set(_FIELDS))
    if unknown:
        raise RuleError(unknown[0], f"unknown field (expected one of {', '.join(_FIELDS)})")
    item: dict[str, Any] = {"definitionKey": definition_key, "params": params or {}}
    if version is not None:
        item["definitionVersion"] = version
    for name, value in fields.items():
        if value is not None:
            item[_FIELDS[name]] = value.isoformat() if isinstance(value, dt.datetime) else value
    failure = _CHECK_SUBMISSION(item)
    if failure is not None:
        raise RuleError(format_path(failure[0]), failure[1])
    row = await definition_get(conn, definition_key, version)
    if row is None:
        raise RuleError("definitionKey", f"unknown definition {definition_key!r}")
    info = definition_info(row, _code().get(row["key"], row["version"]))
    now = dt.datetime.now(dt.UTC)
    job = build_job(item, None, info, owner, now, None, default_expires)
    try:
        await check_references(conn, None, info, job.params)
    except ApiError as e:  # the API's 422 for a credential: the same rule, raised as one
        field = e.field or ""
        raise RuleError(field, e.message.removeprefix(f"{field}: "), e.code) from None
    await job_insert_many(conn, [job])
    return job


Outcome = tuple[str, str]  # (ref or "schedule <name>", outcome)


class _Rollback(Exception):
    """Leaves the transaction so that a conflicting run writes nothing."""


async def register_definitions(
    conn: asyncpg.Connection, definitions: Iterable[Definition], *, force: bool = False
) -> list[Outcome]:
    """Upsert `definitions`; returns (ref, outcome) in order. On any conflict without `force`
    everything is rolled back and the outcomes are returned as they would have been."""
    outcomes: list[Outcome] = []
    try:
        async with conn.transaction():
            for d in definitions:
                meta = d.metadata()
                outcome = await definition_upsert(conn, meta)
                if outcome == "conflict" and force:
                    await definition_replace(conn, meta)
                    outcome = "replaced"
                outcomes.append((d.ref, outcome))
            if has_conflicts(outcomes):
                raise _Rollback
    except _Rollback:
        pass
    return outcomes


def has_conflicts(outcomes: Iterable[Outcome]) -> bool:
    return any(outcome == "conflict" for _, outcome in outcomes)


async def publish(
    database_url: str, definitions: Iterable[Definition], *, force: bool = False
) -> list[Outcome]:
    """Connect, register `definitions`, sync the code schedules (unless a definition
    conflicted), disconnect; returns every outcome, schedules as ("schedule <name>", ...)."""
    conn = await connect(database_url)
    try:
        outcomes = await register_definitions(conn, definitions, force=force)
        if has_conflicts(outcomes):
            return outcomes
        for name, outcome in await sync_code_schedules(conn):
            shown = "kept (created over the API)" if outcome == "conflict" else outcome
            outcomes.append((f"schedule {name}", shown))
        return outcomes
    finally:
        await conn.close()
