"""`register-definitions`: created, unchanged (re-run is a no-op), conflict (reported, nothing
written, exit 1) and --force (replaced)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg

from jobserver.db.definitions import definition_get
from jobserver.publish import publish, register_definitions
from jobserver.registry import Definition, Registry, definition

ROOT = Path(__file__).resolve().parents[2]


async def _run(params: Any, ctx: Any) -> None:
    return None


def _sample(description: str = "first", version: int = 1, attempts: int = 3) -> Definition:
    return Definition(
        key="platform-sample",
        version=version,
        run=_run,
        default_max_attempts=attempts,
        description=description,
        params_schema={"type": "object"},
    )


async def test_created_then_unchanged(pool: asyncpg.Pool, database_url: str) -> None:
    first = await publish(database_url, [_sample(), _sample(version=2)])
    assert first == [("platform-sample@1", "created"), ("platform-sample@2", "created")]
    again = await publish(database_url, [_sample(), _sample(version=2)])
    assert again == [("platform-sample@1", "unchanged"), ("platform-sample@2", "unchanged")]
    row = await definition_get(pool, "platform-sample")
    assert row is not None and row["version"] == 2
    assert row["params_schema"] == {"type": "object"}
    assert row["registered_at"] == row["updated_at"]


async def test_conflict_is_reported_and_nothing_written(
    pool: asyncpg.Pool, database_url: str
) -> None:
    await publish(database_url, [_sample()])
    changed = _sample(description="changed", attempts=5)
    other = _sample(version=3)
    outcomes = await publish(database_url, [other, changed])
    assert outcomes == [("platform-sample@3", "created"), ("platform-sample@1", "conflict")]
    row = await definition_get(pool, "platform-sample", 1)
    assert row is not None
    assert (row["description"], row["default_max_attempts"]) == ("first", 3)
    # one transaction: the new version 3 was rolled back with the conflict
    assert await definition_get(pool, "platform-sample", 3) is None


async def test_force_replaces(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await register_definitions(conn, [_sample()])
        outcomes = await register_definitions(
            conn, [_sample(description="changed", attempts=5)], force=True
        )
    assert outcomes == [("platform-sample@1", "replaced")]
    row = await definition_get(pool, "platform-sample", 1)
    assert row is not None
    assert (row["description"], row["default_max_attempts"]) == ("changed", 5)
    assert (
        row["fingerprint"] == _sample(description="changed", attempts=5).metadata()["fingerprint"]
    )
    assert row["updated_at"] >= row["registered_at"]


def test_registry_builds_definitions_from_decorator() -> None:
    target = Registry()

    @definition("decorated", 2, default_max_attempts=4, target=target)
    async def decorated(params: Any, ctx: Any) -> None:
        """First line is the description."""

    d = target.get("decorated", 2)
    assert d is not None and d.metadata()["description"] == "First line is the description."


def _cli(
    database_url: str, *args: str, extra_path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_FORMAT": "text"}
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [extra_path, env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "jobserver.cli.main", "register-definitions", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_cli_outcomes_and_exit_codes(pool: asyncpg.Pool, database_url: str) -> None:
    first = _cli(database_url)
    assert first.returncode == 0, first.stderr
    assert "echo@1: created" in first.stdout.splitlines()
    assert "failing@1: created" in first.stdout.splitlines()

    again = _cli(database_url)
    assert again.returncode == 0, again.stderr
    assert "echo@1: unchanged" in again.stdout.splitlines()

    # The stored echo@1 differs from the code (as if the code changed without a version bump).
    await pool.execute(
        "UPDATE job_definitions SET description = 'old', fingerprint = 'old'"
        " WHERE key = 'echo' AND version = 1"
    )
    conflict = _cli(database_url)
    assert conflict.returncode == 1
    assert "echo@1: conflict" in conflict.stdout.splitlines()
    assert "echo@1" in conflict.stderr and "--force" in conflict.stderr
    assert await pool.fetchval("SELECT description FROM job_definitions WHERE key = 'echo'") == (
        "old"
    )

    forced = _cli(database_url, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "echo@1: replaced" in forced.stdout.splitlines()
    assert await pool.fetchval("SELECT description FROM job_definitions WHERE key = 'echo'") != (
        "old"
    )


def test_cli_bad_module_is_one_line(tmp_path: Path) -> None:
    proc = _cli("postgresql://nobody@127.0.0.1:1/x", "--module", "no_such_module_here")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: cannot load definitions: No module named 'no_such_module_here'"
    ]


def test_cli_rejects_an_invalid_params_schema(tmp_path: Path) -> None:
    """The meta-schema check happens where schemas are published (the worker skips it)."""
    (tmp_path / "bad_schema_defs.py").write_text(
        "from jobserver.registry import definition\n"
        "@definition('bad-schema', 1, params_schema={'type': 'no-such-type'})\n"
        "async def run(params, ctx):\n"
        "    return None\n"
    )
    proc = _cli(
        "postgresql://nobody@127.0.0.1:1/x",
        "--module",
        "bad_schema_defs",
        extra_path=str(tmp_path),
    )
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: cannot load definitions: bad-schema@1: invalid params_schema")
