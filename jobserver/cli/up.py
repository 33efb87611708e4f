"""`jobserver up`: the whole server on one machine, in one process group.

1. With DATABASE_URL unset, starts the embedded PostgreSQL (`jobserver.embedded`, data kept in
   JOBSERVER_HOME, default `./.jobserver`, across restarts); otherwise uses DATABASE_URL.
2. Applies migrations and publishes the shipped definitions (`jobserver.publish`; a definition
   whose metadata changed without a version bump is reported and left as stored).
3. On first start creates a `dev` token with the `manage_jobs` scope and keeps its plaintext in
   `<home>/dev-token` (mode 0600) so later starts can print it again; a token revoked or missing
   from the database is replaced.
4. Prints the URL, the token and a curl example, then runs the API, a worker and the scheduler as
   child processes (`python -m jobserver.cli.api|worker|scheduler`, each only if installed), with
   the same environment plus DATABASE_URL.

If a child exits on its own, it is logged and everything stops with exit code 1. Ctrl-C or SIGTERM
sends SIGTERM to every child, waits SHUTDOWN_GRACE_SECONDS + 10 s, SIGKILLs what is left, stops
the embedded database and exits 0 (1 if a child had to be killed). A second Ctrl-C/SIGTERM is
passed on to the children, which then exit at once. Children get SIGTERM from the kernel if `up`
itself dies (PR_SET_PDEATHSIG), so none is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import functools
import importlib.util
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from jobserver.cli.common import fail, load_settings, run
from jobserver.config import Settings
from jobserver.db import migrate
from jobserver.db.pool import connect
from jobserver.embedded import EmbeddedPostgres
from jobserver.publish import publish
from jobserver.registry import load_modules

log = logging.getLogger("jobserver.up")

CHILDREN: list[tuple[str, str]] = [
    ("api", "jobserver.cli.api"),
    ("worker", "jobserver.cli.worker"),
    ("scheduler", "jobserver.cli.scheduler"),
]
KILL_MARGIN_SECONDS = 10.0
PR_SET_PDEATHSIG = 1


class _Interrupted(Exception):
    """SIGTERM or Ctrl-C while starting up."""


@dataclass
class Child:
    name: str
    module: str
    proc: subprocess.Popen[bytes] | None = None
    returncode: int | None = None


@dataclass
class Supervisor:
    """Runs the children and stops them in order; `stop_requested` is set by the signal handler."""

    env: dict[str, str]
    grace_seconds: float
    children: list[Child] = field(default_factory=list)
    stop_requested: int = 0
    killed: list[str] = field(default_factory=list)
    kill_margin_seconds: float = KILL_MARGIN_SECONDS

    def start(self) -> None:
        for child in self.children:
            child.proc = subprocess.Popen(
                [sys.executable, "-m", child.module],
                env=self.env,
                start_new_session=True,  # Ctrl-C reaches `up` only; it stops children in order
                preexec_fn=_die_with_parent(),
            )
            log.info("started %s", child.name, extra={"pid": child.proc.pid})

    def first_exited(self) -> Child | None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                child.returncode = child.proc.returncode
                return child
        return None

    def signal_all(self, signum: int) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signum)

    def stop(self) -> None:
        """SIGTERM everyone, wait for the grace period, then SIGKILL the rest."""
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds + self.kill_margin_seconds
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("%s did not stop in time; killing it", child.name)
                child.proc.kill()
                child.proc.wait()
                self.killed.append(child.name)
            child.returncode = child.proc.returncode
            log.info("%s exited", child.name, extra={"returncode": child.returncode})


@functools.cache
def _die_with_parent() -> Callable[[], None] | None:
    """A hook for the child, before exec, to get SIGTERM if `up` dies, even by SIGKILL; None
    (logged once, with the reason) where the C library has no prctl. Looked up here, in the
    parent: a child between fork and exec must not log."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError) as e:
        log.warning("children will outlive 'jobserver up' if it is killed: no prctl (%s)", e)
        return None

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return arm


def _lock_home(home: Path) -> IO[str]:
    home.mkdir(parents=True, exist_ok=True)
    handle = open(home / "up.lock", "w")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fail(f"another 'jobserver up' is running with JOBSERVER_HOME={home}", 1)
    return handle


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)


