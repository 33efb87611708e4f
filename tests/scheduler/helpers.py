"""Shared helpers for the scheduler tests: a job-row factory, definitions, bounded waits."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import asyncpg

from jobserver.db.definitions import definition_upsert
from jobserver.registry import load_modules
from tests.waiting import wait_for  # noqa: F401 (re-exported for the tests here)

ROOT = Path(__file__).resolve().parents[2]


async def register_builtin(conn: asyncpg.Connection | asyncpg.Pool) -> None:
    """Publish definitions/ (echo@1, failing@1, ...) as `register-definitions` would."""
    for d in load_modules().all():
        await definition_upsert(conn, d.metadata())  # type: ignore[arg-type]


async def insert_job(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    status: str = "queued",
    definition_key: str = "echo",
    attempt: int = 0,
    max_attempts: int = 3,
    worker_id: str | None = None,
    lease_offset: float | None = None,
    finished_ago: float | None = None,
    created_ago: float = 0.0,
    started_ago: float | None = None,
    expires_offset: float | None = None,
    queue: str = "default",
    schedule_name: str | None = None,
) -> uuid.UUID:
    """One job row in any state, with derived defaults (a held row gets a worker and an
    attempt row, a finished one `finished_at`). Offsets are seconds relative to now()."""
    held = status in ("running", "cancelling")
    finished = status in ("succeeded", "failed", "cancelled", "expired")
    if held and attempt == 0:
        attempt = 1
    if held and worker_id is None:
        worker_id = "w-test"
    if held and lease_offset is None:
        lease_offset = 60.0
    if finished and finished_ago is None:
        finished_ago = 0.0
    if (held or finished) and started_ago is None:
        started_ago = created_ago
    job_id = uuid.uuid4()
    await conn.execute(
        """
        INSERT INTO jobs (id, definition_key, definition_version, queue, status, attempt,
            max_attempts, worker_id, lease_expires_at, created_at, run_at, started_at,
            finished_at, expires_at, schedule_name)
        VALUES ($1, $2, 1, $3, $4, $5, $6, $7,
            now() + make_interval(secs => $8),
            now() - make_interval(secs => $9), now() - make_interval(secs => $9),
            now() - make_interval(secs => $10),
            now() - make_interval(secs => $11),
            now() + make_interval(secs => $12), $13)
        """,
        job_id,
        definition_key,
        queue,
        status,
        attempt,
        max_attempts,
        worker_id,
        lease_offset,
        created_ago,
        started_ago,
        finished_ago,
        expires_offset,
        schedule_name,
    )
    for n in range(1, attempt + 1):
        await conn.execute(
            """
            INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, outcome)
            VALUES ($1, $2, $3, now(), $4)
            """,
            job_id,
            n,
            worker_id,
            "running" if held and n == attempt else "failed",
        )
    return job_id


async def events_of(conn: asyncpg.Connection | asyncpg.Pool, job_id: uuid.UUID) -> list[str]:
    """The job's history as clients read it (stored and derived events)."""
    from jobserver.db.events import job_events_list

    return [r["event"] for r in await job_events_list(conn, job_id)]


def spawn(module: str, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """Start `python -m module` with `env` on top of ours; the caller kills it in finally."""
    full = {**os.environ, "LOG_FORMAT": "text", **env}
    log = tempfile.TemporaryFile()  # noqa: SIM115 - a file, not a pipe: never blocks the child
    proc = subprocess.Popen([sys.executable, "-m", module, *args], env=full, stdout=log, stderr=log)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def output(proc: subprocess.Popen[bytes]) -> str:
    log = proc.log  # type: ignore[attr-defined]
    log.seek(0)
    return str(log.read().decode(errors="replace"))


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    proc.log.close()  # type: ignore[attr-defined]
