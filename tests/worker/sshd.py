"""A real OpenSSH server on loopback for the ssh.command tests, started once per session.

`sshd` is started on a free 127.0.0.1 port from a config of its own in a temp dir: a
generated Ed25519 host key, `StrictModes no` (the keys live in /tmp), one `authorized_keys`
file for every user (holding the client key's public half), password authentication without
PAM, and `/run/sshd` (its privilege separation directory) created when missing. It needs root
(it logs in other users) and the OpenSSH server (`scripts/test` installs it as root); without
them the tests that need it are skipped, saying why.

Password logins use a dedicated OS user with a random password, created for the session and
deleted after it (`Sshd.user`, `Sshd.password`); key logins are root's.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
PASSPHRASE = "correct horse battery staple"


@dataclass(frozen=True)
class Sshd:
    port: int
    dir: Path
    host_key: str  # the server's public host key line
    host_fingerprint: str
    client_key: str  # an unencrypted OpenSSH private key root and the user may log in with
    encrypted_key: str  # the same key encrypted with PASSPHRASE
    user: str | None  # a user that logs in with `password` (None: no useradd here)
    password: str | None
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def sshd_binary() -> str | None:
    for candidate in SSHD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("sshd")
    return str(Path(found).resolve()) if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
        s.settimeout(1)
        return s.recv(64).startswith(b"SSH-")
    return False


def _config(d: Path, port: int) -> str:
    return f"""
Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_ed25519
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
StrictModes no
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
PermitUserEnvironment no
MaxStartups 100
MaxSessions 100
LogLevel VERBOSE
PerSourcePenalties no
"""


def _create_user(home: Path) -> tuple[str, str] | None:
    """A throwaway OS user with a random password, or None where users cannot be made."""
    if shutil.which("useradd") is None or shutil.which("chpasswd") is None:
        return None
    user = f"jsssh{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(18)
    added = subprocess.run(
        ["useradd", "-M", "-d", str(home), "-s", "/bin/sh", user], capture_output=True, timeout=30
    )
    if added.returncode != 0:
        return None
    subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True, timeout=30)
    home.mkdir(mode=0o755, exist_ok=True)
    shutil.chown(home, user)
    return user, password


@pytest.fixture(scope="session", name="sshd")
def sshd_fixture() -> Iterator[Sshd]:
    """The server (named `sshd` for tests; importable without shadowing that name)."""
    binary = sshd_binary()
    if os.geteuid() != 0:
        pytest.skip("the SSH tests run sshd for several users: they need root")
    if binary is None:
        pytest.skip("no OpenSSH server (sshd): scripts/test installs openssh-server as root")
    d = Path(tempfile.mkdtemp(prefix="jobserver-sshd-"))
    d.chmod(0o755)
    host = asyncssh.generate_private_key("ssh-ed25519")
    (d / "host_ed25519").write_bytes(host.export_private_key())
    (d / "host_ed25519").chmod(0o600)
    client = asyncssh.generate_private_key("ssh-ed25519", comment="jobserver-test")
    (d / "authorized_keys").write_bytes(client.export_public_key())
    (d / "authorized_keys").chmod(0o644)
    port = free_port()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    config = _config(d, port)
    (d / "sshd_config").write_text(config)
    checked = subprocess.run(
        [binary, "-t", "-f", str(d / "sshd_config")], capture_output=True, text=True, timeout=30
    )
    if checked.returncode != 0 and "PerSourcePenalties" in checked.stderr:
        # before OpenSSH 9.8 there are no penalties (which would refuse the tests' logins
        # after a few failed ones), nor the option that turns them off
        (d / "sshd_config").write_text(config.replace("PerSourcePenalties no\n", ""))
    made = _create_user(d / "home")
    log = d / "sshd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "-D", "-e", "-f", str(d / "sshd_config")],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 15
        while not _answers(port):
            if proc.poll() is not None:
                pytest.fail(f"sshd exited with {proc.returncode}: {log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"sshd did not answer within 15 s: {log.read_text()[-3000:]}")
            time.sleep(0.05)
        public = host.convert_to_public()
        yield Sshd(
            port=port,
            dir=d,
            host_key=" ".join(public.export_public_key().decode().split()[:2]),
            host_fingerprint=public.get_fingerprint("sha256"),
            client_key=client.export_private_key().decode(),
            encrypted_key=client.export_private_key(
                "openssh",
                PASSPHRASE,
                rounds=4,
                ignore_few_rounds=True,  # a fast KDF for tests
            ).decode(),
            user=made[0] if made else None,
            password=made[1] if made else None,
            log=log,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if made is not None:
            subprocess.run(["userdel", made[0]], check=False, timeout=30)
        shutil.rmtree(d, ignore_errors=True)


def other_host_key() -> str:
    """A host key line no server here has (a pin that must be refused)."""
    key = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    return " ".join(key.export_public_key().decode().split()[:2])


def remote_processes(marker: str) -> list[str]:
    """The command lines of the processes (on this machine, where sshd runs) that hold
    `marker`, the test process' own `pgrep` aside."""
    done = subprocess.run(
        ["pgrep", "-af", marker], capture_output=True, text=True, timeout=10, check=False
    )
    return [line for line in done.stdout.splitlines() if "pgrep" not in line]
