"""Job dependencies: what they cost the jobs that have none, and what a graph of jobs runs at.

    .venv/bin/python bench/dependencies.py [--jobs 20000] [--waiting 20000] [--rounds 9] [--seed 16]
        [--out FILE] [--quick]

On its own throwaway cluster (fsync off, shared_buffers 256MB as the other runs), with the
real `jobserver-worker` (bench/peers/bench_defs.py's `bench.noop@1`, default concurrency):

1. burn-down of `--jobs` no-op jobs, the worker started and registered first, the jobs
   inserted in one transaction (`job_insert_many`), timed on the database clock from just
   after that commit to the last `finished_at`. Four databases, one round of each per round in
   an order shuffled anew each round (a fixed order let the machine's drift over a run favour
   whichever came first), `--rounds` rounds (the median of each is reported, every round is
   kept):
   - `before`: the schema at head without the dependency triggers (`DEPENDENCY_TRIGGERS`
     dropped: the same code and columns, so it runs; the columns alone are not measured);
   - `after`: the schema at head (the settle triggers on every status change);
   - `after+waiting`: head with `--waiting` jobs in status `waiting` elsewhere in the table (each
     waits on one of 100 parents delayed by a year);
   - `before+rows`: `before` with as many jobs elsewhere, queued but delayed by a year: the same
     table size without dependencies, to tell the cost of waiting rows from that of more rows.
   Between rounds the finished jobs are deleted and the table vacuumed. What dependencies cost
   the other jobs is `after+waiting` against `before+rows` (the same table size); against
   `before` it is that plus the cost of a bigger table, whatever its rows are.
2. the claim and ack statements alone (less noisy than a burn-down on a small machine): per
   database, `--acks` repetitions, interleaved in a shuffled order, of 1,000 jobs inserted,
   claimed in one `job_claim_available` on a session with the worker's claim settings and
   acknowledged in one `job_complete_many` (the worker's batched `UPDATE ... FROM unnest`) on
   one with its write settings, timed around each of the two calls; medians in ms per 1,000.
3. graphs on the `after` database, each timed from its insert's commit to its last finish:
   a chain of 200 jobs (each waits on the one before), 250 diamonds (a -> b, c -> d: 1,000
   jobs), a fan-out/fan-in (1 -> 1,000 -> 1) and, for comparison, 1,002 independent jobs.

Prints a table and writes JSON (`--out`). Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

import asyncpg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "bench", "peers")
sys.path.insert(0, ROOT)

from benchlib import new_database

from jobserver.db import migrate
from jobserver.db.job_runs import (
    CLAIM_SESSION_SETTINGS,
    WRITE_SESSION_SETTINGS,
    job_claim_available,
    job_complete_many,
)
from jobserver.db.jobs import NewJob, job_insert_many, new_job_ids
from jobserver.testing.cluster import LocalCluster

SETTINGS = {"shared_buffers": "256MB", "max_connections": "200"}
BATCH = 1000
DEFINITIONS = """
INSERT INTO job_definitions (key, version, default_max_attempts, timeout_seconds, fingerprint)
VALUES ('bench.noop', 1, 3, 60, 'bench'), ('bench.idle', 1, 1, 60, 'bench')
ON CONFLICT DO NOTHING
"""


def noop(**kw: Any) -> NewJob:
    return NewJob("bench.noop", 1, 3, {}, **kw)


# The triggers that job dependencies (0014) and broadcast jobs (0017) put on `jobs`: dropped in
# the `before` databases, which then run the same code on the same columns without them.
DEPENDENCY_TRIGGERS = (
    "jobs_settle_dependents",
    "jobs_settle_successes",
    "jobs_note_success",
    "jobs_deleted_parent",
    "jobs_broadcast_sum",
    "jobs_broadcast_cancel",
)


async def database(cluster: LocalCluster, name: str, plain: bool) -> str:
    """A new database at head; `plain`: without the dependency triggers."""
    url = await new_database(cluster, name)
    await asyncio.to_thread(migrate.upgrade, url, "head")
    conn = await asyncpg.connect(url)
    try:
        if plain:
            for trigger in DEPENDENCY_TRIGGERS:
                await conn.execute(f"DROP TRIGGER {trigger} ON jobs")
        await conn.execute(DEFINITIONS)
    finally:
        await conn.close()
    return url


class WorkerProc:
    """A `jobserver-worker` process for bench.noop@1 on one database."""

    def __init__(self, url: str, worker_id: str) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "WORKER_ID": worker_id,
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([PEERS, ROOT, os.environ.get("PYTHONPATH", "")]),
        }
        self.worker_id = worker_id
        self.p = subprocess.Popen(
            [sys.executable, "-m", "jobserver.cli.worker", "--module", "bench_defs"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def ready(self, conn: asyncpg.Connection) -> None:
        for _ in range(600):
            if self.p.poll() is not None:
                raise RuntimeError("the worker exited")
            n = await conn.fetchval(
                "SELECT count(*) FROM workers WHERE id = $1 AND status = 'active'", self.worker_id
            )
            if n:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the worker did not register")

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)


# How long one timed run may take before it is given up as stuck (seconds).
RUN_TIMEOUT = 300.0


# Whether the worker has anything left to do: a ready no-op job, or one held (claimed or
# running). Each test stops at its first row, so the wait costs the worker next to nothing:
# counting the run's own 20,000 ids every 50 ms took a third of a core from it.
_BUSY = """
SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued' AND definition_key = 'bench.noop'
                 AND run_at <= now())
    OR EXISTS (SELECT 1 FROM jobs WHERE status IN ('running', 'cancelling'))
