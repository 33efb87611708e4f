"""Acceptance: `jobserver up` as a user runs it — a real subprocess, HTTP from outside, SIGTERM.

Two variants: on DATABASE_URL (a fresh, unmigrated database: `up` migrates it; no dev token is
made there), and on the embedded PostgreSQL in a temporary working directory, restarted to show
that jobs and the dev token survive a restart, that the token is printed in full only when
created, and that a revoked dev token is not silently replaced. Each checks that SIGTERM ends
`up` with exit 0 within a bounded time and that no process it started (children, embedded
PostgreSQL) is left running. `up` binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil
import pytest

from jobserver.auth import create_token
from jobserver.testing.cluster import free_port

pytestmark = pytest.mark.slow

STOP_TIMEOUT = 30.0
HAS_WORKER = importlib.util.find_spec("jobserver.cli.worker") is not None


@dataclass
class Up:
    """One running `jobserver up` and everything it started."""

    cwd: Path
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        return self.cwd / ".jobserver"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def remember_descendants(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            for p in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen[p.pid] = p

    def remember_postmaster(self) -> int | None:
        pidfile = self.home / "pgdata" / "postmaster.pid"
        if not pidfile.exists():
            return None
        pid = int(pidfile.read_text().splitlines()[0])
        with contextlib.suppress(psutil.NoSuchProcess):
            self.seen[pid] = psutil.Process(pid)
        return pid

    def survivors(self) -> list[psutil.Process]:
        return [p for p in self.seen.values() if _alive(p)]

    def kill_everything(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for p in self.survivors():
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _env(**extra: str) -> dict[str, str]:
    """The test's environment for `up`; HOST is left unset: `up` must choose loopback itself."""
    dropped = ("DATABASE_URL", "HOST", "JOBSERVER_SECRET_KEY")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        LOG_FORMAT="text",
        SHUTDOWN_GRACE_SECONDS="2",
        LEASE_DURATION_SECONDS="5",
        HEARTBEAT_INTERVAL_SECONDS="1",
        POLL_INTERVAL_MS="200",
        RESCUE_INTERVAL_SECONDS="1",
        JOBSERVER_AUTH="enabled",
    )
    env.pop("JOBSERVER_HOME", None)
    env.update(extra)
    return env


def _start(cwd: Path, port: int, env: dict[str, str], name: str = "up", *args: str) -> Up:
    log_path = cwd / f"{name}.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobserver.cli.main", "up", *args],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Up(cwd, port, proc, log_path)


