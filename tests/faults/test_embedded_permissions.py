"""Scenario: the embedded database's permissions, tried as another local user would.

The attack on the earlier code: with a long JOBSERVER_HOME the socket moved to a 0777 directory
under /tmp, the cluster trusted every local connection, and another local user got a superuser
session with `psql -h /tmp/<hash> -U postgres`. Here a real `jobserver up` (as root, embedded
database) runs with a home whose socket path is 100 bytes long, close to the limit; the other
user (`jobserver-test-other`) then tries every way in. A home one byte too long is refused.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobserver.embedded import SOCKET_NAME, SOCKET_PATH_MAX
from jobserver.testing.cluster import free_port
from tests.faults.conftest import Row
from tests.system.test_embedded_security import (
    asyncpg_connect_as,
    ensure_other_user,
    modes,
    psql,
)
from tests.system.test_up import Up, _env, _start, _stop, _wait_ready

pytestmark = [
    pytest.mark.faults,
    pytest.mark.scenario("embedded database permissions"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another OS user"),
]


def _home_with_socket_length(base: Path, length: int) -> Path:
    """A home below `base` whose socket path (`<home>/run/.s.PGSQL.5432`) has `length` bytes."""
    fixed = len(os.fsencode(base)) + len("/") + len(f"/run/{SOCKET_NAME}")
    return base / ("h" * (length - fixed))


@pytest.fixture
def base(traversable_dir: Path) -> Path:
    """A directory every OS user can traverse (see tests/conftest.py)."""
    return traversable_dir


def _ways_in(home: Path, other: str) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every way in the other user (and the database's own user, without the password) tries."""
    pid_lines = (home / "pgdata" / "postmaster.pid").read_text().splitlines()
    socket_dir = Path(pid_lines[4])
    assert socket_dir == home / "run"  # not moved to /tmp
    assert socket_dir.stat().st_mode & 0o777 == 0o700
    password = (home / "db-password").read_text().strip()
    url = f"postgresql://postgres:{password}@/jobserver?host={socket_dir}"
    return {
        "psql, no password": psql(other, socket_dir),
        "psql, with the password": psql(other, socket_dir, PGPASSWORD=password),
        "asyncpg, with the password": asyncpg_connect_as(other, url),
        "psql as the database's own user, no password": psql(socket_dir.owner(), socket_dir),
    }


def _up_refused(base: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobserver.cli.main", "up"],
        cwd=base,
        env=_env(PORT=str(free_port()), JOBSERVER_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_other_local_user_gets_no_session(base: Path, report: Row) -> None:
    other = ensure_other_user()
    home = _home_with_socket_length(base, 100)
    before = modes(base)
    port = free_port()
    up: Up = _start(base, port, _env(PORT=str(port), JOBSERVER_HOME=str(home)), "up")
    try:
        await _wait_ready(up)
        attempts = await asyncio.to_thread(_ways_in, home, other)
        got_in = {name: p.stdout for name, p in attempts.items() if p.returncode == 0}
        assert got_in == {}, got_in
        assert "Permission denied" in attempts["psql, with the password"].stderr
        own = attempts["psql as the database's own user, no password"]
        assert "no password supplied" in own.stderr
        assert modes(base) == before  # no parent directory was opened up
        await _stop(up)
    finally:
        up.kill_everything()

    too_long = _home_with_socket_length(base, SOCKET_PATH_MAX + 1)
    refused = await asyncio.to_thread(_up_refused, base, too_long)
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "too long" in refused.stderr
    assert not too_long.exists()
    report.why = "no session"
    report.note = (
        f"as {other}: {len(attempts)} ways in refused (socket dir 0700, SCRAM); "
        f"a {SOCKET_PATH_MAX + 1}-byte socket path exits 2"
    )
