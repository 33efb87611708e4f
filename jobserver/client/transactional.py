"""Enqueue jobs inside the caller's own database transaction: the job exists if and only if
that transaction commits, and workers are woken when it does.

    async with conn.transaction():                   # asyncpg
        await conn.execute("INSERT INTO orders ...")
        await enqueue(conn, "mail.send", {"to": ..., "template": "receipt"})

    with psycopg.connect(url) as conn:               # psycopg 3, sync (commits on exit)
        enqueue(conn, "echo", {"message": "hi"}, idempotency_key="order-42")

    with Session(engine) as session, session.begin():  # SQLAlchemy (or AsyncSession, awaited)
        session.add(order)
        enqueue_many(session, [{"definition_key": "echo", "params": {"n": i}} for i in ...])

`conn` is an asyncpg connection (a pooled one too), a psycopg 3 `Connection` or
`AsyncConnection`, or a SQLAlchemy `Session`, `AsyncSession` (scoped ones too), `Connection`
or `AsyncConnection` (`jobserver.db.drivers`): with an async one `enqueue` returns an
awaitable, with a sync one it does the work and returns. psycopg and SQLAlchemy are never
imported here: a connection of theirs is recognised among the modules the caller imported.

What is checked is what `POST /v1/jobs` checks, through the one write path (DESIGN
invariant 19): the submission schema, the stored definition (read through `conn`) with its
params schema and, when this process has its code, its `check_params`; the run/expiry rules
(`default_expires`, e.g. `Settings.from_env().default_expires`); the stored credentials the
params name and the definition's `check_stored` hook, read through `conn` too
(`jobserver.core.submission.build_job`, `jobserver.api.credential_refs`,
`jobserver.api.stored_checks`). The caller is trusted code: no token scope, capability,
priority cap or quota applies; jobs belong to `owner` (anonymous by default). A bad value
raises `RuleError` naming the field as the API would (`params.name`; `jobs[3].params.name`
in `enqueue_many`) and nothing is inserted; the caller's transaction stays usable (the checks
only read).

Keywords (one per `POST /v1/jobs` field): `version`, `queue`, `priority`, `max_attempts`,
`idempotency_key`, `run_at` or `delay_seconds`, `expires_at` or `expires_in` (seconds or a
duration such as `15m`), `timeout_seconds`, `retry_delays`, `rate_limit`, `event`, `tags`;
datetimes may be `datetime` values. `enqueue_many` takes one mapping per job with these keys
plus `definition_key` and `params`, validates them all, then inserts them in one statement:
all or none.

Idempotency as in the API: a key repeating a stored job of the owner with the same request
returns that job (`created` False, nothing inserted), with another request it raises
`IdempotencyConflict` (code `idempotency_conflict`); a key given twice in one
`enqueue_many` is refused. The insert runs under a savepoint when it carries keys, so a
concurrent transaction committing the same key first costs a re-read, not the caller's
transaction. The insert's NOTIFY is part of the statement: it is delivered on commit.

Not taken here: `dependsOn` (parents are resolved by the asyncpg-only insert of
`jobserver.db.dependencies`) and `broadcast` (it reads the live workers).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, overload

from jobserver.api.credential_refs import CredentialRefs, check_credential_refs
from jobserver.api.definitions_cache import DefinitionInfo, definition_info
from jobserver.api.errors import ApiError
from jobserver.api.schemas import JOB_SUBMISSION
from jobserver.api.stored_checks import check_stored
from jobserver.codec import loads
from jobserver.core.errors import RuleError, at, format_path
from jobserver.core.idempotency import batch_keys, same_request
from jobserver.core.submission import build_job, item_path
from jobserver.db.definitions import definition_get
from jobserver.db.drivers import Driver, adapt, is_unique_violation, run_blocking
from jobserver.db.jobs import NewJob, job_get_by_idempotency_keys, job_insert_resolved, new_job_ids
from jobserver.owners import ANONYMOUS
from jobserver.registry import Registry, load_modules
from jobserver.validation import compile_schema

if TYPE_CHECKING:
    import asyncpg
    import psycopg
    from asyncpg.pool import PoolConnectionProxy
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_scoped_session
    from sqlalchemy.orm import Session, scoped_session

    AsyncConn = (
        asyncpg.Connection
        | PoolConnectionProxy
        | psycopg.AsyncConnection[Any]
        | AsyncSession
        | async_scoped_session[Any]
        | AsyncConnection
    )
    SyncConn = psycopg.Connection[Any] | Session | scoped_session[Any] | Connection

__all__ = ["Enqueued", "IdempotencyConflict", "enqueue", "enqueue_many"]

_CHECK_SUBMISSION = compile_schema(JOB_SUBMISSION)
# keyword -> submission field
FIELDS = {
    "definition_key": "definitionKey",
    "params": "params",
    "version": "definitionVersion",
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
_KEYWORDS = [k for k in FIELDS if k not in ("definition_key", "params")]
_SPEC_KEYS = frozenset(FIELDS)
_JSON_COLUMNS = ("params_schema", "backoff", "rate_limit")  # of job_definitions
INSERT_RETRIES = 3  # re-reads after a concurrent transaction took an idempotency key


class IdempotencyConflict(RuleError):
    """The idempotency key is stored with another request (the API's 409)."""


@dataclass(frozen=True)
class Enqueued:
    """One job of the call: `job` as built (for a repeat, with the stored job's id);
    `created` False when the idempotency key returned a stored job instead."""

    job: NewJob
    created: bool

    @property
    def id(self) -> uuid.UUID:
        return self.job.id


@functools.cache
def _code() -> Registry:
    """The definitions this process has in code: the shipped ones (imported once) and any
    the caller imported (the registry they register in)."""
    return load_modules(check_schemas=False)


@overload
def enqueue(
    conn: AsyncConn,
    definition_key: str,
    params: Any = None,
    *,
    owner: str = ...,
    default_expires: dt.timedelta | None = ...,
    **fields: Any,
) -> Coroutine[Any, Any, Enqueued]: ...
@overload
def enqueue(
    conn: SyncConn,
    definition_key: str,
    params: Any = None,
    *,
    owner: str = ...,
    default_expires: dt.timedelta | None = ...,
    **fields: Any,
) -> Enqueued: ...
def enqueue(
    conn: object,
    definition_key: str,
    params: Any = None,
    *,
    owner: str = ANONYMOUS,
    default_expires: dt.timedelta | None = None,
    **fields: Any,
) -> Enqueued | Coroutine[Any, Any, Enqueued]:
    """Insert one job in `conn`'s transaction (see the module doc); awaitable for an async
    connection."""
    unknown = sorted(set(fields) - set(_KEYWORDS))
    if unknown:
        raise RuleError(unknown[0], f"unknown field (expected one of {', '.join(_KEYWORDS)})")
    spec = {"definition_key": definition_key, "params": params, **fields}
    driver = adapt(conn)
    work = _one(driver, spec, owner, default_expires)
    return run_blocking(work) if driver.blocking else work


@overload
def enqueue_many(
    conn: AsyncConn,
    jobs: Sequence[Mapping[str, Any]],
    *,
    owner: str = ...,
    default_expires: dt.timedelta | None = ...,
) -> Coroutine[Any, Any, list[Enqueued]]: ...
@overload
def enqueue_many(
    conn: SyncConn,
    jobs: Sequence[Mapping[str, Any]],
    *,
    owner: str = ...,
    default_expires: dt.timedelta | None = ...,
) -> list[Enqueued]: ...
def enqueue_many(
    conn: object,
    jobs: Sequence[Mapping[str, Any]],
    *,
    owner: str = ANONYMOUS,
    default_expires: dt.timedelta | None = None,
) -> list[Enqueued] | Coroutine[Any, Any, list[Enqueued]]:
    """Insert `jobs` (one mapping each, see the module doc) in `conn`'s transaction with one
    statement, all or none; returns them in order. Awaitable for an async connection."""
    driver = adapt(conn)
    work = _insert(driver, list(jobs), True, owner, default_expires)
    return run_blocking(work) if driver.blocking else work


async def _one(
    db: Driver, spec: Mapping[str, Any], owner: str, default_expires: dt.timedelta | None
) -> Enqueued:
    [done] = await _insert(db, [spec], False, owner, default_expires)
    return done


def _submission(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The `POST /v1/jobs` body a keyword spec stands for, checked against its schema."""
    if not isinstance(spec, Mapping):
        raise RuleError(where, "must be a mapping of enqueue keywords")
    if not _SPEC_KEYS.issuperset(spec):
        unknown = sorted(set(spec) - _SPEC_KEYS)[0]
        raise RuleError(at(where, unknown), f"unknown field (expected one of {', '.join(FIELDS)})")
    item: dict[str, Any] = {}
    for name, value in spec.items():
        if value is not None:
            item[FIELDS[name]] = value.isoformat() if isinstance(value, dt.datetime) else value
    failure = _CHECK_SUBMISSION(item)
    if failure is not None:
        raise RuleError(format_path(failure[0], where), failure[1])
    return item


async def _definition(db: Driver, key: str, version: int | None, where: str) -> DefinitionInfo:
    """The stored definition `key@version` (latest without a version) with its code's
    checks; RuleError `unknown_definition` as the API's definition cache answers it."""
    row = await definition_get(db, key, version)
    if row is None:
        known = version is not None and await definition_get(db, key) is not None
        name = key if version is None else f"{key}@{version}"
        field = at(where, "definitionVersion" if known else "definitionKey")
        raise RuleError(field, f"unknown definition {name!r}", "unknown_definition")
    # a caller's own asyncpg connection has no JSON codec: jsonb arrives as text
    decoded = dict(row.items())
    for column in _JSON_COLUMNS:
        if isinstance(decoded.get(column), str):
            decoded[column] = loads(decoded[column])
    return definition_info(decoded, _code().get(decoded["key"], decoded["version"]))


async def _insert(
    db: Driver,
    specs: list[Mapping[str, Any]],
    batch: bool,
    owner: str,
    default_expires: dt.timedelta | None,
) -> list[Enqueued]:
    """Check every spec as the API does, then insert the new jobs in one statement."""
    where = [item_path(i if batch else None) for i in range(len(specs))]
    items = [_submission(spec, w) for spec, w in zip(specs, where, strict=True)]
    keys = batch_keys(items)
    infos: dict[tuple[str, int | None], DefinitionInfo] = {}
    for item, w in zip(items, where, strict=True):
        ref = (item["definitionKey"], item.get("definitionVersion"))
        if ref not in infos:
            infos[ref] = await _definition(db, ref[0], ref[1], w)
    now = dt.datetime.now(dt.UTC)
    ids = new_job_ids(len(items))
    jobs: list[NewJob] = []
    refs: list[CredentialRefs] = []
    for i, (item, job_id) in enumerate(zip(items, ids, strict=True)):
        info = infos[(item["definitionKey"], item.get("definitionVersion"))]
        job = build_job(item, i if batch else None, info, owner, now, job_id, default_expires)
        if info.credentials:
            refs.append((info.credentials, job.params, where[i]))
        jobs.append(job)
    await _check_references(db, refs)
    for item, job, w in zip(items, jobs, where, strict=True):  # a mail's template, ...
        info = infos[(item["definitionKey"], item.get("definitionVersion"))]
        if info.check_stored is not None:
            await check_stored(db, info, job.params, w)
    return await _store(db, jobs, keys, batch)


async def _check_references(db: Driver, refs: list[CredentialRefs]) -> None:
    """The stored credentials the jobs name, in one query (as the batch route checks them)."""
    if not refs:
        return
    try:
        await check_credential_refs(db, None, refs)
    except ApiError as e:  # the API's 422 for a credential: the same rule, raised as one
        field = e.field or ""
        raise RuleError(field, e.message.removeprefix(f"{field}: "), e.code) from None


async def _store(
    db: Driver, jobs: list[NewJob], keys: dict[str, int], batch: bool
) -> list[Enqueued]:
    """Insert the jobs whose idempotency key (if any) holds no stored job; a stored one
    with the same request stands for its job, with another request is a conflict."""
    for _ in range(INSERT_RETRIES):
        existing: dict[str, Any] = {}
        if keys:
            owner = jobs[0].owner
            for row in await job_get_by_idempotency_keys(db, owner, list(keys)):
                existing[row["idempotency_key"]] = row
            for key, row in existing.items():
                i = keys[key]
                if not same_request(row["request_fingerprint"], jobs[i].request_fingerprint):
                    raise IdempotencyConflict(
                        at(item_path(i if batch else None), "idempotencyKey"),
                        f"{key!r} was already used with a different request",
                        "idempotency_conflict",
                    )
        new = [j for j in jobs if j.idempotency_key not in existing]
        try:
            if new and keys:
                async with db.savepoint():  # a key taken meanwhile undoes this alone
                    await job_insert_resolved(db, new)
            elif new:
                await job_insert_resolved(db, new)
        except Exception as e:
            if keys and is_unique_violation(e):
                continue  # a concurrent transaction committed a key first: re-read
            raise
        return [
            Enqueued(replace(j, id=existing[j.idempotency_key]["id"]), False)
            if j.idempotency_key in existing
            else Enqueued(j, True)
            for j in jobs
        ]
    message = "could not store the jobs: their idempotency keys kept changing"
    raise RuleError("", message, "conflict")
