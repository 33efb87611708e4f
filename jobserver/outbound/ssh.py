"""One SSH command under the outbound policy, on asyncssh: what `ssh.command` calls.

`run_command(target, auth, command, seconds=..., output_cap=..., stop=...)`:
- **Policy.** The target's host is resolved once and checked (`resolve_and_check`); the
  connection goes to a checked address (the next one when it refuses), never to the name
  again. Host keys are still matched for the host as configured (`host_key_alias`).
- **Host keys.** Only the target's pinned host keys (full keys, or SHA256 fingerprints) and
  the keys an OpenSSH known_hosts file (SSH_KNOWN_HOSTS) lists for the host are trusted;
  anything else is refused with `HostKeyMismatch` naming the fingerprint the server offered.
  No trust on first use, no `~/.ssh/known_hosts`, no `~/.ssh/config`, no agent, no default
  client keys, no GSS. With fingerprint-only pins the client offers asyncssh's default host
  key algorithms (the server then shows its preferred key, normally Ed25519): pin a full key
  line to pin another type.
- **Auth.** The credential's private key and/or password; a refusal is `AuthFailed`
  (permanent). A connection refused, reset or timed out is `ConnectFailed` (retried).
- **Output.** stdout and stderr are read as they come; each keeps its first `output_cap`
  bytes, and the rest is drained and counted (a chatty command never stalls on a full window
  nor fills memory). The last 4 KiB of stderr are kept apart for the error message.
- **Ending early.** Past `seconds` seconds (connecting included), or when `stop` is set (a
  cancel, a lost lease, a shutdown hand-back), the remote command's process group is signalled
  over the channel — TERM, then KILL after `KILL_AFTER` seconds — and the channel closed.
  OpenSSH runs each session in a process group of its own and `killpg`s it on request (7.9 or
  later; before 10.0 not for root logins, whose sessions lack privilege separation); where the
  server ignores the request, closing the channel ends the command's stdin, which the caller's
  command line can watch (`ssh.command` does). A cancelled task sends KILL and closes at once.
  The result says `timed_out` / `stopped`. The channel's stdin is left open, and empty, until
  then.

asyncssh is imported with this module: import it where an SSH job runs, not at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import asyncssh

from jobserver.credentials.models import HostKey
from jobserver.credentials.sshkeys import KeyProblem, client_key, fingerprint
from jobserver.outbound.policy import IPAddress, resolve_and_check
from jobserver.registry import PermanentError

CONNECT_TIMEOUT = 30.0  # seconds for TCP, handshake and auth (within the job's timeout)
KILL_AFTER = 1.0  # seconds between TERM and KILL
CLOSE_WAIT = 2.0  # seconds to wait for the channel and connection to close
CHUNK = 64 * 1024
TAIL_BYTES = 4096


class HostKeyMismatch(PermanentError):
    """The server's host key is neither pinned nor in SSH_KNOWN_HOSTS."""

    code = "host_key_mismatch"


class AuthFailed(PermanentError):
    """The server refused every way the credential offered to log in."""

    code = "ssh_auth_failed"


class KnownHostsUnreadable(PermanentError):
    code = "ssh_known_hosts"


class ConnectFailed(RuntimeError):
    """No checked address took the connection (refused, reset, timed out): retried."""


@dataclass(frozen=True)
class SshSettings:
    """The SSH settings of this process: SSH_KNOWN_HOSTS and SSH_OUTPUT_CAP."""

    known_hosts: str | None = None
    output_cap: int = 1024 * 1024


_configured: SshSettings | None = None


def configure(settings: SshSettings | None) -> None:
    """Use `settings` in this process (None: read the environment again on next use)."""
    global _configured
    _configured = settings
    _from_env.cache_clear()


@lru_cache(maxsize=1)
def _from_env() -> SshSettings:
    from jobserver.config import Settings

    s = Settings.from_env()
    return SshSettings(known_hosts=s.ssh_known_hosts or None, output_cap=s.ssh_output_cap)


def current_settings() -> SshSettings:
    return _configured if _configured is not None else _from_env()


