"""Fault-suite fixtures and the summary table.

Each scenario fills a `report` row (jobs accepted, jobs terminal, duplicates and why, max
recovery time, 5xx count); the verdict comes from the test's own outcome. At the end of the run
one table is printed and, when FAULTS_REPORT names a file, the rows are written there as JSON
(`scripts/faults` uses it).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg
import pytest

from jobserver.auth import create_token
from jobserver.db.definitions import definition_upsert
from jobserver.registry import load_modules
from tests.faults.defs import LEDGER_DDL
from tests.faults.helpers import Procs

REGISTRY = load_modules(["tests.faults.defs"])


@dataclass
class Row:
    scenario: str
    accepted: int | None = None
    terminal: int | None = None
    duplicates: int | None = None
    why: str = "-"
    recovery_s: float | None = None
    http_5xx: int | None = None
    verdict: str = "not run"
    note: str = ""


ROWS: dict[str, Row] = {}


def _scenario(item: pytest.Item) -> str:
    mark = item.get_closest_marker("scenario")
    return str(mark.args[0]) if mark else item.name


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Row:
    name = _scenario(request.node)
    row = ROWS.setdefault(name, Row(name))
    return row


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if item.get_closest_marker("faults") is None:
        return
    row = ROWS.setdefault(_scenario(item), Row(_scenario(item)))
    if rep.skipped and rep.when in ("setup", "call"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        row.verdict = "SKIP"
        row.note = str(reason).removeprefix("Skipped: ")
    elif rep.when == "call":
        row.verdict = "PASS" if rep.passed else "FAIL"
    elif rep.failed:  # setup or teardown error
        row.verdict = "ERROR"


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


HEADERS = [
    ("scenario", "scenario"),
    ("accepted", "accepted"),
    ("terminal", "terminal"),
    ("duplicates", "dups"),
    ("why", "why (duplicates)"),
    ("recovery_s", "max recovery s"),
    ("http_5xx", "5xx"),
    ("verdict", "verdict"),
]


def format_table(rows: list[Row]) -> str:
    cells = [[h for _, h in HEADERS]] + [[_fmt(getattr(r, k)) for k, _ in HEADERS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
    lines = []
    for n, c in enumerate(cells):
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    notes = [f"- {r.scenario}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + notes)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    rows = sorted(ROWS.values(), key=lambda r: r.scenario)
    terminalreporter.section("fault suite summary")
    terminalreporter.write_line(format_table(rows))
    path = os.environ.get("FAULTS_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=2)


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def procs(database_url: str) -> Iterator[Procs]:
    p = Procs(database_url)
    try:
        yield p
    finally:
        p.close()


async def prepare(pool: asyncpg.Pool) -> None:
    """Definitions registered (as `register-definitions` would) and the ledger table."""
    async with pool.acquire() as conn:
        for d in REGISTRY.all():
            await definition_upsert(conn, d.metadata())
        await conn.execute(LEDGER_DDL)


@pytest.fixture
async def db(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    await prepare(pool)
    yield pool


@pytest.fixture
async def tokens(db: asyncpg.Pool) -> dict[str, str]:
    """One token per scope; plain tokens for two owners."""
    return {
        "alice": await create_token(db, "alice", [], "alice"),
        "bob": await create_token(db, "bob", [], "bob"),
        "view": await create_token(db, "view", ["view_jobs"], "viewer"),
        "manage": await create_token(db, "manage", ["manage_jobs"], "admin"),
        "outbound": await create_token(db, "outbound", ["outbound"], "caller"),
    }
