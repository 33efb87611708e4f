"""Rate limits: the limit held across worker processes, and its cost on the no-op burn-down.

    .venv/bin/python bench/rate_limit.py [--quick] [--out FILE]

On its own throwaway cluster (fsync on, shared_buffers 256MB, as the peers' runs):

1. held: 3 `jobserver-worker` processes (concurrency 50 each) on `bench.rated` (50 starts per
   1 s, fleet-wide), `--rated` jobs (600: about 12 s of starts) queued at once. Read back from
   `jobs.started_at`: the most starts in any window [t, t + 1 s) (must be <= 50), the achieved
   rate (n / (last start - first start + 1 s): the periods the starts took), and the starts
   per worker.
2. burn-down: one worker process drains `--noop` unlimited no-op jobs (20,000), timed from the
   insert to the last success read back, in three setups, alternated over `--rounds` rounds
   (the median of each): `none` (no limited jobs in the table), `elsewhere` (`--held` (5,000)
   rate-limited jobs of a definition the worker runs, queued in another queue), `ahead` (the
   same jobs in the burn-down's own queue, older: the ordinary claim's walk passes them). The
   held jobs allow one start an hour, so they stay queued (the worker's rated claim sees them
   waiting and sleeps until the slot: an hour).

Prints the figures and writes JSON (`--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import asyncpg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import rate_defs  # noqa: F401 (registers the bench definitions)
from benchlib import new_database

from jobserver.core.rate_limits import job_rate
from jobserver.db import migrate
from jobserver.db.definitions import definition_upsert
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.db.pool import connect
from jobserver.registry import registry
from jobserver.testing.cluster import LocalCluster

SETTINGS = {"shared_buffers": "256MB", "max_connections": "200", "fsync": "on"}
WORKER_ENV = {"LOG_LEVEL": "WARNING", "POLL_INTERVAL_MS": "200"}


def log(msg: str) -> None:
    print(f"[rate_limit {time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def fresh_db(cluster: LocalCluster, name: str) -> str:
    url = await new_database(cluster, name)
    await migrate.upgrade_async(url)
    conn = await connect(url)
    try:
        for key in ("bench.rated", "bench.held", "bench.noop"):
            d = registry.latest(key)
            assert d is not None
            await definition_upsert(conn, d.metadata())
    finally:
        await conn.close()
    return url


def spawn(url: str, logdir: str, name: str, *args: str) -> subprocess.Popen[bytes]:
    logf = open(os.path.join(logdir, f"{name}.log"), "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "jobserver.cli.worker", "--module", "bench.rate_defs", *args],
        env=dict(os.environ, DATABASE_URL=url, WORKER_ID=name, **WORKER_ENV),
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=ROOT,
    )


def stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


async def insert(url: str, key: str, n: int, queue: str = "default") -> None:
    d = registry.latest(key)
    assert d is not None
    jobs = []
    for i in range(n):
        params = {"i": i}
        rate = job_rate(None, d.key, d.rate_limit, params)
        jobs.append(
            NewJob(
                definition_key=d.key,
                definition_version=d.version,
                max_attempts=1,
                params=params,
                queue=queue,
                rate_bucket=rate[0] if rate else None,
                rate_limit=rate[1] if rate else None,
                rate_period=rate[2] if rate else None,
            )
        )
    conn = await connect(url)
    try:
        for lo in range(0, n, 1000):
            await job_insert_many(conn, jobs[lo : lo + 1000])
    finally:
        await conn.close()


async def wait_count(url: str, sql: str, want: int, timeout: float) -> float:
    """Poll until `sql` counts `want`; the monotonic time it did."""
    conn = await asyncpg.connect(url)
    try:
        end = time.monotonic() + timeout
        while True:
            if await conn.fetchval(sql) >= want:
                return time.monotonic()
            if time.monotonic() > end:
                raise TimeoutError(f"{sql}: not {want} within {timeout} s")
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def held(cluster: LocalCluster, logdir: str, n: int) -> dict[str, Any]:
    url = await fresh_db(cluster, "rate_held")
    procs = [spawn(url, logdir, f"held-{i}", "--concurrency", "50") for i in range(3)]
    try:
        await wait_count(url, "SELECT count(*) FROM workers WHERE status = 'active'", 3, 60)
        await insert(url, "bench.rated", n)
        await wait_count(
            url, "SELECT count(*) FROM jobs WHERE status = 'succeeded'", n, n / 50 * 3 + 30
        )
    finally:
        for p in procs:
            stop(p)
    conn = await asyncpg.connect(url)
    try:
        peak = await conn.fetchval(
            """
            SELECT max((SELECT count(*) FROM jobs o WHERE o.started_at >= s.started_at
                        AND o.started_at < s.started_at + interval '1 second'))
            FROM jobs s
            """
        )
        span = await conn.fetchval(
            "SELECT extract(epoch FROM max(started_at) - min(started_at))::float8 FROM jobs"
        )
        per_worker = {
            r[0]: r[1]
            for r in await conn.fetch("SELECT worker_id, count(*) FROM jobs GROUP BY 1 ORDER BY 1")
        }
    finally:
        await conn.close()
    rate = n / (span + 1.0) if span is not None else None  # n starts over the periods used
    return {
        "jobs": n,
        "limit": "50 per 1 s",
        "workers": 3,
        "max_starts_in_any_1s_window": peak,
        "held": peak <= 50,
        "achieved_rate_per_s": round(rate, 2) if rate else None,
        "first_to_last_start_s": round(span, 3) if span is not None else None,
        "starts_per_worker": per_worker,
    }


async def burn(cluster: LocalCluster, logdir: str, setup: str, noop: int, held_n: int) -> float:
    url = await fresh_db(cluster, f"rate_burn_{setup}")
    if setup != "none":
        await insert(url, "bench.held", held_n, "default" if setup == "ahead" else "elsewhere")
    p = spawn(url, logdir, f"burn-{setup}", "--concurrency", "50")
    try:
        await wait_count(url, "SELECT count(*) FROM workers WHERE status = 'active'", 1, 60)
        t0 = time.monotonic()
        await insert(url, "bench.noop", noop)
        t1 = await wait_count(
            url,
            "SELECT count(*) FROM jobs WHERE status = 'succeeded'"
            " AND definition_key = 'bench.noop'",
            noop,
            600,
        )
    finally:
        stop(p)
    return t1 - t0


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rated", type=int, default=600)
    ap.add_argument("--noop", type=int, default=20_000)
    ap.add_argument("--held", type=int, default=5_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.quick:
        args.rated, args.noop, args.held, args.rounds = 150, 3000, 1000, 1
    logdir = tempfile.mkdtemp(prefix="jobserver-bench-rate-")
    result: dict[str, Any] = {"cpus": os.cpu_count()}
    with LocalCluster(fast=False, settings=SETTINGS) as cluster:
        log(f"held: {args.rated} jobs at 50/s on 3 workers")
        result["held"] = await held(cluster, logdir, args.rated)
        log(json.dumps(result["held"]))
        times: dict[str, list[float]] = {"none": [], "elsewhere": [], "ahead": []}
        for r in range(args.rounds):
            for setup in times:
                s = await burn(cluster, logdir, setup, args.noop, args.held)
                times[setup].append(s)
                log(f"burn-down round {r + 1} {setup}: {s:.2f} s ({args.noop / s:.0f} jobs/s)")
        base = statistics.median(times["none"])
        result["burn_down"] = {
            "noop_jobs": args.noop,
            "held_limited_jobs": args.held,
            "rounds": args.rounds,
            **{
                setup: {
                    "median_s": round(statistics.median(v), 3),
                    "jobs_per_s": round(args.noop / statistics.median(v)),
                    "vs_none_pct": round((statistics.median(v) / base - 1) * 100, 1),
                    "all_s": [round(x, 3) for x in v],
                }
                for setup, v in times.items()
            },
        }
    print(json.dumps(result, indent=2))
    if args.out:
        write(args.out, result)


def write(path: str, result: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    asyncio.run(main())