"""


async def run_jobs(conn: asyncpg.Connection, jobs: list[NewJob]) -> float:
    """Insert `jobs` in one transaction; seconds (database clock) from just after the commit
    to the last finish, once every one of them is finished."""
    async with conn.transaction():
        for i in range(0, len(jobs), BATCH):
            await job_insert_many(conn, jobs[i : i + BATCH])
    start = await conn.fetchval("SELECT clock_timestamp()")
    ids = [j.id for j in jobs]
    deadline = time.monotonic() + RUN_TIMEOUT
    while await conn.fetchval(_BUSY):
        if time.monotonic() > deadline:  # a worker that cannot claim must not hang the run
            left = await conn.fetchval(
                "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[]) AND finished_at IS NULL",
                ids,
            )
            raise TimeoutError(f"{left} of {len(ids)} jobs unfinished after {RUN_TIMEOUT} s")
        await asyncio.sleep(0.1)
    end = await conn.fetchval("SELECT max(finished_at) FROM jobs WHERE id = ANY($1::uuid[])", ids)
    failed = await conn.fetchval(
        "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[]) AND status <> 'succeeded'", ids
    )
    if failed:
        raise RuntimeError(f"{failed} jobs did not succeed")
    return float((end - start).total_seconds())


async def clean(conn: asyncpg.Connection) -> None:
    await conn.execute("DELETE FROM jobs WHERE status = 'succeeded'")
    await conn.execute("VACUUM ANALYZE jobs")


async def add_waiting(conn: asyncpg.Connection, n: int) -> None:
    """`n` waiting jobs: each waits on one of 100 parents of `bench.idle`, which no worker runs,
    delayed by a year (so no claim walks over them: the waiting jobs alone are measured)."""
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    parents = [NewJob("bench.idle", 1, 1, {}, run_at=later) for _ in range(100)]
    ids = new_job_ids(n)
    kids = [
        NewJob("bench.noop", 1, 3, {}, id=ids[i], depends_on=[parents[i % 100].id])
        for i in range(n)
    ]
    async with conn.transaction():
        await job_insert_many(conn, parents)
        for i in range(0, n, BATCH):
            await job_insert_many(conn, kids[i : i + BATCH])
    await conn.execute("VACUUM ANALYZE jobs")


async def add_delayed(conn: asyncpg.Connection, n: int) -> None:
    """`n` queued jobs of `bench.idle` delayed by a year (no claim walks over them)."""
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    jobs = [NewJob("bench.idle", 1, 1, {}, run_at=later) for _ in range(n)]
    async with conn.transaction():
        for i in range(0, n, BATCH):
            await job_insert_many(conn, jobs[i : i + BATCH])
    await conn.execute("VACUUM ANALYZE jobs")


def chain(n: int) -> list[NewJob]:
    jobs = [noop()]
    for _ in range(n - 1):
        jobs.append(noop(depends_on=[jobs[-1].id]))
    return jobs


def diamonds(n: int) -> list[NewJob]:
    jobs: list[NewJob] = []
    for _ in range(n):
        a = noop()
        b, c = noop(depends_on=[a.id]), noop(depends_on=[a.id])
        jobs += [a, b, c, noop(depends_on=[b.id, c.id])]
    return jobs


def fan(n: int) -> list[NewJob]:
    first = noop()
    middle = [noop(depends_on=[first.id]) for _ in range(n)]
    return [first, *middle, noop(depends_on=[m.id for m in middle])]


async def burn_down(urls: dict[str, str], a: argparse.Namespace) -> dict[str, Any]:
    rounds: dict[str, list[float]] = {name: [] for name in urls}
    shuffle = random.Random(a.seed)
    for r in range(a.rounds):
        order = list(urls.items())
        shuffle.shuffle(order)
        for name, url in order:
            conn = await asyncpg.connect(url)
            worker = WorkerProc(url, f"bench-{name}-{r}")
            try:
                await worker.ready(conn)
                seconds = await run_jobs(conn, [noop() for _ in range(a.jobs)])
            finally:
                worker.stop()
                await clean(conn)
                await conn.close()
            rounds[name].append(seconds)
            print(f"  round {r + 1} {name:14} {a.jobs / seconds:9.0f} jobs/s", flush=True)
    out: dict[str, Any] = {}
    for name, values in rounds.items():
        median = statistics.median(values)
        out[name] = {
            "seconds": [round(v, 3) for v in values],
            "median_s": round(median, 3),
            "jobs_per_s": round(a.jobs / median),
        }
    base = out["before"]["median_s"]
    for name in out:
        out[name]["vs_before_pct"] = round(100 * (out[name]["median_s"] / base - 1), 1)
    same_size = out["after+waiting"]["median_s"] / out["before+rows"]["median_s"]
    out["after+waiting"]["vs_before_rows_pct"] = round(100 * (same_size - 1), 1)
    return out


async def statements(urls: dict[str, str], reps: int, seed: int) -> dict[str, Any]:
    """Median ms of one claim and one ack of 1,000 jobs, per database (see the module doc), on
    sessions with the worker's claim and write settings: without them the planner may join
    the batch by a walk of the whole primary key, or loop over it once per row, and that, not
    the triggers, is what would be measured."""
    conns = {
        name: await asyncpg.connect(url, server_settings=WRITE_SESSION_SETTINGS)
        for name, url in urls.items()
    }
    claimers = {
        name: await asyncpg.connect(url, server_settings=CLAIM_SESSION_SETTINGS)
        for name, url in urls.items()
    }
    times: dict[str, dict[str, list[float]]] = {n: {"claim": [], "ack": []} for n in urls}
    shuffle = random.Random(seed)
    try:
        for r in range(reps):
            order = list(conns.items())
            shuffle.shuffle(order)
            for name, conn in order:
                jobs = [noop() for _ in range(1000)]
                await job_insert_many(conn, jobs)
                t0 = time.perf_counter()
                rows = await job_claim_available(
                    claimers[name], "bench", 1000, ["bench.noop@1"], None, 60
                )
                t1 = time.perf_counter()
                ids = [row["id"] for row in rows]
                done = await job_complete_many(
                    conn, "bench", ids, [1] * len(ids), ["null"] * len(ids), [0.0] * len(ids)
                )
                t2 = time.perf_counter()
                if len(done) != 1000:
                    raise RuntimeError(f"{name}: acked {len(done)} of 1000")
                times[name]["claim"].append(1000 * (t1 - t0))
                times[name]["ack"].append(1000 * (t2 - t1))
                if r % 10 == 9:
                    await clean(conn)
    finally:
        for conn in conns.values():
            await clean(conn)
            await conn.close()
        for conn in claimers.values():
            await conn.close()
    out: dict[str, Any] = {}
    for name, t in times.items():
        out[name] = {k: round(statistics.median(v), 2) for k, v in t.items()}
    for name in out:
        for k in ("claim", "ack"):
            out[name][f"{k}_vs_before_pct"] = round(100 * (out[name][k] / out["before"][k] - 1), 1)
    for name, r in out.items():
        print(f"  {name:14} claim {r['claim']:7.2f} ms  ack {r['ack']:7.2f} ms", flush=True)
    return out


async def graphs(url: str, a: argparse.Namespace) -> dict[str, Any]:
    shapes = {
        "chain": lambda: chain(a.chain),
        "diamonds": lambda: diamonds(a.diamonds),
        "fan_out_in": lambda: fan(a.fan),
        "independent": lambda: [noop() for _ in range(a.fan + 2)],
    }
    out: dict[str, Any] = {}
    conn = await asyncpg.connect(url)
    worker = WorkerProc(url, "bench-graphs")
    try:
        await worker.ready(conn)
        for name, make in shapes.items():
            jobs = make()
            seconds = await run_jobs(conn, jobs)
            out[name] = {
                "jobs": len(jobs),
                "seconds": round(seconds, 3),
                "jobs_per_s": round(len(jobs) / seconds),
            }
            print(f"  {name:12} {len(jobs):6} jobs {seconds:7.3f} s", flush=True)
            await clean(conn)
    finally:
        worker.stop()
        await conn.close()
    out["fan_vs_independent"] = round(
        out["fan_out_in"]["seconds"] / out["independent"]["seconds"], 2
    )
    return out


async def main() -> tuple[str, dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--waiting", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--acks", type=int, default=60)
    ap.add_argument("--seed", type=int, default=16, help="of the shuffled orders")
    ap.add_argument("--chain", type=int, default=200)
    ap.add_argument("--diamonds", type=int, default=250)
    ap.add_argument("--fan", type=int, default=1000)
    ap.add_argument("--out", default="")
    ap.add_argument("--quick", action="store_true", help="small sizes, one round")
    a = ap.parse_args()
    if a.quick:
        a.jobs, a.waiting, a.rounds, a.chain, a.diamonds, a.fan = 2000, 2000, 1, 20, 25, 100
        a.acks = 4
    cluster = LocalCluster(fast=True, settings=SETTINGS).start()
    try:
        urls = {
            "before": await database(cluster, "deps_before", True),
            "after": await database(cluster, "deps_after", False),
            "after+waiting": await database(cluster, "deps_waiting", False),
            "before+rows": await database(cluster, "deps_rows", True),
        }
        conn = await asyncpg.connect(urls["after+waiting"])
        try:
            await add_waiting(conn, a.waiting)
        finally:
            await conn.close()
        conn = await asyncpg.connect(urls["before+rows"])
        try:
            await add_delayed(conn, a.waiting + 100)
        finally:
            await conn.close()
        t0 = time.perf_counter()
        print(f"burn-down of {a.jobs} no-op jobs, {a.rounds} rounds", flush=True)
        burn = await burn_down(urls, a)
        print(f"claim and ack of 1,000 jobs, {a.acks} times each", flush=True)
        acks = await statements(urls, a.acks, a.seed)
        print("graphs", flush=True)
        shapes = await graphs(urls["after"], a)
        result = {
            "jobs": a.jobs,
            "waiting": a.waiting,
            "rounds": a.rounds,
            "burn_down": burn,
            "statements": acks,
            "graphs": shapes,
            "took_s": round(time.perf_counter() - t0, 1),
        }
    finally:
        cluster.stop()
    print()
    print("| burn-down | median s | jobs/s | vs before |")
    print("|---|---|---|---|")
    for name, r in burn.items():
        print(f"| {name} | {r['median_s']} | {r['jobs_per_s']} | {r['vs_before_pct']:+.1f}% |")
    same_size = burn["after+waiting"]["vs_before_rows_pct"]
    print(f"after+waiting vs before+rows (dependencies, same table size): {same_size:+.1f}%")
    print()
    print("| 1,000 jobs | claim ms | vs before | ack ms | vs before |")
    print("|---|---|---|---|---|")
    for name, r in acks.items():
        print(
            f"| {name} | {r['claim']} | {r['claim_vs_before_pct']:+.1f}% | {r['ack']} "
            f"| {r['ack_vs_before_pct']:+.1f}% |"
        )
    print()
    print("| graph | jobs | s | jobs/s |")
    print("|---|---|---|---|")
    for name in ("chain", "diamonds", "fan_out_in", "independent"):
        g = shapes[name]
        print(f"| {name} | {g['jobs']} | {g['seconds']} | {g['jobs_per_s']} |")
    print(f"fan-out/fan-in / independent: {shapes['fan_vs_independent']}x")
    return a.out, result


if __name__ == "__main__":
    out, result = asyncio.run(main())
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=2)
