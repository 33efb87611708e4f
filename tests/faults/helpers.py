"""Fault-suite helpers: real processes, bounded waits, HTTP load clients and the database audit.

The audit is how every scenario ends: it reads the database, never a log. For the accepted job
ids it counts rows present, terminal and stuck, and compares the ledger the jobs wrote themselves
(`fault_ledger`, one row per run) with `job_attempts`/`job_events`, so every extra run of a job
is either explained by a lease that expired, a hand-back or a retried failure, or reported as an
unexplained duplicate.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import asyncpg

from jobserver.testing.cluster import free_port
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
SOAK = os.environ.get("FAULTS_SOAK", "") not in ("", "0", "false")
TERMINAL = ("succeeded", "failed", "cancelled", "expired")

# Short timings for every process the scenarios start (seconds unless named otherwise).
LEASE = 2.0
RESCUE = 0.5
TIMINGS = {
    "LEASE_DURATION_SECONDS": str(LEASE),
    "HEARTBEAT_INTERVAL_SECONDS": "0.2",
    "RESCUE_INTERVAL_SECONDS": str(RESCUE),
    "LEADER_LEASE_SECONDS": "2",
    "SCHEDULER_TICK_SECONDS": "0.2",
    "POLL_INTERVAL_MS": "200",
    "CANCEL_CHECK_INTERVAL_MS": "200",
    "CANCEL_GRACE_MS": "300",
    "SHUTDOWN_GRACE_SECONDS": "1",
    "BACKOFF_BASE_SECONDS": "0.1",
    "BACKOFF_MAX_SECONDS": "1",
    "DB_POOL_CONNECTION_TIMEOUT_MS": "1000",
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "INFO",
}


def scaled(normal: int, soak: int) -> int:
    """A figure for the CI run, or the larger one under FAULTS_SOAK=1 (`scripts/faults --soak`)."""
    return soak if SOAK else normal


# ------------------------------------------------------------------------------ processes


class Proc:
    """One child process with its output in a temp file (never a pipe that could fill up)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in kill()
        self.started = time.time()
        self.p = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self.log, stderr=self.log)

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.p.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.p.wait(timeout)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.output().splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict):
                    out.append(rec)
        return out

    def kill(self) -> None:
        if self.alive():
            self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.p.wait(10)


class Procs:
    """Starts jobserver processes for one test; `close()` kills whatever is still alive."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.all: list[Proc] = []

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, **TIMINGS, "DATABASE_URL": self.database_url, **(extra or {})}

    def start(
        self,
        module: str,
        *args: str,
        name: str | None = None,
        env: dict[str, str] | None = None,
        netns: str | None = None,
    ) -> Proc:
        argv = [sys.executable, "-m", module, *args]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]  # `ip` execs: the pid is python's
        proc = Proc(name or f"{module.rsplit('.', 1)[-1]}-{len(self.all)}", argv, self.env(env))
        self.all.append(proc)
        return proc

    def worker(self, name: str, *args: str, env: dict[str, str] | None = None, **kw: Any) -> Proc:
        return self.start(
            "jobserver.cli.worker",
            "--module",
            "tests.faults.defs",
            *args,
            name=name,
            env={"WORKER_ID": name, **(env or {})},
            **kw,
        )

    def scheduler(self, name: str, env: dict[str, str] | None = None) -> Proc:
        return self.start(
            "jobserver.cli.scheduler", name=name, env={"SCHEDULER_ID": name, **(env or {})}
        )

    async def api(self, env: dict[str, str] | None = None) -> tuple[Proc, str]:
        """An API process on a free port; returns it with its base URL once /healthz answers.
        Its streams (GET /v1/stream) end right after their hello: a sweep over every route
        reads each answer to its end. It serves every compatibility system
        (JOBSERVER_COMPAT=all), so the sweeps cover their routes too."""
        port = free_port()
        env = {"STREAM_MAX_SECONDS": "0", "JOBSERVER_COMPAT": "all", **(env or {})}
        proc = self.start(
            "jobserver.cli.api", "--host", "127.0.0.1", "--port", str(port), name="api", env=env
        )
        base = f"http://127.0.0.1:{port}"

        async def up() -> bool:
            assert proc.alive(), proc.output()[-3000:]
            try:
                async with (
                    aiohttp.ClientSession() as s,
                    s.get(f"{base}/healthz", timeout=aiohttp.ClientTimeout(total=1)) as r,
                ):
                    return r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        await wait_for(up, within=20, step=0.1)
        return proc, base

    def close(self) -> None:
        """Kill what is left; with FAULTS_LOG_DIR set, keep every process' output there."""
        keep = os.environ.get("FAULTS_LOG_DIR")
        for p in self.all:
            p.kill()
            if keep:
                os.makedirs(keep, exist_ok=True)
                Path(keep, f"{p.name}.log").write_text(p.output())
            p.log.close()


