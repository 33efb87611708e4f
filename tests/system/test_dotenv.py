"""Every console script reads `.env` from the working directory (the core reference's setup step
2); a variable set in the process environment wins over the file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from jobserver.cli.common import load_settings
from jobserver.db.urls import asyncpg_url


def test_load_settings_reads_dotenv_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(
        "DATABASE_URL=postgresql://from-dotenv/db\nMAX_CONCURRENT_EXECUTIONS=7\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-env/db")
    monkeypatch.setenv("MAX_CONCURRENT_EXECUTIONS", "unset-below")
    monkeypatch.delenv("MAX_CONCURRENT_EXECUTIONS")
    settings = load_settings()
    assert settings.database_url == "postgresql://from-env/db"
    assert os.environ["MAX_CONCURRENT_EXECUTIONS"] == "7"
    assert settings.max_concurrent_executions == 7


def _migrate_in(cwd: Path) -> subprocess.CompletedProcess[str]:
    """`jobserver migrate` run in `cwd` without DATABASE_URL in its environment."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "jobserver.cli.main", "migrate"],
        env={**env, "LOG_FORMAT": "text"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_migrate_takes_database_url_from_dotenv(
    tmp_path: Path, empty_database_url: str
) -> None:
    (tmp_path / ".env").write_text(f"DATABASE_URL={empty_database_url}\n")
    proc = _migrate_in(tmp_path)
    assert proc.returncode == 0, proc.stderr
    conn = await asyncpg.connect(asyncpg_url(empty_database_url))
    try:
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 0
    finally:
        await conn.close()
