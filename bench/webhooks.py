"""Webhook workloads: `http.request` jobs against a loopback sink, and what rendering costs.

- throughput: one worker (MAX_CONCURRENT_EXECUTIONS 10, then 100) burns down N queued
  `http.request` jobs whose payload uses macros and a params placeholder, against a sink in
  its own process (`bench/webhook_sink.py`) reached through OUTBOUND_ALLOW_CIDRS -> jobs/s.
  Every job is counted succeeded in the database, and the sink's own count is reported.
- render: the added latency of rendering per job, in process: a typical webhook's templated
  params without sources (p50/p99 microseconds over many renders), then with two sources read
  from PostgreSQL through the source driver (p50/p99 ms).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

import aiohttp
import asyncpg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jobserver.rendering import RunInfo, render_for_run
from jobserver.sources import open_driver
from jobserver.testing.cluster import free_port

KEYS = ("url", "headers", "payload", "body")


def params(sink: str, sources: bool = False) -> dict[str, Any]:
    p: dict[str, Any] = {
        "url": f"{sink}/hook",
        "method": "POST",
        "headers": {"Authorization": "Bearer bench", "X-Request-Id": "{{$uuid}}"},
        "payload": {
            "message": "order {{params.payload.order}} shipped",
            "order": 42,
            "at": "{{$timestamp}}",
            "day": "{{$today}}",
            "n": "{{$randomInt}}",
        },
    }
    if sources:
        p["payload"]["user"] = "{{user}}"
        p["payload"]["recent"] = "{{orders}}"
        p["useSources"] = True
        p["sources"] = {
            "user": {
                "collection": "bench_users",
                "match": {"name": "John"},
                "fields": ["name", "email", "contact:phone"],
                "single": True,
            },
            "orders": {"collection": "bench_orders", "sort": ["-id"], "limit": 5},
        }
    return p


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def render_cost(url: str, plain_n: int, sources_n: int) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS bench_users (name text, email text, contact jsonb);
            CREATE TABLE IF NOT EXISTS bench_orders (id int, total numeric, status text);
            TRUNCATE bench_users, bench_orders;
            INSERT INTO bench_users VALUES ('John', 'john@example.com', '{"phone": "555"}');
            INSERT INTO bench_orders SELECT i, i * 1.5, 'paid' FROM generate_series(1, 100) i;
            ANALYZE bench_users, bench_orders;
            """
        )
    finally:
        await conn.close()
    plain = params("http://127.0.0.1:1")
    run = RunInfo()
    driver = open_driver(url)
    times: list[float] = []
    try:
        for _ in range(plain_n):
            t0 = time.perf_counter()
            await render_for_run(plain, KEYS, run=run, driver=driver)
            times.append((time.perf_counter() - t0) * 1e6)
        with_sources = params("http://127.0.0.1:1", sources=True)
        stimes: list[float] = []
        for _ in range(sources_n):
            t0 = time.perf_counter()
            await render_for_run(with_sources, KEYS, run=run, driver=driver)
            stimes.append((time.perf_counter() - t0) * 1e3)
    finally:
        await driver.close()
    return {
        "renders": plain_n,
        "plain_p50_us": round(pct(times, 50), 1),
        "plain_p99_us": round(pct(times, 99), 1),
        "plain_mean_us": round(statistics.fmean(times), 1),
        "sources_renders": sources_n,
        "sources_p50_ms": round(pct(stimes, 50), 3),
        "sources_p99_ms": round(pct(stimes, 99), 3),
    }


async def fill_webhooks(url: str, sink: str, n: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO jobs (definition_key, definition_version, max_attempts, params)
            SELECT 'http.request', 1, 1, $2::jsonb FROM generate_series(1, $1)
            """,
            n,
            json.dumps(params(sink)),
        )
        await conn.execute("VACUUM ANALYZE jobs")
    finally:
        await conn.close()


async def sink_count(base: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(f"{base}/count") as r:
        return int((await r.json())["received"])


async def throughput(env: Any, n: int, timeout: float) -> dict[str, Any]:
    """jobs/s of one worker at concurrency 10 and 100 against the loopback sink."""
    from benchlib import wait_http  # bench/ is on the path (extra.py runs this)
    from extra import wait_count

    port = free_port()
    sink_url = f"http://127.0.0.1:{port}"
    sink = env.spawn("bench.webhook_sink", env.cluster.url(), "sink", args=[str(port)])
    out: dict[str, Any] = {"jobs": n}
    try:
        await wait_http(f"{sink_url}/count")
        for concurrency in (10, 100):
            url = await env.fresh_db(f"webhooks_{concurrency}")
            await fill_webhooks(url, sink_url, n)
            before = await sink_count(sink_url)
            w = env.spawn(
                "jobserver.cli.worker",
                url,
                f"webhooks-{concurrency}",
                {
                    "MAX_CONCURRENT_EXECUTIONS": str(concurrency),
                    "OUTBOUND_ALLOW_CIDRS": "127.0.0.1/32",
                },
            )
            try:
                done, took = await wait_count(url, "status = 'succeeded'", n, timeout, w)
            finally:
                env.stop(w)
            if done < n:
                failed = await asyncpg.connect(url)
                try:
                    why = await failed.fetchval(
                        "SELECT last_error FROM jobs WHERE status <> 'succeeded' LIMIT 1"
                    )
                finally:
                    await failed.close()
                raise RuntimeError(f"concurrency {concurrency}: {done}/{n} in {timeout}s: {why}")
            out[f"c{concurrency}_jobs_s"] = round(n / took, 1)
            out[f"c{concurrency}_sink_received"] = await sink_count(sink_url) - before
        out["render"] = await render_cost(env.cluster.url(), 20_000, 500)
    finally:
        env.stop(sink)
    return out
