#!/usr/bin/env python3
"""Where a job's start latency goes: each step of enqueue -> start timed on its own.

    bench/latency_parts.py [--n 500] [--rate 100] [--out FILE.json]

On a throwaway PostgreSQL 15 cluster with fsync and synchronous commit on (the peers
benchmark's settings), one process plays both sides with the worker's own statements and
session settings, one job at a time at a fixed rate:

1. enqueue commit: `job_insert_many` of one job (insert + NOTIFY, one autocommit statement),
   as the API and the benchmark's enqueuer send it;
2. NOTIFY delivery: from that call's return to the listening session's callback (negative
   when the notification arrives before the commit's answer);
3. claim round trip: `job_claim_available` of one job on a claim session (prepared statement,
   CLAIM_SESSION_SETTINGS), started from the callback as the worker's doorbell does;
4. the claimed row's start: the rest (the worker's loop turn, slot hand-off, the job's call)
   is the end-to-end figure of `bench/peers` workload B minus these, reported there.

Also, for reference: a round trip (`SELECT 1`), a commit's flush (a one-row transaction), the
same enqueue on a session with synchronous_commit off, and the limited claim (a transaction
under tried advisory locks, which every claim was while a limited definition was loaded).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.benchlib import new_database
from bench.dependencies import DEFINITIONS, noop
from jobserver.db import migrate
from jobserver.db.channels import JOBS_CHANNEL
from jobserver.db.job_runs import (
    CLAIM_SESSION_SETTINGS,
    WRITE_SESSION_SETTINGS,
    job_claim_available,
    job_complete_many,
    job_runs_prepare,
)
from jobserver.db.jobs import job_insert_many
from jobserver.testing.cluster import LocalCluster

LIMITED = {"bench.idle": 3}
SETTINGS = {
    "shared_buffers": "256MB",
    "max_connections": "200",
    "fsync": "on",
    "synchronous_commit": "on",
}


def pct(vals: list[float], p: float) -> float:
    s = sorted(vals)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(vals: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(pct(vals, 50), 3),
        "p95_ms": round(pct(vals, 95), 3),
        "p99_ms": round(pct(vals, 99), 3),
        "mean_ms": round(statistics.fmean(vals), 3),
    }


async def measure(url: str, n: int, rate: float) -> dict[str, Any]:
    enq = await asyncpg.connect(url)
    enq_async = await asyncpg.connect(url, server_settings={"synchronous_commit": "off"})
    listener = await asyncpg.connect(url)
    claimer = await asyncpg.connect(url, server_settings=CLAIM_SESSION_SETTINGS)
    writer = await asyncpg.connect(url, server_settings=WRITE_SESSION_SETTINGS)
    await job_runs_prepare(claimer, claim=True)
    await job_runs_prepare(writer)
    got: asyncio.Queue[float] = asyncio.Queue()
    await enq.execute("CREATE TABLE t_flush (x int)")
    await listener.add_listener(JOBS_CHANNEL, lambda *_: got.put_nowait(time.perf_counter()))
    parts: dict[str, list[float]] = {
        k: [] for k in ("enqueue_commit", "notify_delivery", "claim", "notify_to_claimed")
    }
    flush: dict[str, list[float]] = {
        "select_1": [],
        "empty_commit": [],
        "enqueue_async": [],
        "limited_claim": [],
    }
    refs = ["bench.noop@1"]
    try:
        start = time.perf_counter()
        for i in range(n + 20):
            # a fixed schedule of `rate` per second, as bench/peers' enqueuer keeps
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.perf_counter()
            await job_insert_many(enq, [noop()])
            t1 = time.perf_counter()
            heard = await asyncio.wait_for(got.get(), 10)
            rows = await job_claim_available(claimer, "bench", 1, refs, None, 60)
            t2 = time.perf_counter()
            if len(rows) != 1:
                raise RuntimeError(f"claimed {len(rows)} rows")
            await job_complete_many(writer, "bench", [rows[0]["id"]], [1], ["null"], [0.0])
            if i < 20:
                continue  # warm-up: first plans, first pages
            parts["enqueue_commit"].append(1000 * (t1 - t0))
            parts["notify_delivery"].append(1000 * (heard - t1))
            parts["claim"].append(1000 * (t2 - max(heard, t1)))
            parts["notify_to_claimed"].append(1000 * (t2 - t0))
            t3 = time.perf_counter()
            await enq.fetchval("SELECT 1")
            t4 = time.perf_counter()
            await enq.execute("INSERT INTO t_flush VALUES (1)")
            t5 = time.perf_counter()
            await job_insert_many(enq_async, [noop()], notify=False)  # claimed below
            t6 = time.perf_counter()
            # the claim a worker made while a concurrency-limited definition was loaded
            # (encode.video), before claims left those out when none of their jobs is about
            t7 = time.perf_counter()
            rows = await job_claim_available(claimer, "bench", 1, refs, None, 60, LIMITED)
            t8 = time.perf_counter()
            await job_complete_many(writer, "bench", [rows[0]["id"]], [1], ["null"], [0.0])
            flush["limited_claim"].append(1000 * (t8 - t7))
            flush["select_1"].append(1000 * (t4 - t3))
            flush["empty_commit"].append(1000 * (t5 - t4))
            flush["enqueue_async"].append(1000 * (t6 - t5))
    finally:
        for c in (enq, enq_async, listener, claimer, writer):
            await c.close()
    return {
        "jobs": n,
        "rate": rate,
        "parts": {k: summary(v) for k, v in parts.items()},
        "reference": {k: summary(v) for k, v in flush.items()},
    }


async def main() -> tuple[str, dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    cluster = LocalCluster(fast=False, settings=SETTINGS).start()
    try:
        url = await new_database(cluster, "latency_parts")
        await asyncio.to_thread(migrate.upgrade, url, "head")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(DEFINITIONS)
        finally:
            await conn.close()
        res = await measure(url, a.n, a.rate)
    finally:
        cluster.stop()
    print(f"start latency parts, {res['jobs']} jobs at {res['rate']:.0f}/s (ms)")
    for group in ("parts", "reference"):
        for k, v in res[group].items():
            print(
                f"  {k:20} p50 {v['p50_ms']:7.3f}  p95 {v['p95_ms']:7.3f}  p99 {v['p99_ms']:7.3f}"
            )
    return a.out, res


if __name__ == "__main__":
    out, result = asyncio.run(main())
    if out:
        Path(out).write_text(json.dumps(result, indent=2))
