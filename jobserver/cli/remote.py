"""What the operator commands (`jobserver jobs|dlq|queues|runners ...`) share: the connection
flags, the client, and printing — a rich table by default, JSON with `--json`.

Connection: `--url` (else JOBSERVER_URL, else http://127.0.0.1:3000) and `--token` (else
JOBSERVER_TOKEN). An API error or a lost connection prints one line (`error: ...`) on stderr
and exits 1; bad arguments exit 2 (argparse); Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from jobserver.cli.common import fail, load_dotenv_file
from jobserver.client import Client, JobserverError

# Rows of a table beyond a terminal (a pipe, a file) get this width, so ids are never cut.
PIPE_WIDTH = 200


def connection_flags() -> argparse.ArgumentParser:
    """The flags every sub-command takes (a parent parser)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--url", help="the API (default: JOBSERVER_URL, else http://127.0.0.1:3000)")
    p.add_argument("--token", help="the API token (default: JOBSERVER_TOKEN)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts, not a table")
    return p


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or "COLUMNS" in os.environ else PIPE_WIDTH
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def run(args: argparse.Namespace, action: Callable[[Client, argparse.Namespace], int]) -> None:
    """Run `action` with a client made from the flags; exit with its code."""
    load_dotenv_file()
    try:
        with Client(args.url, args.token) as client:
            code = action(client, args)
    except JobserverError as e:
        fail(str(e), 1)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    raise SystemExit(code)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def when(value: dt.datetime | str | None) -> str:
    """A time as the tables show it (seconds, in its own zone); "-" when unset."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return value.isoformat(timespec="seconds")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return when(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    t = Table(title=title, header_style="bold")
    for name in columns:
        t.add_column(name, overflow="fold")
    for row in rows:
        t.add_row(*(cell(v) for v in row))
    console().print(t)


def fields(title: str, pairs: Iterable[tuple[str, Any]]) -> None:
    """One record as a two-column table."""
    table(title, ("FIELD", "VALUE"), pairs)


def comma_list(values: Sequence[str] | None) -> list[str] | None:
    """Repeatable and/or comma-separated flag values, as one list (None when none)."""
    if not values:
        return None
    return [v for raw in values for v in raw.split(",") if v]
