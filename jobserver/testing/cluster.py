"""A throwaway PostgreSQL cluster started from the local binaries, for tests and benchmarks.

`initdb`, `pg_ctl` and `postgres` refuse to run as root, so when we are root they run as the
`postgres` OS user in a directory that user owns. The cluster listens on 127.0.0.1 on a free port
and is deleted by `stop()`. `restart(mode="immediate")` is what the fault tests use to crash it.

Options: `fast=True` (tests) turns fsync and synchronous commit off; benchmarks pass `fast=False`
and their own `settings` to match the peers' configuration.

`LocalCluster.standby_of(primary)` makes a streaming replica of a started cluster
(`pg_basebackup -R -X stream` over the loopback replication connection initdb's pg_hba trusts)
and starts it as a hot standby on a port of its own; `stop()` removes it like any cluster.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field


def find_pg_bin() -> str:
    """The directory holding initdb/pg_ctl: PG_BIN, else the newest Debian install, else PATH."""
    if os.environ.get("PG_BIN"):
        return os.environ["PG_BIN"]
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for c in candidates:
        if os.path.exists(os.path.join(c, "initdb")):
            return c
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    raise RuntimeError("no PostgreSQL binaries found (set PG_BIN or install postgresql)")


def _version_key(path: str) -> int:
    try:
        return int(path.split("/")[-2])
    except ValueError:
        return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalCluster:
    fast: bool = True
    settings: Mapping[str, str] = field(default_factory=dict)
    port: int = 0
    bin_dir: str = ""
    base_dir: str = ""
    _user: str | None = None

    @property
    def data_dir(self) -> str:
        return os.path.join(self.base_dir, "data")

    @property
    def log_file(self) -> str:
        return os.path.join(self.base_dir, "postgres.log")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _make_base_dir(self) -> None:
        self.bin_dir = self.bin_dir or find_pg_bin()
        self.port = self.port or free_port()
        self.base_dir = tempfile.mkdtemp(prefix="jobserver-pg-", dir="/tmp")
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            pw = pwd.getpwnam(self._user)
            os.chown(self.base_dir, pw.pw_uid, pw.pw_gid)

    def _write_conf(self, conf: Mapping[str, str]) -> None:
        with open(os.path.join(self.data_dir, "postgresql.auto.conf"), "a") as f:
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")

    def start(self) -> LocalCluster:
        self._make_base_dir()
        self._run(
            "initdb",
            "-D",
            self.data_dir,
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base_dir}'",
            "max_connections": "300",
            "shared_buffers": "128MB",
        }
        if self.fast:
            conf.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        conf.update(self.settings)
        self._write_conf(conf)
        self.pg_ctl("start", "-w", "-t", "60")
        return self

    @classmethod
    def standby_of(cls, primary: LocalCluster) -> LocalCluster:
        """A started hot standby streaming from `primary` (which keeps the default
        wal_level=replica and max_wal_senders); its own port and directory."""
        standby = cls(fast=primary.fast, bin_dir=primary.bin_dir)
        standby._make_base_dir()
        standby._run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            standby.data_dir,
            "-R",  # standby.signal and primary_conninfo
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        )
        # later lines win over the primary's copied port and socket directory
        standby._write_conf(
            {
                "port": str(standby.port),
                "unix_socket_directories": f"'{standby.base_dir}'",
                "hot_standby": "on",
            }
        )
        standby.pg_ctl("start", "-w", "-t", "60")
        return standby

    def pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", self.data_dir, "-l", self.log_file, *args)

    def restart(self, mode: str = "fast") -> None:
        self.pg_ctl("restart", "-m", mode, "-w", "-t", "60")

    def stop_server(self, mode: str = "fast") -> None:
        self.pg_ctl("stop", "-m", mode, "-w", "-t", "60")

    def start_server(self) -> None:
        self.pg_ctl("start", "-w", "-t", "60")

    def stop(self) -> None:
        """Stop the server and delete its files; safe to call twice."""
        if not self.base_dir:
            return
        with contextlib.suppress(subprocess.CalledProcessError):
            self.pg_ctl("stop", "-m", "immediate", "-w", "-t", "30")
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir = ""

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [os.path.join(self.bin_dir, tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            user=self._user,
            cwd="/tmp",
        )

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
