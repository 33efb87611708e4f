"""jobserver-only workloads beyond the peer comparison (issue targets 3-6).

Runs on its own throwaway cluster with the peers' settings (fsync and synchronous_commit on,
shared_buffers 256MB, max_connections 200):

- rest_batch:  POST /v1/jobs/batch, 1,000 jobs per request, 4 concurrent clients -> jobs/s
- rest_single: POST /v1/jobs with 64 concurrent clients for a fixed time (wrk when installed,
               else an aiohttp client) -> jobs/s, p50/p99 latency, API RSS after the load
- scale:       burn-down of Q queued jobs on an empty table vs. on a table that also holds F
               finished rows (default 100,000 queued / 1,000,000 finished) + the claim plan
- memory:      one worker's RSS after 100k and after M processed jobs (default 1,000,000)
- webhooks:    `http.request` jobs against a loopback sink at concurrency 10 and 100, and the
               added latency of rendering with and without sources (bench/webhooks.py)
- video:       a 10 s 1080p clip to 720p mp4 through `jobserver.video.encode` vs the same
               FFmpeg command by hand: seconds, fps, their ratio (bench/video.py)

Every count is read back from the database. Usage: `python bench/extra.py --out FILE [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp
import asyncpg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/

import video as video_bench  # bench/video.py
import webhooks  # bench/ is this script's directory
from benchlib import wait_http

from jobserver.auth import create_token
from jobserver.db import migrate
from jobserver.db.definitions import definition_upsert
from jobserver.db.pool import connect
from jobserver.registry import load_modules
from jobserver.testing.cluster import LocalCluster, free_port

PEER_SETTINGS = {
    "shared_buffers": "256MB",
    "max_connections": "200",
    "fsync": "on",
    "synchronous_commit": "on",
}


def log(msg: str) -> None:
    print(f"[extra {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def pct(vals: list[float], p: float) -> float | None:
    if not vals:
        return None
    vals = sorted(vals)
    k = (len(vals) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(vals) - 1)
    return round(vals[lo] + (vals[hi] - vals[lo]) * (k - lo), 2)


class Env:
    """One cluster; a fresh database per workload."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logdir = tempfile.mkdtemp(prefix="jobserver-bench-logs-")

    async def fresh_db(self, name: str) -> str:
        admin = await asyncpg.connect(self.cluster.url())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        url = self.cluster.url(name)
        await migrate.upgrade_async(url)
        reg = load_modules()
        conn = await connect(url)
        try:
            for d in reg.all():
                await definition_upsert(conn, d.metadata())
        finally:
            await conn.close()
        return url

    def spawn(
        self,
        module: str,
        url: str,
        name: str,
        extra_env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> subprocess.Popen[bytes]:
        env = dict(os.environ, DATABASE_URL=url, LOG_LEVEL="WARNING", **(extra_env or {}))
        logf = open(os.path.join(self.logdir, f"{name}.log"), "ab")
        p = subprocess.Popen(
            [sys.executable, "-m", module, *(args or [])],
            env=env,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen[bytes], timeout: float = 30) -> int | None:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        return p.returncode

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)


async def count(url: str, where: str = "true") -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM jobs WHERE {where}"))
    finally:
        await conn.close()


async def wait_count(
    url: str, where: str, want: int, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> tuple[int, float]:
    t0 = time.monotonic()
    conn = await asyncpg.connect(url)
    try:
        while True:
            c = int(await conn.fetchval(f"SELECT count(*) FROM jobs WHERE {where}"))
            if c >= want or time.monotonic() - t0 > timeout:
                return c, time.monotonic() - t0
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode}")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def start_api(env: Env, url: str, name: str) -> tuple[subprocess.Popen[bytes], str, str]:
    conn = await connect(url)
    try:
        token = await create_token(conn, f"bench-{name}", ["manage_jobs"], "bench")
    finally:
        await conn.close()
    port = free_port()
    p = env.spawn("jobserver.cli.api", url, f"api-{name}", {"PORT": str(port), "HOST": "127.0.0.1"})
    base = f"http://127.0.0.1:{port}"
    await wait_http(base + "/healthz")
    return p, base, token


# ---------------------------------------------------------------- workloads


async def rest_batch(env: Env, n: int, clients: int = 4) -> dict[str, Any]:
    url = await env.fresh_db("rest_batch")
    api, base, token = await start_api(env, url, "batch")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps({"jobs": [{"definitionKey": "echo", "params": {"message": "x"}}] * 1000})
    per_client = n // (1000 * clients)
    statuses: dict[int, int] = {}
    try:
        async with aiohttp.ClientSession(headers=headers) as s:

            async def client() -> None:
                for _ in range(per_client):
                    async with s.post(base + "/v1/jobs/batch", data=body) as r:
                        await r.read()
                        statuses[r.status] = statuses.get(r.status, 0) + 1

            t0 = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(clients)))
            dt = time.perf_counter() - t0
        stored = await count(url)
        return {
            "requests": per_client * clients,
            "jobs_per_request": 1000,
            "clients": clients,
            "statuses": statuses,
            "stored": stored,
            "seconds": round(dt, 3),
            "jobs_s": round(stored / dt, 1),
            "api_rss_mb": rss_mb(api.pid),
        }
    finally:
        env.stop(api)