async def active_workers(pool: asyncpg.Pool, names: Iterable[str]) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM workers WHERE id = ANY($1) AND status = 'active'", list(names)
        )
    )


# ------------------------------------------------------------------------------ HTTP


@dataclass
class HttpStats:
    """What the load clients saw: statuses, 5xx bodies and the ids the API acknowledged."""

    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # connection errors, by type
    server_errors: list[str] = field(default_factory=list)
    accepted: set[uuid.UUID] = field(default_factory=set)
    slowest: float = 0.0

    @property
    def count_5xx(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def record(self, status: int, body: Any, took: float) -> None:
        self.statuses[status] += 1
        self.slowest = max(self.slowest, took)
        if status >= 500 and len(self.server_errors) < 20:
            self.server_errors.append(f"{status} {body!r}"[:300])
        if status in (200, 201) and isinstance(body, dict):
            if "jobIds" in body:
                self.accepted.update(uuid.UUID(i) for i in body["jobIds"])
            elif "id" in body:
                self.accepted.add(uuid.UUID(body["id"]))


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    token: str,
    stats: HttpStats,
    timeout: float = 10.0,  # noqa: ASYNC109 - a per-request client timeout
) -> tuple[int, Any]:
    """One POST; records the outcome in `stats` (status -1 for a connection-level error)."""
    t0 = time.monotonic()
    try:
        async with session.post(
            url,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as r:
            raw = await r.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw[:200]
            stats.record(r.status, parsed, time.monotonic() - t0)
            return r.status, parsed
    except (aiohttp.ClientError, TimeoutError) as e:
        stats.errors[type(e).__name__] += 1
        return -1, None


def job_body(n: int, ms: int = 20, **extra: Any) -> dict[str, Any]:
    return {
        "definitionKey": "faults.work",
        "definitionVersion": 1,
        "params": {"ms": ms, "n": n},
        **extra,
    }


# ------------------------------------------------------------------------------ audit


@dataclass
class Audit:
    accepted: int
    present: int
    terminal: int
    by_status: dict[str, int]
    stuck: list[uuid.UUID]
    missing: list[uuid.UUID]
    runs: int  # ledger rows
    duplicates: int  # ledger rows beyond the first per job
    explained: Counter[str]  # why runs that did not end the job happened
    unexplained: list[tuple[uuid.UUID, int, str]]

    def why(self) -> str:
        if not self.duplicates and not self.unexplained:
            return "-"
        parts = [f"{k} {v}" for k, v in sorted(self.explained.items())]
        if self.unexplained:
            parts.append(f"UNEXPLAINED {len(self.unexplained)}")
        return ", ".join(parts)

    def assert_clean(self) -> None:
        assert not self.missing, f"{len(self.missing)} accepted jobs missing: {self.missing[:5]}"
        assert not self.stuck, f"{len(self.stuck)} jobs not terminal: {self.stuck[:5]}"
        assert not self.unexplained, f"runs not explained by a lost lease: {self.unexplained[:5]}"


async def audit(pool: asyncpg.Pool, ids: Collection[uuid.UUID]) -> Audit:
    """The end-of-scenario check over the database (see the module doc)."""
    id_list = list(ids)
    rows = await pool.fetch("SELECT id, status FROM jobs WHERE id = ANY($1::uuid[])", id_list)
    status = {r["id"]: r["status"] for r in rows}
    missing = [i for i in id_list if i not in status]
    stuck = [i for i, s in status.items() if s not in TERMINAL]
    by_status = dict(Counter(status.values()))
    # Every ledger row (one run) is either the run that ended the job (its final attempt, by
    # the worker recorded on the job), or an earlier run whose attempt row / events say why it
    # did not end it: the lease expired (worker killed or cut off), the worker handed it back
    # at shutdown, or the attempt failed / timed out and was retried.
    runs = await pool.fetch(
        """
        SELECT l.job_id, l.attempt, l.worker_id,
               (j.attempt = l.attempt AND j.worker_id = l.worker_id
                AND j.status IN ('succeeded', 'failed', 'cancelled')) AS final,
               (SELECT a.outcome FROM job_attempts a
                 WHERE a.job_id = l.job_id AND a.attempt = l.attempt
                   AND a.worker_id = l.worker_id AND a.outcome <> 'running') AS outcome,
               EXISTS (SELECT 1 FROM job_events e
                 WHERE e.job_id = l.job_id AND e.attempt = l.attempt
                   AND e.worker_id = l.worker_id AND e.event = 'handed_back') AS handed_back,
               EXISTS (SELECT 1 FROM job_events e
                 WHERE e.job_id = l.job_id AND e.attempt = l.attempt
                   AND e.worker_id = l.worker_id AND e.event = 'lease_expired') AS expired
        FROM fault_ledger l JOIN jobs j ON j.id = l.job_id
        WHERE l.job_id = ANY($1::uuid[])
        """,
        id_list,
    )
    per_job = Counter(r["job_id"] for r in runs)
    duplicates = sum(n - 1 for n in per_job.values() if n > 1)
    explained: Counter[str] = Counter()
    unexplained = []
    for r in runs:
        if per_job[r["job_id"]] == 1 and r["final"]:
            continue
        if r["final"] and r["outcome"] in (None, "succeeded", "failed", "cancelled"):
            # the run that ended the job: fine unless another run of the same attempt exists
            continue
        if r["expired"] or r["outcome"] == "lease_expired":
            explained["lease expired"] += 1
        elif r["handed_back"]:
            explained["handed back"] += 1
        elif r["outcome"] in ("failed", "timed_out"):
            explained[f"attempt {r['outcome']}"] += 1
        else:
            unexplained.append((r["job_id"], r["attempt"], r["worker_id"]))
    return Audit(
        accepted=len(id_list),
        present=len(status),
        terminal=len(id_list) - len(missing) - len(stuck),
        by_status=by_status,
        stuck=stuck,
        missing=missing,
        runs=len(runs),
        duplicates=duplicates,
        explained=explained,
        unexplained=unexplained,
    )


async def status_counts(pool: asyncpg.Pool, ids: Collection[uuid.UUID]) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM jobs WHERE id = ANY($1::uuid[]) GROUP BY 1", list(ids)
    )
    return {r["status"]: r["n"] for r in rows}