@dataclass(frozen=True)
class SshTarget:
    """Where to log in, as whom, and which host keys to trust there."""

    host: str
    port: int
    username: str
    host_keys: tuple[HostKey, ...] = ()
    known_hosts: str | None = None  # a known_hosts file path

    @property
    def shown(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"


@dataclass(frozen=True)
class SshAuth:
    """The secrets to log in with; its repr shows none."""

    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def methods(self) -> list[str]:
        out = ["publickey"] if self.private_key else []
        if self.password:
            out += ["keyboard-interactive", "password"]
        return out


@dataclass
class Captured:
    """One output stream: the first `cap` bytes, the total count and the last bytes seen."""

    cap: int
    data: bytearray = field(default_factory=bytearray)
    total: int = 0
    tail: bytes = b""

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.tail = (self.tail + chunk)[-TAIL_BYTES:]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)

    @staticmethod
    def decode(raw: bytes) -> str:
        return raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")

    def text(self) -> str:
        return self.decode(bytes(self.data))


@dataclass
class CommandResult:
    """How the command ended; `exit_code` is None when it ended by a signal or never did."""

    address: str
    host_key: str  # the fingerprint of the key the server showed
    stdout: Captured
    stderr: Captured
    started: float  # time.monotonic() when connecting began
    duration_ms: float = 0.0
    exit_code: int | None = None
    exit_signal: str | None = None
    timed_out: bool = False
    stopped: bool = False


class _HostKeyCheck(asyncssh.SSHClient):
    """Trusts the pinned fingerprints (asyncssh checks full keys itself) and remembers the key
    the server offered, for the error that refuses it."""

    def __init__(self, fingerprints: frozenset[str]) -> None:
        super().__init__()
        self.fingerprints = fingerprints
        self.offered: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.offered = key
        return fingerprint(key) in self.fingerprints


def _pinned(target: SshTarget) -> list[asyncssh.SSHKey]:
    return [asyncssh.import_public_key(k.key) for k in target.host_keys if k.key]


async def _known_hosts(path: str | None) -> asyncssh.SSHKnownHosts | None:
    if path is None:
        return None
    try:
        return await asyncio.to_thread(asyncssh.read_known_hosts, path)
    except (OSError, ValueError) as e:
        raise KnownHostsUnreadable(f"SSH_KNOWN_HOSTS {path!r} cannot be read: {e}") from None


def _trusted(keys: list[asyncssh.SSHKey], known: asyncssh.SSHKnownHosts | None) -> Any:
    """asyncssh's known_hosts callable: the pinned keys plus the file's keys for the host."""

    def match(host: str, addr: str, port: int | None) -> tuple[list[Any], list[Any], list[Any]]:
        if known is None:
            return list(keys), [], []
        found = known.match(host, addr, port)
        return [*keys, *found[0]], list(found[1]), list(found[2])

    return match


def _refused(target: SshTarget, check: _HostKeyCheck) -> HostKeyMismatch:
    offered = check.offered
    seen = (
        f"the {offered.get_algorithm()} key {fingerprint(offered)}"
        if offered is not None
        else "a host key"
    )
    pinned = ", ".join(k.fingerprint for k in target.host_keys) or "none"
    where = " nor in SSH_KNOWN_HOSTS" if target.known_hosts else ""
    return HostKeyMismatch(
        f"{target.host}:{target.port} offered {seen}, which is not pinned (pinned: {pinned})"
        f"{where}: refused, an unknown or changed host key is never trusted"
    )


def _describe(e: BaseException | None) -> str:
    if e is None:
        return "no address"
    if isinstance(e, TimeoutError):
        return "timed out"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


async def _connect(
    target: SshTarget, auth: SshAuth, addresses: list[IPAddress], deadline: float
) -> tuple[asyncssh.SSHClientConnection, str, str]:
    """(connection, address, host key fingerprint) of the first checked address that takes it."""
    key = None
    if auth.private_key:  # decrypting an encrypted key runs bcrypt: off the loop
        try:
            key = await asyncio.to_thread(client_key, auth.private_key, auth.passphrase)
        except KeyProblem as e:
            raise PermanentError(f"{e.field}: {e.message}", "credential_unreadable") from None
    pinned = _pinned(target)
    known = await _known_hosts(target.known_hosts)
    fingerprints = frozenset(k.fingerprint for k in target.host_keys if k.key is None)
    last: BaseException | None = None
    for addr in addresses:
        check = _HostKeyCheck(fingerprints)
        left = deadline - time.monotonic()
        if left <= 0:
            last = TimeoutError()
            break
        try:
            conn = await asyncssh.connect(
                str(addr),
                target.port,
                config=None,
                client_factory=lambda check=check: check,
                username=target.username,
                known_hosts=_trusted(pinned, known),
                host_key_alias=target.host.strip("[]"),
                server_host_key_algs="default" if fingerprints else (),
                x509_trusted_certs=None,
                client_keys=[key] if key is not None else None,
                password=auth.password,
                preferred_auth=auth.methods,
                agent_path=None,
                gss_host=None,
                connect_timeout=min(CONNECT_TIMEOUT, left),
            )
        except asyncssh.HostKeyNotVerifiable:
            raise _refused(target, check) from None
        except asyncssh.PermissionDenied:
            raise AuthFailed(
                f"{target.shown} refused the login ({', '.join(auth.methods)})"
            ) from None
        except asyncssh.KeyExchangeFailed as e:
            if "host key" not in str(e).lower():
                last = e
                continue
            raise HostKeyMismatch(  # it has none of the pinned key types: no retry helps
                f"{target.host}:{target.port} has no host key of a pinned type: {e}"
            ) from None
        except (OSError, TimeoutError, asyncssh.Error) as e:
            last = e
            continue
        host_key = conn.get_server_host_key()
        shown_key = fingerprint(host_key) if host_key is not None else "unknown"
        return conn, str(addr), shown_key
    raise ConnectFailed(f"cannot connect to {target.host}:{target.port}: {_describe(last)}")


