"""Pooled connections are released without a reset query (`jobserver.db.pool.keep_session`),
so no code may leave session state on one: these are the forms such state takes in SQL."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "jobserver"

FORBIDDEN = {
    "a session advisory lock (use pg_advisory_xact_lock)": re.compile(
        r"pg_(try_)?advisory_lock(_shared)?\s*\(", re.I
    ),
    # SQL keywords are upper case here (a prose "set TOKEN to" is not SQL)
    "a session SET (use SET LOCAL)": re.compile(r"[\"'(]\s*SET\s+(?!LOCAL\b)\w+\s*(=|TO\b)"),
    "set_config for the session (is_local must be true)": re.compile(
        r"set_config\s*\([^)]*,\s*false\s*\)", re.I
    ),
    "a cursor that outlives its transaction": re.compile(r"\bWITH\s+HOLD\b", re.I),
}
# LISTEN runs on dedicated connections, never pooled ones.
LISTEN = re.compile(r"[\"']\s*LISTEN\s", re.I)
LISTEN_HOME = {"db/listener.py"}


def test_no_code_leaves_session_state_on_a_pooled_connection() -> None:
    found: list[str] = []
    for path in ROOT.rglob("*.py"):
        text = path.read_text()
        rel = path.relative_to(ROOT).as_posix()
        for why, pattern in FORBIDDEN.items():
            for m in pattern.finditer(text):
                found.append(f"{rel}: {why}: {m.group(0)!r}")
        if rel not in LISTEN_HOME and LISTEN.search(text):
            found.append(f"{rel}: LISTEN outside {sorted(LISTEN_HOME)}")
    assert found == []


def test_the_patterns_catch_what_they_mean_to() -> None:
    bad = [
        "SELECT pg_advisory_lock(1)",
        "select pg_try_advisory_lock($1)",
        "'SET statement_timeout = 5'",
        '"SET search_path TO x"',
        "SELECT set_config('a.b', 'c', false)",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    ]
    good = [
        "SELECT pg_advisory_xact_lock(1)",
        "'SET LOCAL statement_timeout = 5'",
        "UPDATE jobs SET status = 'queued'",
        "SELECT set_config('a.b', 'c', true)",
    ]
    for text in bad:
        assert any(p.search(text) for p in FORBIDDEN.values()), text
    for text in good:
        assert not any(p.search(text) for p in FORBIDDEN.values()), text
