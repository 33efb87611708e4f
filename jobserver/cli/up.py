"""`jobserver up`: the whole server on one machine, in one process group.

1. With DATABASE_URL unset, starts the embedded PostgreSQL (`jobserver.embedded`: data kept in
   JOBSERVER_HOME, default `./.jobserver`, across restarts; socket only, password required);
   otherwise uses DATABASE_URL.
2. Applies migrations and publishes the shipped definitions (`jobserver.publish`; a definition
   whose metadata changed without a version bump is reported and left as stored).
3. On the embedded database only, creates a `dev` token with the `manage_jobs` scope on first
   start, prints it in full that once and keeps its plaintext in `<home>/dev-token` (mode 0600);
   later starts show its prefix only (`jobserver up --show-token` prints it). A revoked dev token
   is not replaced unless `--new-dev-token` asks for it. On DATABASE_URL no token is made.
   Likewise, with JOBSERVER_SECRET_KEY unset, a dev key that encrypts stored credentials is
   made on first start and kept in `<home>/secret-key` (0600), so `/v1/credentials` works out
   of the box; the children get it as JOBSERVER_SECRET_KEY. On DATABASE_URL none is made.
4. Prints the URL, where the API listens (HOST, default 127.0.0.1 for `up`), the token and a curl
   example, then runs the API, a worker and the scheduler as child processes
   (`python -m jobserver.cli.api|worker|scheduler`, each only if installed), with the same
   environment plus DATABASE_URL, HOST and JOBSERVER_COMPAT (`--compat`, else the
   environment's, else `all`: every compatibility system at its default prefix).

JOBSERVER_AUTH=disabled is refused (exit 2) unless HOST is a loopback address; so is a
JOBSERVER_HOME the embedded database cannot use (too long for its socket, not reachable by the
OS user it runs as).

If a child exits on its own, it is logged and everything stops with exit code 1. Ctrl-C or SIGTERM
sends SIGTERM to every child, waits SHUTDOWN_GRACE_SECONDS + 10 s, SIGKILLs what is left, stops
the embedded database and exits 0 (1 if a child had to be killed). A second Ctrl-C/SIGTERM is
passed on to the children, which then exit at once. Children get SIGTERM from the kernel if `up`
itself dies (PR_SET_PDEATHSIG), so none is left behind.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import dataclasses
import fcntl
import functools
import importlib.util
import logging
import os
import secrets
import shlex
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

from jobserver.cli.common import fail, load_settings, refuse_open_auth, run
from jobserver.config import ConfigError, Settings, is_loopback
from jobserver.db import migrate
from jobserver.db.pool import connect
from jobserver.embedded import EmbeddedError, EmbeddedPostgres
from jobserver.publish import publish
from jobserver.registry import load_modules

log = logging.getLogger("jobserver.up")

CHILDREN: list[tuple[str, str]] = [
    ("api", "jobserver.cli.api"),
    ("worker", "jobserver.cli.worker"),
    ("scheduler", "jobserver.cli.scheduler"),
]
KILL_MARGIN_SECONDS = 10.0
UP_DEFAULT_HOST = "127.0.0.1"  # `up` is for one machine; HOST=0.0.0.0 opens it on purpose
DEV_OWNER = "dev"
PR_SET_PDEATHSIG = 1


class _Interrupted(Exception):
    """SIGTERM or Ctrl-C while starting up."""


class DevTokenRevoked(Exception):
    """The dev token was revoked; `up` does not mint another unless asked (`--new-dev-token`)."""


@dataclass(frozen=True)
class TokenShown:
    """What the banner says about the dev token."""

    state: str  # "new", "saved", "revoked", "none" (not embedded / no token support)
    token: str | None = None


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


async def ensure_dev_token(
    database_url: str, saved: str | None, *, replace_revoked: bool = False
) -> str | None:
    """The dev token's plaintext: `saved` if still valid, else a new one (None: no token support
    installed). Raises DevTokenRevoked when the dev token was revoked (the saved one, or every
    dev token in the database when none is saved) unless `replace_revoked`."""
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
            if row is not None and not replace_revoked:
                raise DevTokenRevoked(row["name"])
        if not replace_revoked:
            dev = [r for r in await tokens.token_list(conn) if _is_dev_token(r)]
            if dev and all(r["revoked_at"] is not None for r in dev):
                raise DevTokenRevoked(dev[-1]["name"])
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


def _is_dev_token(row: Any) -> bool:
    name = str(row["name"])
    return bool(row["owner"] == DEV_OWNER and (name == "dev" or name.startswith("dev-")))


def _read_saved(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def dev_token(url: str, token_path: Path, *, replace_revoked: bool) -> TokenShown:
    """Reuse, create or (after a revoke) withhold the dev token; a new one is saved 0600."""
    saved = _read_saved(token_path)
    try:
        token = run(ensure_dev_token(url, saved, replace_revoked=replace_revoked))
    except DevTokenRevoked as e:
        log.warning("dev token %s was revoked; not creating another", e)
        return TokenShown("revoked")
    if token is None:
        return TokenShown("none")
    if token == saved:
        return TokenShown("saved", token)
    _write_secret(token_path, token)
    return TokenShown("new", token)


def dev_secret_key(key_path: Path) -> tuple[str, bool]:
    """The embedded database's credential key: the saved one, else a new one saved 0600.
    Returns (key, whether it is new)."""
    saved = _read_saved(key_path)
    if saved is not None:
        return saved, False
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    _write_secret(key_path, key)
    return key, True


def _bind_host(args_host: str | None) -> str:
    """--host, else HOST when set, else loopback: `up` is not exposed unless asked to be."""
    return args_host or os.environ.get("HOST") or UP_DEFAULT_HOST


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _public_url(settings: Settings) -> str:
    return f"http://{_url_host(settings.host)}:{settings.port}"


def _listening(settings: Settings) -> str:
    """Where the API binds, in words: loopback (this machine only) or open to the network."""
    host = settings.host
    shown = f"[{host}]" if ":" in host else host
    if is_loopback(host):
        return f"{shown}:{settings.port} (loopback: this machine only)"
    if host in ("0.0.0.0", "::", ""):
        return f"{shown or '*'}:{settings.port} (every interface: reachable from the network)"
    return f"{shown}:{settings.port} (reachable from the network)"


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, *parts[2:]))
    return url


def _prefix(token: str) -> str:
    return token[:8] + "…"


def banner(
    settings: Settings, database: str, shown: TokenShown, token_path: Path, key_note: str = ""
) -> str:
    base = _public_url(settings)
    lines = [
        "",
        "jobserver is starting",
        f"  URL:       {base}   (ready when {base}/readyz answers 200)",
        f"  listening: {_listening(settings)}",
        f"  database:  {database}",
    ]
    header = '-H "Authorization: Bearer $TOKEN" '
    if not settings.auth_enabled:
        lines.append("  auth:      disabled (JOBSERVER_AUTH=disabled, loopback only)")
        header = ""
    elif shown.state == "new" and shown.token:
        lines.append(f"  dev token: {shown.token}")
        lines.append(
            f"             (new: shown in full this once; saved in {token_path}, mode 0600)"
        )
        header = f"-H 'Authorization: Bearer {shown.token}' "
    elif shown.state == "saved" and shown.token:
        lines.append(
            f"  dev token: {_prefix(shown.token)}   (in full: jobserver up --show-token, "
            f"or {token_path})"
        )
        header = f'-H "Authorization: Bearer $(cat {shlex.quote(str(token_path))})" '
    elif shown.state == "revoked":
        lines.append(
            "  dev token: revoked, not re-created (jobserver up --new-dev-token makes a new one); "
            "set TOKEN to a token of yours"
        )
    else:
        lines.append(
            "  auth:      enabled; no dev token on DATABASE_URL: make one with "
            "'jobserver tokens create --name NAME --scope manage_jobs' and set TOKEN"
        )
    if key_note:
        lines.append(f"  credentials key: {key_note} (set JOBSERVER_SECRET_KEY in production)")
    lines += [
        "  submit a job:",
        f"    curl -s -X POST {base}/v1/jobs {header}-H 'Content-Type: application/json' \\",
        """      -d '{"definitionKey": "echo", "params": {"message": "hello"}}'""",
        f"  dashboard: {base}/ui (sign in with the token)",
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
    p.add_argument("--host", help=f"API bind address (default: HOST, else {UP_DEFAULT_HOST})")
    p.add_argument(
        "--compat",
        help="compatibility routes the API serves (JOBSERVER_COMPAT's syntax; default: "
        "JOBSERVER_COMPAT, else all; `none` turns them off)",
    )
    p.add_argument(
        "--show-token",
        action="store_true",
        help="print the saved dev token (JOBSERVER_HOME/dev-token) and exit",
    )
    p.add_argument(
        "--new-dev-token",
        action="store_true",
        help="create a new dev token even though the last one was revoked",
    )
    return p.parse_args(argv)


def _compat(arg: str | None, settings: Settings) -> str:
    """The API's JOBSERVER_COMPAT: `--compat`, else the environment's, else every system (a
    newcomer can paste any reference document's examples)."""
    value = arg if arg is not None else (settings.compat or "all")
    try:
        dataclasses.replace(settings, compat=value).check()
    except ConfigError as e:
        fail(str(e))
    return value


def show_token(home: Path) -> None:
    """`--show-token`: the saved plaintext on stdout, exit 0; exit 1 when there is none."""
    token = _read_saved(home / "dev-token")
    if token is None:
        fail(f"no dev token saved in {home / 'dev-token'}", 1)
    print(token)
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = load_settings(need_database=False)
    home = Path(settings.home).resolve()
    if args.show_token:
        show_token(home)
    settings = dataclasses.replace(settings, host=_bind_host(args.host))
    compat = _compat(args.compat, settings)
    refuse_open_auth(settings, settings.host)
    embedded: EmbeddedPostgres | None = None
    if not settings.database_url:
        try:
            embedded = EmbeddedPostgres(home)
        except EmbeddedError as e:
            fail(str(e))
    lock = _lock_home(home)
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
        if embedded is None:
            url = settings.require_database_url()
            where = _redact(url)
        else:
            url = embedded.start()
            where = f"embedded PostgreSQL, data in {embedded.pgdata} (socket only, password)"
        migrate.upgrade(url)
        for ref, outcome in run(publish(url, load_modules().all())):
            if outcome == "conflict":
                log.warning("definition %s changed without a version bump; kept as stored", ref)
            else:
                log.info("definition %s: %s", ref, outcome)
        token_path = home / "dev-token"
        shown = TokenShown("none")
        if settings.auth_enabled and embedded is not None:
            shown = dev_token(url, token_path, replace_revoked=args.new_dev_token)
        key_note = ""
        child_env = {"DATABASE_URL": url, "HOST": settings.host, "JOBSERVER_COMPAT": compat}
        if embedded is not None and not settings.secret_key:
            key_path = home / "secret-key"
            child_env["JOBSERVER_SECRET_KEY"], new_key = dev_secret_key(key_path)
            key_note = f"{'new dev key' if new_key else 'dev key'} in {key_path}"
        print(banner(settings, where, shown, token_path, key_note), flush=True)

        wanted = [
            Child(name, module)
            for name, module in CHILDREN
            if name not in args.without and importlib.util.find_spec(module) is not None
        ]
        missing = [n for n, m in CHILDREN if importlib.util.find_spec(m) is None]
        if missing:
            log.warning("not installed, not started: %s", ", ".join(missing))
        env = {**os.environ, **child_env}
        supervisor = Supervisor(env, settings.shutdown_grace_seconds, wanted)
        supervisor.start()
        code = _watch(supervisor)
    except _Interrupted:
        log.info("interrupted while starting")
    except EmbeddedError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
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
