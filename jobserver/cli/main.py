"""`jobserver`: the umbrella command. Each sub-command hands its remaining arguments to the
`main(argv)` of the module that implements it, imported only when it is used:

    jobserver up                    everything in one process group (see jobserver.cli.up)
    jobserver migrate               apply database migrations (alembic upgrade head)
    jobserver api|worker|scheduler  one server process
    jobserver register-definitions  publish definitions (see jobserver.cli.register)
    jobserver tokens ...            create, list and revoke API tokens
    jobserver jobs|dlq|queues|runners ...  operate through the API (JOBSERVER_URL, _TOKEN)
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from jobserver.cli.common import fail, load_settings

COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("jobserver.cli.up", "run the whole server locally (embedded PostgreSQL by default)"),
    "migrate": ("", "apply database migrations (alembic upgrade head)"),
    "api": ("jobserver.cli.api", "run the REST API"),
    "worker": ("jobserver.cli.worker", "run a worker"),
    "scheduler": ("jobserver.cli.scheduler", "run the scheduler"),
    "register-definitions": ("jobserver.cli.register", "publish job definitions"),
    "tokens": ("jobserver.cli.tokens", "manage API tokens (create, list, revoke)"),
    "jobs": ("jobserver.cli.jobs", "list, show, watch, submit, cancel, retry jobs (via the API)"),
    "dlq": ("jobserver.cli.dlq", "list, show, redrive dead-letter jobs (via the API)"),
    "queues": ("jobserver.cli.queues", "list, health, pause, resume queues (via the API)"),
    "runners": ("jobserver.cli.runners", "list, ping, shut down runners (via the API)"),
}


def migrate_main(argv: list[str] | None = None) -> None:
    """Upgrade the database named by DATABASE_URL to the newest schema."""
    p = argparse.ArgumentParser(prog="jobserver migrate", description=migrate_main.__doc__)
    p.add_argument("revision", nargs="?", default="head", help="target revision (default head)")
    args = p.parse_args(argv)
    settings = load_settings()
    from jobserver.db import migrate

    migrate.upgrade(settings.require_database_url(), args.revision)
    print(f"database migrated to {args.revision}")


def resolve(command: str) -> Callable[[list[str] | None], None]:
    """The `main` of a sub-command; a module not installed yet fails with one line."""
    module_name = COMMANDS[command][0]
    if not module_name:
        return migrate_main
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            fail(f"'jobserver {command}' is not available: module {module_name} is missing", 1)
        raise
    entry: Callable[[list[str] | None], None] = module.main
    return entry


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="jobserver", description="Job execution server on PostgreSQL.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    args, rest = p.parse_known_args(argv)
    resolve(args.command)(rest)


if __name__ == "__main__":
    main()