WRK_LUA = """
wrk.method = "POST"
wrk.body = '{"definitionKey":"echo","params":{"message":"x"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


async def rest_single(env: Env, seconds: int, clients: int = 64) -> dict[str, Any]:
    url = await env.fresh_db("rest_single")
    api, base, token = await start_api(env, url, "single")
    try:
        if shutil.which("wrk"):
            res = await _rest_single_wrk(base, token, seconds, clients)
        else:
            res = await _rest_single_aiohttp(base, token, seconds, clients)
        res["api_rss_mb"] = rss_mb(api.pid)
        res["stored"] = await count(url)
        res["clients"] = clients
        return res
    finally:
        env.stop(api)


async def _rest_single_wrk(base: str, token: str, seconds: int, clients: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA % token)
    argv = [
        "wrk",
        "-t2",
        f"-c{clients}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        f.name,
        base + "/v1/jobs",
    ]
    r = await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, timeout=seconds + 60
    )
    os.unlink(f.name)
    out = r.stdout

    def ms(label: str) -> float | None:
        m = re.search(rf"^\s+{label}\s+([0-9.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return None
        v = float(m.group(1))
        return round(v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v, 2)

    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "tool": "wrk",
        "seconds": seconds,
        "requests_s": float(rps.group(1)) if rps else None,
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


async def _rest_single_aiohttp(base: str, token: str, seconds: int, clients: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = b'{"definitionKey":"echo","params":{"message":"x"}}'
    lat: list[float] = []
    bad = 0
    end = time.monotonic() + seconds
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(headers=headers, connector=conn) as s:

        async def client() -> None:
            nonlocal bad
            while time.monotonic() < end:
                t0 = time.perf_counter()
                async with s.post(base + "/v1/jobs", data=body) as r:
                    await r.read()
                    if r.status != 201:
                        bad += 1
                lat.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        dt = time.perf_counter() - t0
    return {
        "tool": "aiohttp",
        "seconds": round(dt, 2),
        "requests_s": round(len(lat) / dt, 1),
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "non_2xx": bad,
    }


async def fill(url: str, queued: int, finished: int, owners: int = 1) -> None:
    """Bulk rows straight in SQL: `finished` succeeded rows (with attempts/events) + `queued`
    (spread round-robin over `owners` owners when more than one)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO jobs (definition_key, definition_version, max_attempts, status, attempt,
                started_at, finished_at, created_at, result)
            SELECT 'echo', 1, 3, 'succeeded', 1, now() - interval '1 hour',
                now() - interval '1 hour', now() - interval '1 hour', '{}'::jsonb
            FROM generate_series(1, $1)
            """,
            finished,
        )
        await conn.execute(
            """
            INSERT INTO jobs (definition_key, definition_version, max_attempts, owner)
            SELECT 'echo', 1, 3,
                CASE WHEN $2 > 1 THEN 'tenant-' || (i % $2) ELSE 'system:anonymous' END
            FROM generate_series(1, $1) AS i
            """,
            queued,
            owners,
        )
        await conn.execute("VACUUM ANALYZE jobs")
    finally:
        await conn.close()


async def burn_down(env: Env, url: str, n: int, name: str, timeout: float) -> float:
    w = env.spawn("jobserver.cli.worker", url, name)
    try:
        done, dt = await wait_count(
            url,
            "status = 'succeeded' AND finished_at > now() - interval '30 minutes'",
            n,
            timeout,
            w,
        )
    finally:
        env.stop(w)
    if done < n:
        raise RuntimeError(f"{name}: {done}/{n} done in {timeout}s")
    return round(n / dt, 1)


async def scale(env: Env, queued: int, finished: int, timeout: float) -> dict[str, Any]:
    empty = await env.fresh_db("scale_empty")
    await fill(empty, queued, 0)
    empty_rate = await burn_down(env, empty, queued, "scale-empty", timeout)
    full = await env.fresh_db("scale_full")
    await fill(full, queued, finished)
    conn = await asyncpg.connect(full)
    try:
        plan = await conn.fetch(
            """
            EXPLAIN SELECT j.id FROM jobs j
            WHERE j.status = 'queued' AND j.run_at <= now()
              AND (j.expires_at IS NULL OR j.expires_at > now())
            ORDER BY j.priority DESC, j.run_at, j.id LIMIT 10 FOR UPDATE OF j SKIP LOCKED
            """
        )
    finally:
        await conn.close()
    full_rate = await burn_down(env, full, queued, "scale-full", timeout)
    return {
        "queued": queued,
        "finished_rows": finished,
        "empty_jobs_s": empty_rate,
        "full_jobs_s": full_rate,
        "ratio": round(full_rate / empty_rate, 3) if empty_rate else None,
        "claim_plan": [r[0] for r in plan],
    }


async def fairness(env: Env, queued: int, timeout: float) -> dict[str, Any]:
    """The cost of fair claims: one worker burns down `queued` no-op jobs of one owner, then the
    same number spread over 10 and over 100 owners (each claim then shares between them)."""
    out: dict[str, Any] = {"queued": queued}
    for owners in (1, 10, 100):
        url = await env.fresh_db(f"fair_{owners}")
        await fill(url, queued, 0, owners)
        out[f"owners_{owners}_jobs_s"] = await burn_down(
            env, url, queued, f"fair-{owners}", timeout
        )
    one = out["owners_1_jobs_s"]
    for owners in (10, 100):
        out[f"ratio_{owners}"] = round(out[f"owners_{owners}_jobs_s"] / one, 3) if one else None
    return out


async def memory(env: Env, total: int, wave: int, timeout: float) -> dict[str, Any]:
    """Feed one worker `total` jobs in waves; sample its RSS after each wave.

    Finished rows are deleted between waves (as the pruner would) so the table stays small
    and the figure shows the worker alone.
    """
    url = await env.fresh_db("memory")
    w = env.spawn("jobserver.cli.worker", url, "memory")
    samples: list[dict[str, Any]] = []
    processed = 0
    t0 = time.monotonic()
    try:
        while processed < total:
            await fill(url, wave, 0)
            left = max(1.0, timeout - (time.monotonic() - t0))
            done, _ = await wait_count(url, "status = 'succeeded'", wave, left, w)
            processed += done
            samples.append(
                {
                    "processed": processed,
                    "rss_mb": rss_mb(w.pid),
                    "elapsed_s": round(time.monotonic() - t0, 1),
                }
            )
            if done < wave:
                break
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("DELETE FROM jobs WHERE status = 'succeeded'")
            finally:
                await conn.close()
    finally:
        env.stop(w)
    first = next((s for s in samples if s["processed"] >= min(100_000, total)), samples[0])
    last = samples[-1]
    growth = (last["rss_mb"] - first["rss_mb"]) / first["rss_mb"] if first["rss_mb"] else None
    return {
        "processed": processed,
        "samples": samples,
        "rss_first_mb": first["rss_mb"],
        "rss_last_mb": last["rss_mb"],
        "growth_pct": round(100 * growth, 1) if growth is not None else None,
    }


async def main_async(a: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, Any] = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    cluster = LocalCluster(fast=False, settings=PEER_SETTINGS).start()
    env = Env(cluster)
    try:
        steps = [
            ("rest_batch", lambda: rest_batch(env, a.batch_jobs)),
            ("rest_single", lambda: rest_single(env, a.single_seconds)),
            ("scale", lambda: scale(env, a.scale_queued, a.scale_finished, a.timeout)),
            ("fairness", lambda: fairness(env, a.scale_queued, a.timeout)),
            ("memory", lambda: memory(env, a.memory_jobs, a.memory_wave, a.timeout * 4)),
            ("webhooks", lambda: webhooks.throughput(env, a.webhook_jobs, a.timeout)),
            ("video", lambda: video_bench.encode_overhead(a.video_seconds, a.video_runs)),
        ]
        for name, fn in steps:
            if a.only and name not in a.only.split(","):
                continue
            log(name)
            try:
                res[name] = await fn()
            except Exception as e:  # a failed workload is reported, the others still run
                res[name] = {"error": f"{type(e).__name__}: {e}"[-1500:]}
            log(f"  {json.dumps(res[name])[:400]}")
    finally:
        env.stop_all()
        cluster.stop()
        res["logs"] = env.logdir
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: proves it works")
    ap.add_argument("--only", default="", help="comma list of workloads")
    ap.add_argument("--batch-jobs", type=int, default=40_000)
    ap.add_argument("--single-seconds", type=int, default=10)
    ap.add_argument("--scale-queued", type=int, default=100_000)
    ap.add_argument("--scale-finished", type=int, default=1_000_000)
    ap.add_argument("--memory-jobs", type=int, default=1_000_000)
    ap.add_argument("--memory-wave", type=int, default=100_000)
    ap.add_argument("--webhook-jobs", type=int, default=20_000)
    ap.add_argument("--video-seconds", type=int, default=10, help="clip length (bench/video.py)")
    ap.add_argument("--video-runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    if a.quick:
        a.batch_jobs, a.single_seconds = 4000, 2
        a.scale_queued, a.scale_finished = 2000, 20_000
        a.memory_jobs, a.memory_wave = 4000, 2000
        a.webhook_jobs = 1000
        a.video_seconds, a.video_runs = 2, 2
        a.timeout = 60
    res = asyncio.run(main_async(a))
    with open(a.out, "w") as f:
        json.dump(res, f, indent=2)
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
