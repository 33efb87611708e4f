"""Worker test helpers: short timings, job factories, in-process workers and worker processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from jobserver.config import Settings
from jobserver.db.attempts import attempt_list
from jobserver.db.definitions import definition_upsert
from jobserver.db.events import job_events_list
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.registry import load_modules
from jobserver.worker.worker import Worker
from tests.waiting import wait_for  # noqa: F401 (re-exported for the tests here)
from tests.worker.defs import LEDGER_DDL

REGISTRY = load_modules(["tests.worker.defs"])
ROOT = Path(__file__).resolve().parents[2]

FAST = {
    "lease_duration_seconds": 2.0,
    "heartbeat_interval_seconds": 0.2,
    "poll_interval_ms": 100,
    "cancel_check_interval_ms": 100,
    "cancel_grace_ms": 300,
    "shutdown_grace_seconds": 1.0,
    "backoff_base_seconds": 0.2,
    "backoff_max_seconds": 5.0,
    "backoff_jitter_percent": 0.2,
}

FAST_ENV = {
    "LEASE_DURATION_SECONDS": "2",
    "HEARTBEAT_INTERVAL_SECONDS": "0.2",
    "POLL_INTERVAL_MS": "100",
    "CANCEL_CHECK_INTERVAL_MS": "100",
    "CANCEL_GRACE_MS": "300",
    "LOG_LEVEL": "WARNING",
    "LOG_FORMAT": "text",
}


@pytest.fixture
async def db(pool: asyncpg.Pool) -> asyncpg.Pool:
    """The test pool with the test definitions registered and a ledger table."""
    async with pool.acquire() as conn:
        for d in REGISTRY.all():
            await definition_upsert(conn, d.metadata())
        await conn.execute(LEDGER_DDL)
    return pool


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    return replace(settings, **FAST)


async def submit(
    pool: asyncpg.Pool, key: str, params_list: list[Any], **kw: Any
) -> list[uuid.UUID]:
    d = REGISTRY.latest(key)
    assert d is not None, key
    max_attempts = kw.pop("max_attempts", d.default_max_attempts)
    jobs = [
        NewJob(
            definition_key=key,
            definition_version=d.version,
            max_attempts=max_attempts,
            params=p,
            **kw,
        )
        for p in params_list
    ]
    async with pool.acquire() as conn, conn.transaction():
        return await job_insert_many(conn, jobs)


async def job(pool: asyncpg.Pool, job_id: uuid.UUID) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
    assert row is not None
    return row


async def events(pool: asyncpg.Pool, job_id: uuid.UUID) -> list[str]:
    """The job's history as clients read it (stored and derived events)."""
    return [r["event"] for r in await job_events_list(pool, job_id)]


async def attempts(pool: asyncpg.Pool, job_id: uuid.UUID) -> list[asyncpg.Record]:
    """The job's runs as clients read them (stored rows and the derived current run)."""
    return await attempt_list(pool, job_id)


async def status_is(pool: asyncpg.Pool, job_id: uuid.UUID, *statuses: str) -> bool:
    return (await job(pool, job_id))["status"] in statuses


@pytest.fixture
async def start_worker(fast_settings: Settings) -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    """Start in-process workers (stopped at teardown): `await start_worker(concurrency=..)`."""
    started: list[Worker] = []

    async def start(settings: Settings | None = None, **kw: Any) -> Worker:
        w = Worker(settings or fast_settings, kw.pop("registry", REGISTRY), **kw)
        started.append(w)
        await w.start()
        return w

    yield start
    for w in started:
        await w.stop(grace=0)


class Proc:
    """A `jobserver-worker` subprocess."""

    def __init__(self, p: subprocess.Popen[bytes], worker_id: str) -> None:
        self.p = p
        self.worker_id = worker_id

    def signal(self, sig: int) -> None:
        self.p.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.p.wait(timeout)


@pytest.fixture
def spawn(database_url: str) -> Iterator[Callable[..., Proc]]:
    """Start worker processes with fast timings; all are killed at teardown."""
    procs: list[Proc] = []

    def start(*args: str, env: dict[str, str] | None = None, worker_id: str | None = None) -> Proc:
        wid = worker_id or f"proc-{len(procs)}-{uuid.uuid4().hex[:6]}"
        full_env = {
            **os.environ,
            **FAST_ENV,
            "DATABASE_URL": database_url,
            "WORKER_ID": wid,
            **(env or {}),
        }
        p = subprocess.Popen(
            [sys.executable, "-m", "jobserver.cli.worker", "--module", "tests.worker.defs", *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        proc = Proc(p, wid)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.p.send_signal(signal.SIGKILL)
            proc.p.wait(10)
        if proc.p.stderr is not None:
            proc.p.stderr.close()


# The loopback webhook receiver of the http.request tests, and the keyring and OpenSSH server
# of the ssh.command tests (imported last: they use the helpers above).
from tests.worker.credentials import keyring  # noqa: E402, F401
from tests.worker.http_receiver import allow_loopback, receiver  # noqa: E402, F401
from tests.worker.sshd import sshd_fixture  # noqa: E402, F401
