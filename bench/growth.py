"""Cost as the table grows (issue 19, target 7): the hot path, pruning, bloat and memory.

    .venv/bin/python bench/growth.py --out DIR [--scale 1.0] [--rss-jobs N] [--streams 1000]

Runs alone, on its own throwaway PostgreSQL cluster with the peers benchmark's settings
(bench/peers/run.sh: shared_buffers 256MB, max_connections 200, fsync and synchronous_commit
on) plus max_wal_size 8GB and maintenance_work_mem 512MB (the load writes gigabytes; with the
default 1GB of WAL it checkpoints every few seconds). At --scale 1.0 (the issue's sizes):

1. hot path (bench/growth_ops.py): claim 500 / complete 500, claim 1 / complete 1, insert 1 /
   insert 1,000, POST /v1/jobs and the listing routes through a real API process, on a small
   table (1,000 finished + 100 queued jobs, plus the queued ones its claims take) against the
   grown one (10,000,000 finished + 1,000,000 queued, loaded by bench/growth_load.py), in
   alternating rounds; median and p95 of each and their ratios (target: grown within 20 %).
   The plans (EXPLAIN (ANALYZE, BUFFERS)) of every statement on both tables are in the JSON,
   and in the report for whatever is over the target.
2. pruner vs worker (bench/growth_churn.py): one worker's burn-down of 200,000 of the grown
   table's queued jobs, then the scheduler's pruner (Pruner.run_once, retention 0) deleting
   the oldest finished jobs with their events and attempts.
3./4. churn: a fresh database through which one worker processes 10,000,000 jobs (--rss-jobs)
   while a pruner loop deletes them; relation sizes and the worker's RSS every 5 %.
5. streams (bench/growth_streams.py): an API process with 1,000 open GET /v1/stream.

Writes DIR/growth.json and DIR/growth.md. Smaller --scale shrinks the tables, the burn-down and
the churn (not the number of timed rounds), for development.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

import asyncpg

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/

import growth_churn
import growth_load
import growth_ops
import growth_streams
from extra import Env, pct, start_api

from jobserver.testing.cluster import LocalCluster

SETTINGS = {
    "shared_buffers": "256MB",
    "max_connections": "200",
    "fsync": "on",
    "synchronous_commit": "on",
    "max_wal_size": "8GB",
    "maintenance_work_mem": "512MB",
}
TARGET = 1.20
CLAIM_BATCH = 500  # a worker at the default concurrency claims up to 10 + its prefetch of 500


def log(msg: str) -> None:
    print(f"[growth {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sizes_for(scale: float, rss_jobs: int | None) -> dict[str, int]:
    queued = max(2000, int(1_000_000 * scale))
    ready = int(queued * 0.75)  # a quarter of the queued jobs are delayed
    churn = rss_jobs if rss_jobs is not None else max(20_000, int(10_000_000 * scale))
    return {
        "finished": max(10_000, int(10_000_000 * scale)),
        "queued": queued,
        "claim_batch": CLAIM_BATCH,
        "claim_rounds": max(5, min(100, ready // (CLAIM_BATCH + 1) // 4)),
        "insert_rounds": 200,
        "http_rounds": 100,
        "burn_down": max(2000, min(200_000, ready // 2)),
        "prune_runs": 3,
        "churn_jobs": churn,
        "churn_wave": max(5000, min(100_000, churn // 20)),
        "churn_sample": max(1000, churn // 20),
    }


def summary(sides: tuple[growth_ops.Side, growth_ops.Side]) -> dict[str, Any]:
    empty, grown = sides
    out: dict[str, Any] = {}
    for op, e in empty.times.items():
        g = grown.times[op]
        e50, g50 = statistics.median(e), statistics.median(g)
        e95, g95 = pct(e, 95), pct(g, 95)
        out[op] = {
            "calls": len(e),
            "empty_p50_ms": round(e50, 3),
            "empty_p95_ms": e95,
            "grown_p50_ms": round(g50, 3),
            "grown_p95_ms": g95,
            "ratio_p50": round(g50 / e50, 3),
            "ratio_p95": round(g95 / e95, 3) if e95 and g95 else None,
            "within_target": g50 / e50 <= TARGET,
        }
    return out


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def part_hot_path(env: Env, res: dict[str, Any], sc: dict[str, int]) -> tuple[str, str]:
    empty_url = await env.fresh_db("growth_empty")
    grown_url = await env.fresh_db("growth_grown")
    t0 = time.monotonic()
    res["load"] = await growth_load.load_grown(grown_url, sc["finished"], sc["queued"])
    res["load"]["load_average_after"] = load_average()
    await growth_load.load_small(empty_url, 1000, 100)
    res["timings_s"]["load"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    sides = (growth_ops.Side("empty", empty_url), growth_ops.Side("grown", grown_url))
    apis = []
    for side in sides:
        api, side.base, side.token = await start_api(env, side.url, side.name)
        apis.append(api)
        await side.open()
    try:
        res["hot_path_load_average_before"] = load_average()
        await growth_ops.run_reads_and_inserts(sides, sc)
        res["plans"] = {s.name: await growth_ops.read_plans(s) for s in sides}
        supply = (sc["claim_rounds"] + 8) * (sc["claim_batch"] + 1)
        await growth_load.add_queued(empty_url, int(supply / 0.7))
        await growth_ops.run_claims(sides, sc)
        res["hot_path_load_average_after"] = load_average()
        res["hot_path"] = summary(sides)
        for s in sides:
            res["plans"][s.name].update(await growth_ops.claim_plans(s, sc["claim_batch"]))
    finally:
        for side in sides:
            await side.close()
        for api in apis:
            env.stop(api)
    res["timings_s"]["hot_path"] = round(time.monotonic() - t0, 1)
    for op, r in res["hot_path"].items():
        log(f"{op}: {r}")
    return empty_url, grown_url


async def drop_db(env: Env, name: str) -> None:
    admin = await asyncpg.connect(env.cluster.url())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def main_async(a: argparse.Namespace) -> dict[str, Any]:
    sc = sizes_for(a.scale, a.rss_jobs)
    res: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "scale": a.scale,
        "sizes": sc,
        "target_ratio": TARGET,
        "cpus": os.cpu_count(),
        "load_average_before": load_average(),
        "cluster_settings": SETTINGS,
        "timings_s": {},
    }
    cluster = LocalCluster(fast=False, settings=SETTINGS).start()
    env = Env(cluster)
    try:
        conn = await asyncpg.connect(cluster.url())
        res["postgres"] = await conn.fetchval("SHOW server_version")
        await conn.close()
        parts = a.only.split(",") if a.only else ["hot", "prune", "churn", "streams"]
        if "hot" in parts or "prune" in parts:
            _, grown_url = await part_hot_path(env, res, sc)
            if "prune" in parts:
                t0 = time.monotonic()
                log(f"burn-down of {sc['burn_down']:,} jobs")
                res["burn_down"] = await growth_churn.burn_down(
                    env, grown_url, sc["burn_down"], timeout=90
                )
                log(f"  {res['burn_down']}")
                res["prune"] = await growth_churn.prune(grown_url, sc["prune_runs"])
                res["prune_plan"] = await _prune_plan(grown_url)
                log(f"  prune: {json.dumps(res['prune'])[:300]}")
                res["timings_s"]["burn_down_and_prune"] = round(time.monotonic() - t0, 1)
            await drop_db(env, "growth_grown")
            await drop_db(env, "growth_empty")
        if "churn" in parts:
            t0 = time.monotonic()
            url = await env.fresh_db("growth_churn")
            log(f"churn of {sc['churn_jobs']:,} jobs")
            res["churn"] = await growth_churn.churn(
                env,
                url,
                sc["churn_jobs"],
                sc["churn_wave"],
                sc["churn_sample"],
                timeout=max(300, sc["churn_jobs"] / 4000),
            )
            res["churn"]["load_average_after"] = load_average()
            res["timings_s"]["churn"] = round(time.monotonic() - t0, 1)
            await drop_db(env, "growth_churn")
        if "streams" in parts:
            t0 = time.monotonic()
            url = await env.fresh_db("growth_streams")
            res["streams"] = await growth_streams.streams(env, url, a.streams)
            log(f"streams: {res['streams']}")
            res["timings_s"]["streams"] = round(time.monotonic() - t0, 1)
    finally:
        env.stop_all()
        cluster.stop()
        res["logs"] = env.logdir
    res["load_average_after"] = load_average()
    return res


async def _prune_plan(url: str) -> list[Any]:
    from jobserver.db.maintenance import job_prune_finished

    conn = await asyncpg.connect(url)
    try:
        return await growth_ops.explain(
            conn,
            lambda c: job_prune_finished(
                c, succeeded_seconds=0, cancelled_seconds=0, failed_seconds=0, limit=1000
            ),
        )
    finally:
        await conn.close()


# -- report ---------------------------------------------------------------------------------------


def markdown(res: dict[str, Any]) -> str:
    sc = res["sizes"]
    out = [
        f"# Cost as the table grows (scale {res['scale']})",
        "",
        f"PostgreSQL {res.get('postgres')}, {res['cpus']} CPUs, load average before"
        f" {res['load_average_before']}, after {res.get('load_average_after')}."
        f" Parts took (s): {res['timings_s']}.",
    ]
    hot = res.get("hot_path")
    if hot:
        load = res["load"]
        out += [
            "",
            f"## Hot path: {load['finished']:,} finished + {load['queued']:,} queued jobs"
            f" ({load['jobs_total_size']}, {load['job_attempts']:,} attempts,"
            f" {load['job_events']:,} events) vs a small table",
            "",
            "| operation | calls | small p50 ms | small p95 ms | grown p50 ms | grown p95 ms |"
            " ratio p50 | ratio p95 | within 20 % |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for op, r in hot.items():
            out.append(
                f"| {op} | {r['calls']} | {r['empty_p50_ms']} | {r['empty_p95_ms']} |"
                f" {r['grown_p50_ms']} | {r['grown_p95_ms']} | {r['ratio_p50']} |"
                f" {r['ratio_p95']} | {'yes' if r['within_target'] else '**no**'} |"
            )
        for op, r in hot.items():
            if r["within_target"]:
                continue
            out += ["", f"### {op}: what the grown table's plan walks", "", "```"]
            for stmt in res["plans"]["grown"].get(op, []):
                out.append(f"-- {stmt['sql'][:160]}")
                out += growth_ops.walked(stmt["plan"])
            out.append("```")
    bd, pr = res.get("burn_down"), res.get("prune")
    if bd and pr:
        stopped = f" of {bd['wanted']:,} (stopped at 90 s)" if bd["timed_out"] else ""
        out += [
            "",
            "## Pruner vs one worker (grown table)",
            "",
            "| | jobs/s |",
            "| --- | --- |",
            f"| one worker, burn-down of {bd['jobs']:,}{stopped}"
            f" (steady, first to last completion) |"
            f" {bd['steady_jobs_s']:,} |",
            f"| one worker, wall clock incl. start-up | {bd['wall_jobs_s']:,} |",
            f"| pruner while it runs ({pr['jobs_pruned']:,} jobs, {pr['events_pruned']:,}"
            f" events, {pr['attempts_pruned']:,} attempts in {pr['seconds']} s) |"
            f" {pr['jobs_s']:,} |",
            f"| pruner sustained if it waits its interval after every run (at most"
            f" {pr['rows_per_run_max']:,} rows per {pr['interval_s']:.0f} s) |"
            f" {pr['sustained_ceiling_jobs_s']:,} |",
        ]
        sv = pr.get("service")
        if sv:
            out.append(
                f"| the pruner's own loop, {sv['runs']} runs ({sv['jobs_pruned']:,} jobs in"
                f" {sv['seconds']} s) | {sv['jobs_s']:,} |"
            )
    ch = res.get("churn")
    if ch:
        first, last = (
            ch["samples"][1] if len(ch["samples"]) > 1 else ch["samples"][0],
            ch["samples"][-1],
        )
        out += [
            "",
            f"## Churn: {ch['jobs']:,} jobs through one worker and the pruner"
            f" ({ch['wall_s']} s, {ch['jobs_s']:,} jobs/s)",
            "",
            f"Worker RSS (MB): first sample {ch['worker_rss_mb']['first']}, after"
            f" {sc['churn_sample']:,} jobs {ch['worker_rss_mb']['after_first_sample']},"
            f" max {ch['worker_rss_mb']['max']}, at the end {ch['worker_rss_mb']['end']}.",
            "",
            f"| relation | heap MB at {first['processed']:,} | indexes MB |"
            f" heap MB at {last['processed']:,} | indexes MB | caught up: heap / indexes |"
            " autovacuums |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for rel, r in last["sizes"].items():
            f = first["sizes"].get(rel, {})
            c = ch["sizes_caught_up"].get(rel, {})
            out.append(
                f"| {rel} | {f.get('heap_mb')} | {f.get('indexes_mb')} | {r['heap_mb']} |"
                f" {r['indexes_mb']} | {c.get('heap_mb')} / {c.get('indexes_mb')} |"
                f" {r['autovacuums']} |"
            )
        out += [
            "",
            "| processed | worker RSS MB | jobs heap MB | jobs indexes MB | jobs dead tuples |",
            "| --- | --- | --- | --- | --- |",
        ]
        for s in ch["samples"]:
            j = s["sizes"].get("jobs", {})
            out.append(
                f"| {s['processed']:,} | {s['worker_rss_mb']} | {j.get('heap_mb')} |"
                f" {j.get('indexes_mb')} | {j.get('dead')} |"
            )
    st = res.get("streams")
    if st:
        out += [
            "",
            f"## API with {st['streams']:,} open GET /v1/stream",
            "",
            f"RSS (MB): idle {st['api_rss_idle_mb']}, all open {st['api_rss_open_mb']}, events"
            f" flowing {st['api_rss_flowing_mb']}, closed {st['api_rss_closed_mb']}"
            f" ({st.get('kb_per_stream')} kB per stream). Opened in {st['open_s']} s"
            f" (statuses {st['statuses']}); {st['streams_with_events']:,} of them received job"
            f" events (per stream min/median/max {st['received_events']}), all within"
            f" {st['all_received_s']} s of the first change; {st['jobs_changed']:,} jobs"
            f" changed; {st['resyncs']} resyncs.",
        ]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="directory for growth.json and growth.md")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--rss-jobs", type=int, default=None, help="jobs of the churn (3, 4)")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--only", default="", help="comma list of: hot, prune, churn, streams")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    res = asyncio.run(main_async(a))
    with open(os.path.join(a.out, "growth.json"), "w") as f:
        json.dump(res, f, indent=2, default=str)
    md = markdown(res)
    with open(os.path.join(a.out, "growth.md"), "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {a.out}/growth.json and growth.md")


if __name__ == "__main__":
    main()