async def _wait_ready(up: Up, limit: float = 90.0) -> None:
    deadline = time.monotonic() + limit
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if up.proc.poll() is not None:
                pytest.fail(f"jobserver up exited with {up.proc.returncode}:\n{up.log()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(up.base + "/readyz") as r:
                    if r.status == 200:
                        up.remember_descendants()
                        return
            await asyncio.sleep(0.2)
    pytest.fail(f"/readyz did not answer 200 within {limit}s:\n{up.log()}")


async def _stop(up: Up) -> None:
    up.remember_descendants()
    assert up.seen, "up started no child process"
    up.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(up.proc.wait, STOP_TIMEOUT)
    assert code == 0, up.log()
    deadline = time.monotonic() + 10
    while up.survivors() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert up.survivors() == [], up.log()


async def _submit_and_read(up: Up, token: str) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        body = {"definitionKey": "echo", "params": {"message": "hello from test_up"}}
        async with http.post(up.base + "/v1/jobs", json=body) as r:
            assert r.status == 201, await r.text()
            job_id = (await r.json())["jobId"]
        async with http.get(f"{up.base}/v1/jobs/{job_id}") as r:
            assert r.status == 200, await r.text()
            job = await r.json()
        assert _job_id(job) == job_id
        assert job["definitionKey"] == "echo"
        assert job["params"] == {"message": "hello from test_up"}
        async with aiohttp.request("GET", f"{up.base}/v1/jobs/{job_id}") as r:
            assert r.status == 401
        if HAS_WORKER:
            await _wait_status(http, f"{up.base}/v1/jobs/{job_id}", "succeeded")
    return str(job_id)


async def _wait_status(http: aiohttp.ClientSession, url: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        async with http.get(url) as r:
            job = await r.json()
        if job.get("status") == status:
            return job
        await asyncio.sleep(0.1)
    pytest.fail(f"job did not reach {status}: {job}")


def _job_id(job: dict[str, Any]) -> str:
    return str(job.get("jobId") or job.get("id"))


def _listeners(port: int) -> set[str]:
    """The addresses something listens on at `port`."""
    return {
        c.laddr.ip
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


@pytest.fixture
def workdir(traversable_dir: Path) -> Path:
    """A directory every OS user can traverse (see tests/conftest.py)."""
    return traversable_dir


@pytest.fixture
def ups() -> Iterator[list[Up]]:
    started: list[Up] = []
    yield started
    for up in started:
        up.kill_everything()


async def test_up_on_database_url(empty_database_url: str, tmp_path: Path, ups: list[Up]) -> None:
    port = free_port()
    up = _start(tmp_path, port, _env(DATABASE_URL=empty_database_url, PORT=str(port)))
    ups.append(up)
    await _wait_ready(up)
    assert up.base in up.log()
    assert "no dev token on DATABASE_URL" in up.log()
    assert not (up.home / "dev-token").exists()  # not the embedded database: no token made
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM api_tokens") == 0
        token = await create_token(conn, "mine", ["manage_jobs"], "me")
    finally:
        await conn.close()
    await _submit_and_read(up, token)
    await _stop(up)
    assert not (up.home / "pgdata").exists()  # DATABASE_URL set: nothing embedded


async def test_up_embedded_keeps_data_across_restart(workdir: Path, ups: list[Up]) -> None:
    port = free_port()
    env = _env(PORT=str(port))
    first = _start(workdir, port, env, "first")
    ups.append(first)
    await _wait_ready(first)
    assert first.remember_postmaster() is not None
    assert _listeners(port) == {"127.0.0.1"}  # the default bind of `up` is loopback
    assert f"listening: 127.0.0.1:{port} (loopback" in first.log()
    token_file = first.home / "dev-token"
    token = token_file.read_text().strip()
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert f"dev token: {token}" in first.log()  # new: shown in full, once
    key_file = first.home / "secret-key"  # no JOBSERVER_SECRET_KEY: a dev key, kept 0600
    key = key_file.read_text().strip()
    assert key_file.stat().st_mode & 0o777 == 0o600 and key not in first.log()
    assert f"credentials key: new dev key in {key_file}" in first.log()
    await _store_credential(first, token)  # 201, not 503 secret_key_missing
    job_id = await _submit_and_read(first, token)
    assert await _compat_status(first, token) == 200  # up serves every compatibility system
    await _stop(first)

    second = _start(workdir, port, env, "second")
    ups.append(second)
    await _wait_ready(second)
    second.remember_postmaster()
    assert token_file.read_text().strip() == token
    assert token not in second.log() and f"dev token: {token[:8]}…" in second.log()
    assert key_file.read_text().strip() == key and f"dev key in {key_file}" in second.log()
    shown = await _cli(workdir, env, "up", "--show-token")
    assert (shown.returncode, shown.stdout.strip()) == (0, token)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.request("GET", f"{second.base}/v1/jobs/{job_id}", headers=headers) as r:
        assert r.status == 200, await r.text()
        assert _job_id(await r.json()) == job_id
    revoke = await _cli(
        workdir, {**env, "DATABASE_URL": _embedded_url(second.home)}, "tokens", "revoke", "dev"
    )
    assert revoke.returncode == 0, revoke.stderr
    await _stop(second)

    third = _start(workdir, port, env, "third")  # revoked: says so, makes no new token
    ups.append(third)
    await _wait_ready(third)
    third.remember_postmaster()
    assert "dev token: revoked, not re-created" in third.log()
    assert token_file.read_text().strip() == token
    async with aiohttp.request("GET", f"{third.base}/v1/jobs/{job_id}", headers=headers) as r:
        assert r.status == 401
    await _stop(third)

    fourth = _start(  # asked for: a new token; and no compatibility routes
        workdir, port, env, "fourth", "--new-dev-token", "--compat", "none"
    )
    ups.append(fourth)
    await _wait_ready(fourth)
    fourth.remember_postmaster()
    new = token_file.read_text().strip()
    assert new != token and f"dev token: {new}" in fourth.log()
    await _submit_and_read(fourth, new)
    assert await _compat_status(fourth, new) == 404
    await _stop(fourth)


async def _compat_status(up: Up, token: str) -> int:
    """The status of the webhook-jobs document's `GET /jobs` (a compatibility route)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.request("GET", f"{up.base}/jobs?status=finished", headers=headers) as r:
        return r.status


async def _store_credential(up: Up, token: str) -> None:
    body = {"name": "mail", "kind": "smtp", "username": "u", "password": "p" * 12}
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.request(
        "POST", f"{up.base}/v1/credentials", json=body, headers=headers
    ) as r:
        assert r.status == 201, await r.text()


async def _cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`jobserver ARGS` in a thread (the event loop keeps running)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "jobserver.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _embedded_url(home: Path) -> str:
    password = (home / "db-password").read_text().strip()
    return f"postgresql://postgres:{password}@/jobserver?host={home / 'run'}"


def test_second_up_in_same_home_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with open(home / "up.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = subprocess.run(
            [sys.executable, "-m", "jobserver.cli.main", "up"],
            cwd=tmp_path,
            env=_env(JOBSERVER_HOME=str(home), PORT=str(free_port())),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert "another 'jobserver up' is running" in proc.stderr
