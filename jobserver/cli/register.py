"""`register-definitions`: publish the definitions found in code to the `job_definitions` table.

Imports the shipped definitions (`jobserver.definitions`, the repository's `definitions/`) plus
those named with `--module pkg.mod` (repeatable), publishes them (`jobserver.publish`) and prints
one line per definition, `key@version: outcome` (created, unchanged, conflict, replaced), then
one per schedule declared in code. A conflict writes nothing and exits 1: bump the version, or
pass `--force` to overwrite.
"""

from __future__ import annotations

import argparse
import sys

from jobserver.cli.common import fail, load_settings, run
from jobserver.publish import publish
from jobserver.registry import DefinitionError, load_modules


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="register-definitions",
        description="Upsert job definition metadata from the shipped definitions (and --module) "
        "into the database named by DATABASE_URL.",
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
    outcomes = run(publish(settings.require_database_url(), registry.all(), force=args.force))
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
