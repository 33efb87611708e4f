"""Publish the definitions found in code to the `job_definitions` table (and the schedules
declared in code to `schedules`): what `register-definitions` and `jobserver up` run.

Per definition the outcome is one of:

- `created`   new key+version, stored;
- `unchanged` stored with the same metadata (publishing again is a no-op);
- `conflict`  stored with different metadata under the same key+version: kept as it was;
- `replaced`  such a conflict overwritten because the caller passed `force`.

All definitions are written in one transaction: a conflict without `force` writes nothing (the
outcomes still say which definitions conflicted), and the code schedules are then not synced.

`enqueue(conn, key, params, ...)` inserts one job inside the caller's own transaction on an
asyncpg connection: `jobserver.client.transactional.enqueue` (which also takes psycopg and
SQLAlchemy connections, and says what is checked), returning the job as inserted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import asyncpg

from jobserver.db.conn import Conn
from jobserver.db.definitions import definition_replace, definition_upsert
from jobserver.db.jobs import NewJob
from jobserver.db.pool import connect
from jobserver.owners import ANONYMOUS
from jobserver.registry import Definition
from jobserver.schedules import sync_code_schedules


async def enqueue(
    conn: Conn,
    definition_key: str,
    params: Any = None,
    *,
    owner: str = ANONYMOUS,
    default_expires: dt.timedelta | None = None,
    **fields: Any,
) -> NewJob:
    """`jobserver.client.transactional.enqueue` on an asyncpg connection; returns the job
    (for an idempotent repeat, the stored job's id)."""
    from jobserver.client.transactional import enqueue as enqueue_in_transaction

    done = await enqueue_in_transaction(
        conn, definition_key, params, owner=owner, default_expires=default_expires, **fields
    )
    return done.job


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