async def wait_terminal(
    pool: asyncpg.Pool, ids: Collection[uuid.UUID], within: float, procs: Procs | None = None
) -> None:
    """Wait until every id is terminal; on timeout say what is left and how the processes are."""
    try:
        await wait_for(lambda: all_terminal(pool, ids), within=within, step=0.25)
    except AssertionError:
        counts = await status_counts(pool, ids)
        alive = {p.name: p.alive() for p in procs.all} if procs else {}
        tails = {p.name: p.output()[-1500:] for p in (procs.all if procs else [])[-3:]}
        raise AssertionError(f"not all terminal: {counts}; alive {alive}; logs {tails}") from None


async def all_terminal(pool: asyncpg.Pool, ids: Collection[uuid.UUID]) -> bool:
    n = await pool.fetchval(
        "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[]) AND status = ANY($2::text[])",
        list(ids),
        list(TERMINAL),
    )
    return int(n) == len(ids)


async def held_past_lease(pool: asyncpg.Pool, slack: float = 0.0) -> int:
    """Jobs still `running`/`cancelling` whose lease ran out more than `slack` seconds ago."""
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM jobs WHERE status IN ('running', 'cancelling')"
            " AND lease_expires_at < now() - make_interval(secs => $1)",
            slack,
        )
    )
