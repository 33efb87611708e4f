"""Publish the definitions found in code to the `job_definitions` table (and the schedules
declared in code to `schedules`): what `register-definitions` and `jobserver up` run.

Per definition the outcome is one of:

- `created`   new key+version, stored;
- `unchanged` stored with the same metadata (publishing again is a no-op);
- `conflict`  stored with different metadata under the same key+version: kept as it was;
- `replaced`  such a conflict overwritten because the caller passed `force`.

All definitions are written in one transaction: a conflict without `force` writes nothing (the
outcomes still say which definitions conflicted), and the code schedules are then not synced.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from jobserver.db.definitions import definition_replace, definition_upsert
from jobserver.db.pool import connect
from jobserver.registry import Definition
from jobserver.schedules import sync_code_schedules

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