async def ensure_dev_token(database_url: str, saved: str | None) -> str | None:
    """The dev token's plaintext: `saved` if still valid, else a new one (None: no token support
    installed)."""
    try:
        from jobserver import auth
        from jobserver.db import tokens
    except ImportError:
        log.warning("token support is not installed; no dev token created")
        return None
    import asyncpg

    conn = await connect(database_url)
    try:
        if saved:
            row: Any = await tokens.token_get_by_hash(conn, auth.hash_token(saved))
            if row is not None and row["revoked_at"] is None:
                return saved
        name = "dev"
        for _ in range(2):
            try:
                plaintext: str = await auth.create_token(
                    conn, name, ["manage_jobs", auth.OUTBOUND], "dev"
                )
                break
            except asyncpg.UniqueViolationError:  # an older dev token whose plaintext is lost
                name = f"dev-{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(2)}"
        else:
            raise RuntimeError("could not create a dev token")
        log.info("created dev token", extra={"tokenName": name})
        return plaintext
    finally:
        await conn.close()


def _public_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, *parts[2:]))
    return url


def banner(settings: Settings, database: str, token: str | None, token_path: Path) -> str:
    base = _public_url(settings)
    auth = f"-H 'Authorization: Bearer {token}' " if token else ""
    lines = [
        "",
        "jobserver is starting",
        f"  URL:       {base}   (ready when {base}/readyz answers 200)",
        f"  database:  {database}",
    ]
    if token:
        lines.append(f"  dev token: {token}   (saved in {token_path})")
    elif not settings.auth_enabled:
        lines.append("  auth:      disabled (JOBSERVER_AUTH=disabled)")
    lines += [
        "  submit a job:",
        f"    curl -s -X POST {base}/v1/jobs {auth}-H 'Content-Type: application/json' \\",
        """      -d '{"definitionKey": "echo", "params": {"message": "hello"}}'""",
        f"  API description: {base}/openapi.json",
        "  stop: Ctrl-C",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="jobserver up",
        description="Run migrations, register definitions and run the API, a worker and the "
        "scheduler. Uses an embedded PostgreSQL under JOBSERVER_HOME when DATABASE_URL is unset.",
    )
    p.add_argument(
        "--without",
        action="append",
        default=[],
        choices=[name for name, _ in CHILDREN],
        help="do not start this process (repeatable)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = load_settings(need_database=False)
    home = Path(settings.home).resolve()
    lock = _lock_home(home)
    embedded: EmbeddedPostgres | None = None
    supervisor: Supervisor | None = None
    code = 0

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if supervisor is None:
            raise _Interrupted
        if supervisor.stop_requested:
            log.warning("second stop signal: children exit now")
            supervisor.signal_all(signal.SIGTERM)
        supervisor.stop_requested = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if settings.database_url:
            url, where = settings.database_url, _redact(settings.database_url)
        else:
            embedded = EmbeddedPostgres(home)
            url = embedded.start()
            where = f"embedded PostgreSQL, data in {embedded.pgdata}"
        migrate.upgrade(url)
        for ref, outcome in run(publish(url, load_modules().all())):
            if outcome == "conflict":
                log.warning("definition %s changed without a version bump; kept as stored", ref)
            else:
                log.info("definition %s: %s", ref, outcome)
        token_path = home / "dev-token"
        token = None
        if settings.auth_enabled:
            saved = token_path.read_text().strip() if token_path.exists() else None
            token = run(ensure_dev_token(url, saved))
            if token and token != saved:
                _write_secret(token_path, token)
        print(banner(settings, where, token, token_path), flush=True)

        wanted = [
            Child(name, module)
            for name, module in CHILDREN
            if name not in args.without and importlib.util.find_spec(module) is not None
        ]
        missing = [n for n, m in CHILDREN if importlib.util.find_spec(m) is None]
        if missing:
            log.warning("not installed, not started: %s", ", ".join(missing))
        env = {**os.environ, "DATABASE_URL": url}
        supervisor = Supervisor(env, settings.shutdown_grace_seconds, wanted)
        supervisor.start()
        code = _watch(supervisor)
    except _Interrupted:
        log.info("interrupted while starting")
    except Exception as e:  # one line for the user, details in the log
        log.exception("jobserver up failed")
        print(f"error: {e}", file=sys.stderr)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if supervisor is not None:
            supervisor.stop()
            if supervisor.killed:
                code = code or 1
        if embedded is not None:
            embedded.stop()
        lock.close()
    log.info("jobserver up stopped", extra={"exitCode": code})
    raise SystemExit(code)


def _watch(supervisor: Supervisor) -> int:
    """Block until a stop signal (exit 0) or a child exiting on its own (exit 1)."""
    while not supervisor.stop_requested:
        exited = supervisor.first_exited()
        if exited is not None:
            log.error(
                "%s exited unexpectedly; stopping everything",
                exited.name,
                extra={"returncode": exited.returncode},
            )
            return 1
        time.sleep(0.2)  # a supervisor's poll period, not a wait for a specific event
    log.info("stop requested", extra={"signal": signal.Signals(supervisor.stop_requested).name})
    return 0


if __name__ == "__main__":
    main()
