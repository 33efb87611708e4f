"""`register-definitions`: publish the definitions found in code to the `job_definitions` table.

Imports every module under `definitions/` plus those named with `--module pkg.mod` (repeatable),
then upserts each definition's metadata. Per definition it prints one line, `key@version: outcome`:

- `created`   new key+version, stored;
- `unchanged` stored with the same metadata (re-running is a no-op);
- `conflict`  stored with different metadata under the same key+version: kept as it was, reported,
  and the command exits 1 — bump the version, or pass `--force` to overwrite (`replaced`).

All changes happen in one transaction: a conflict without `--force` writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

import asyncpg

from jobserver.cli.common import fail, load_settings, run
from jobserver.db.definitions import definition_replace, definition_upsert
from jobserver.db.pool import connect
from jobserver.registry import Definition, DefinitionError, load_modules
from jobserver.schedules import sync_code_schedules

Outcome = tuple[str, str]


async def register_definitions(
    conn: asyncpg.Connection, definitions: Iterable[Definition], *, force: bool = False
) -> list[Outcome]:
    """Upsert `definitions`; returns (ref, outcome) in order. Rolls back on any conflict unless
    `force`, so a rejected run changes nothing."""
    outcomes: list[Outcome] = []
    async with conn.transaction():
        for d in definitions:
            meta = d.metadata()
            outcome = await definition_upsert(conn, meta)
            if outcome == "conflict" and force:
                await definition_replace(conn, meta)
                outcome = "replaced"
            outcomes.append((d.ref, outcome))
        if any(o == "conflict" for _, o in outcomes):
            raise _Rollback(outcomes)
    return outcomes


class _Rollback(Exception):
    def __init__(self, outcomes: list[Outcome]) -> None:
        super().__init__("conflict")
        self.outcomes = outcomes


async def register_url(
    database_url: str, definitions: Iterable[Definition], *, force: bool = False
) -> list[Outcome]:
    """Connect, register, disconnect; conflicts are returned (and nothing is written)."""
    conn = await connect(database_url)
    try:
        outcomes = await register_definitions(conn, definitions, force=force)
        for name, outcome in await sync_code_schedules(conn):  # schedules declared in code
            shown = "kept (created over the API)" if outcome == "conflict" else outcome
            outcomes.append((f"schedule {name}", shown))
        return outcomes
    except _Rollback as rb:
        return rb.outcomes
    finally:
        await conn.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="register-definitions",
        description="Upsert job definition metadata from definitions/ (and --module) into the "
        "database named by DATABASE_URL.",
    )
    p.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="PKG.MOD",
        help="also import this module (repeatable)",
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite definitions whose metadata changed"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = load_settings()
    try:
        registry = load_modules(args.module)
    except (ImportError, DefinitionError) as e:
        fail(f"cannot load definitions: {e}")
    if len(registry) == 0:
        fail("no definitions found", 1)
    outcomes = run(register_url(settings.require_database_url(), registry.all(), force=args.force))
    for ref, outcome in outcomes:
        print(f"{ref}: {outcome}")
    conflicts = [ref for ref, o in outcomes if o == "conflict"]
    if conflicts:
        print(
            f"error: {len(conflicts)} definition(s) changed without a version bump "
            f"({', '.join(conflicts)}); nothing was written. Bump the version or use --force.",
            file=sys.stderr,
        )
        raise SystemExit(1)


if __name__ == "__main__":
    main()