async def _drain(reader: asyncssh.SSHReader[bytes], into: Captured) -> None:
    while True:
        chunk = await reader.read(CHUNK)
        if not chunk:
            return
        into.add(chunk)


def _signal(process: asyncssh.SSHClientProcess[bytes], name: str) -> None:
    with contextlib.suppress(OSError, ValueError, asyncssh.Error):
        process.send_signal(name)


async def _end(process: asyncssh.SSHClientProcess[bytes], work: asyncio.Future[None]) -> None:
    """TERM the remote process group, KILL it if it is still there after KILL_AFTER, close."""
    _signal(process, "TERM")
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.shield(work), KILL_AFTER)
    if not work.done():
        _signal(process, "KILL")
    process.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(process.wait_closed(), CLOSE_WAIT)


async def _execute(
    conn: asyncssh.SSHClientConnection,
    command: str,
    result: CommandResult,
    deadline: float,
    stop: asyncio.Event | None,
) -> None:
    if stop is not None and stop.is_set():
        result.stopped = True  # stopped while connecting: the command never starts
        return
    # stdin stays open (and empty) until the channel closes: see `ssh.command`'s watchdog
    process: asyncssh.SSHClientProcess[bytes] = await conn.create_process(command, encoding=None)

    async def collect() -> None:
        await asyncio.gather(
            _drain(process.stdout, result.stdout), _drain(process.stderr, result.stderr)
        )
        await process.wait_closed()

    work: asyncio.Future[None] = asyncio.ensure_future(collect())
    stopping = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        waiting: set[asyncio.Future[Any]] = {work} if stopping is None else {work, stopping}
        left = max(0.0, deadline - time.monotonic())
        await asyncio.wait(waiting, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            result.stopped = stopping is not None and stopping.done()
            result.timed_out = not result.stopped
            await _end(process, work)
    except asyncio.CancelledError:
        _signal(process, "KILL")  # the task is going: no time for TERM first
        process.close()
        raise
    finally:
        if stopping is not None:
            stopping.cancel()
        if not work.done():
            work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
    result.exit_code = process.exit_status if process.exit_signal is None else None
    if process.exit_signal is not None:
        result.exit_signal = process.exit_signal[0]
    if result.exit_code is not None and result.exit_code < 0:
        result.exit_code = None  # asyncssh's -1: no exit status came


async def run_command(
    target: SshTarget,
    auth: SshAuth,
    command: str,
    *,
    seconds: float,
    output_cap: int,
    stop: asyncio.Event | None = None,
) -> CommandResult:
    """Run `command` on `target` (see the module docstring)."""
    started = time.monotonic()
    deadline = started + seconds
    try:
        addresses = await resolve_and_check(target.host, target.port)
    except OSError as e:  # the name does not resolve (now): retried
        raise ConnectFailed(f"cannot resolve {target.host}: {_describe(e)}") from None
    conn, address, host_key = await _connect(target, auth, addresses, deadline)
    result = CommandResult(
        address=address,
        host_key=host_key,
        stdout=Captured(output_cap),
        stderr=Captured(output_cap),
        started=started,
    )
    try:
        await _execute(conn, command, result, deadline, stop)
    finally:
        conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.wait_closed(), CLOSE_WAIT)
        result.duration_ms = round((time.monotonic() - started) * 1000, 3)
    return result
