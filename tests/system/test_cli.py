"""The `jobserver` umbrella command and `jobserver migrate`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from jobserver.cli import main as cli_main
from jobserver.db.urls import asyncpg_url
from jobserver.testing.cluster import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
# the newest migration (one linear chain: 0001_..., 0002_...)
HEAD = max(p.name[:4] for p in (ROOT / "migrations" / "versions").glob("[0-9]*.py"))


def _jobserver(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobserver.cli.main", *args],
        env={**os.environ, "LOG_FORMAT": "text", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_migrate_applies_schema_and_is_idempotent(empty_database_url: str) -> None:
    for _ in range(2):
        proc = _jobserver("migrate", DATABASE_URL=empty_database_url)
        assert proc.returncode == 0, proc.stderr
        assert "database migrated to head" in proc.stdout
    conn = await asyncpg.connect(asyncpg_url(empty_database_url))
    try:
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == HEAD
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 0
    finally:
        await conn.close()


def test_migrate_without_database_url_is_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "jobserver.cli.main", "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: DATABASE_URL is not set: expected a postgresql:// URL"
    ]


def test_help_lists_every_command() -> None:
    proc = _jobserver("--help")
    assert proc.returncode == 0
    for name in cli_main.COMMANDS:
        assert name in proc.stdout


def test_unknown_command_is_a_usage_error() -> None:
    proc = _jobserver("frobnicate")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_missing_module_gives_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli_main.COMMANDS, "ghost", ("jobserver.cli.no_such_module", "x"))
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["ghost", "list"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "error: 'jobserver ghost' is not available: module jobserver.cli.no_such_module is missing"
    )


def test_arguments_are_passed_to_the_sub_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[str] | None] = []
    monkeypatch.setattr(cli_main, "resolve", lambda command: seen.append)
    cli_main.main(["tokens", "create", "--name", "n", "--scope", "view_jobs"])
    cli_main.main(["register-definitions", "--force"])
    assert seen == [["create", "--name", "n", "--scope", "view_jobs"], ["--force"]]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com", "::ffff:127.0.0.1"])
@pytest.mark.parametrize("command", [("up",), ("api",)])
def test_auth_disabled_off_loopback_is_refused(
    command: tuple[str, ...], host: str, tmp_path: Path
) -> None:
    """Auth off lets anyone who reaches the API act as an admin: only on loopback."""
    argv = (
        [sys.executable, "-m", "jobserver.cli.main", *command]
        if command == ("up",)
        else [sys.executable, "-m", "jobserver.cli.api"]
    )
    proc = subprocess.run(
        argv,
        env={
            **os.environ,
            "JOBSERVER_AUTH": "disabled",
            "HOST": host,
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "JOBSERVER_HOME": str(tmp_path / "home"),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: JOBSERVER_AUTH=disabled needs the API on a loopback address (127.0.0.1, ::1, "
        f"localhost), not HOST={host!r}: bind one, or enable auth"
    ]
    assert not (tmp_path / "home").exists()  # refused before anything started


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.5.6.7", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("10.0.0.1", False),
        ("localhost.example.com", False),
        ("127.0.0.1.nip.io", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    from jobserver.config import is_loopback

    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_auth_disabled_on_loopback_is_served(host: str) -> None:
    """The other side of the rule: on loopback the API starts and answers (the test can fail)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobserver.cli.api"],
        env={
            **os.environ,
            "JOBSERVER_AUTH": "disabled",
            "HOST": host,
            "PORT": str(port),
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def healthy() -> bool:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_until(healthy, within=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
