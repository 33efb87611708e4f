"""Parts 2-4 of bench/growth.py: a worker's burn-down against the pruner, and a long churn.

- `burn_down`: one worker process (`jobserver.cli.worker`, default settings) on the grown
  table until it has finished `n` jobs: its rate over the wall clock (start-up included) and
  its steady rate (first completion to last, read from finished_at).
- `prune`: the scheduler's own `Pruner.run_once` (every batch `job_prune_finished` of
  PRUNE_BATCH_SIZE rows, at most its 100 batches a run) on the grown table with retention 0, so
  every run deletes the oldest finished rows with their events and attempts, as the pruner does
  once rows pass their retention. Its rate while it runs, and the rate the defaults allow over
  time: at most 100 batches per PRUNE_INTERVAL_SECONDS.
- `churn`: one worker processes `total` jobs (99 % echo@1, 1 % failing@1 with one retry, so
  attempts, events and DLQ rows are written too) fed in waves by `job_insert_many`, while a
  pruner loop (`job_prune_finished`, retention 0, PRUNE_BATCH_SIZE rows a statement; the DLQ
  rows discarded first, as an operator would) deletes what it finished; autovacuum as the
  server has it. Every `sample` jobs: the worker's RSS and every growing relation's heap,
  index and TOAST size, live and dead tuples and autovacuum runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg
from extra import Env, rss_mb

from jobserver.config import Settings
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.db.maintenance import job_prune_finished
from jobserver.db.pool import create_pool
from jobserver.scheduler.pruner import Pruner

MAX_BATCHES = 100  # Pruner's max_batches (not a setting)

SIZES_SQL = """
SELECT c.relname AS rel, pg_relation_size(c.oid) AS heap, pg_indexes_size(c.oid) AS indexes,
    coalesce(pg_total_relation_size(c.reltoastrelid), 0) AS toast,
    s.n_live_tup AS live, s.n_dead_tup AS dead, s.autovacuum_count AS autovacuums,
    s.autoanalyze_count AS autoanalyzes
FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind = 'r' AND pg_total_relation_size(c.oid) > 65536
ORDER BY pg_total_relation_size(c.oid) DESC
"""


def log(msg: str) -> None:
    print(f"[growth {time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def sizes(conn: asyncpg.Connection) -> dict[str, dict[str, Any]]:
    """Every relation over 64 kB: sizes in MB, tuples and autovacuum runs."""
    mb = 1024 * 1024
    out: dict[str, dict[str, Any]] = {}
    for r in await conn.fetch(SIZES_SQL):
        out[r["rel"]] = {
            "heap_mb": round(r["heap"] / mb, 1),
            "indexes_mb": round(r["indexes"] / mb, 1),
            "toast_mb": round(r["toast"] / mb, 1),
            "live": r["live"],
            "dead": r["dead"],
            "autovacuums": r["autovacuums"],
            "autoanalyzes": r["autoanalyzes"],
        }
    return out


async def burn_down(env: Env, url: str, n: int, timeout: float) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        t0 = await conn.fetchval("SELECT now()")
        sql = "SELECT count(*) FROM jobs WHERE finished_at > $1 AND status = 'succeeded'"
        started = time.monotonic()
        w = env.spawn("jobserver.cli.worker", url, "burn-down")
        try:
            done = 0
            while done < n and time.monotonic() - started < timeout:
                if w.poll() is not None:
                    raise RuntimeError(f"worker exited with {w.returncode}")
                await asyncio.sleep(0.25)
                done = await conn.fetchval(sql, t0)
            wall = time.monotonic() - started
            rss = rss_mb(w.pid)
            timed_out = done < n
        finally:
            env.stop(w)
        row = await conn.fetchrow(
            "SELECT count(*) AS n, min(finished_at) AS first, max(finished_at) AS last"
            " FROM jobs WHERE finished_at > $1 AND status = 'succeeded'",
            t0,
        )
    finally:
        await conn.close()
    span = (row["last"] - row["first"]).total_seconds() if row["n"] else 0
    return {
        "wanted": n,
        "timed_out": timed_out,  # then the rates are of what it did in `timeout` seconds
        "jobs": row["n"],
        "wall_s": round(wall, 2),
        "wall_jobs_s": round(done / wall),
        "steady_jobs_s": round(row["n"] / span) if span > 0 else None,
        "worker_rss_mb": rss,
    }


async def prune(url: str, runs: int) -> dict[str, Any]:
    s = Settings()
    pool = await create_pool(url, s, max_size=2)
    pruner = Pruner(
        pool,
        interval=s.prune_interval_seconds,
        succeeded_seconds=0,
        cancelled_seconds=0,
        failed_seconds=0,
        batch=s.prune_batch_size,
    )
    count = "SELECT (SELECT count(*) FROM job_events), (SELECT count(*) FROM job_attempts)"
    per_run: list[dict[str, Any]] = []
    try:
        async with pool.acquire() as c:
            events0, attempts0 = await c.fetchrow(count)
        for _ in range(runs):
            t0 = time.perf_counter()
            totals = await pruner.run_once()
            dt = time.perf_counter() - t0
            per_run.append({"rows": totals["pruned"], "seconds": round(dt, 3), "by_status": totals})
            if totals["pruned"] == 0:
                break
        async with pool.acquire() as c:
            events1, attempts1 = await c.fetchrow(count)
        service = await _service_rate(pool, s, runs)
    finally:
        await pool.close()
    rows = sum(r["rows"] for r in per_run)
    seconds = sum(r["seconds"] for r in per_run)
    per_run_max = MAX_BATCHES * s.prune_batch_size
    return {
        "runs": per_run,
        "jobs_pruned": rows,
        "events_pruned": events0 - events1,
        "attempts_pruned": attempts0 - attempts1,
        "seconds": round(seconds, 2),
        "jobs_s": round(rows / seconds) if seconds else None,
        "batch": s.prune_batch_size,
        "interval_s": s.prune_interval_seconds,
        "rows_per_run_max": per_run_max,
        # the defaults: at most 100 batches per tick, one tick per interval (or per run's time)
        "sustained_ceiling_jobs_s": round(
            per_run_max / max(s.prune_interval_seconds, seconds / len(per_run))
        ),
        "service": service,
    }


class _CountingPruner(Pruner):
    pruned = 0

    async def run_once(self) -> dict[str, int]:
        totals = await super().run_once()
        self.pruned += totals["pruned"]
        return totals


async def _service_rate(pool: asyncpg.Pool, s: Settings, runs: int) -> dict[str, Any]:
    """The pruner as the scheduler runs it (its loop, PRUNE_INTERVAL_SECONDS between runs that
    were not full): `runs` runs timed from its start, at most 3 intervals."""
    p = _CountingPruner(
        pool,
        interval=s.prune_interval_seconds,
        succeeded_seconds=0,
        cancelled_seconds=0,
        failed_seconds=0,
        batch=s.prune_batch_size,
    )
    t0 = time.perf_counter()
    p.start()
    complete = True
    try:
        for k in range(1, runs + 1):
            await p.wait_runs(k, within=s.prune_interval_seconds + 60)
            if not p.behind():  # nothing more was due: the next run waits its interval
                break
    except TimeoutError:
        complete = False
    finally:
        dt = time.perf_counter() - t0
        await p.stop()
    return {
        "runs": p.runs,
        "all_runs_done": complete,
        "jobs_pruned": p.pruned,
        "seconds": round(dt, 2),
        "jobs_s": round(p.pruned / dt),
    }


def churn_jobs(n: int) -> list[NewJob]:
    """n jobs, every 100th failing@1 with one immediate retry (attempts, events, DLQ)."""
    return [
        NewJob("failing", 1, 2, params={}, retry_delays=[0.0])
        if i % 100 == 99
        else NewJob("echo", 1, 3, params={"message": "x"})
        for i in range(n)
    ]


async def _pruner_loop(url: str, stop: asyncio.Event, totals: dict[str, int]) -> None:
    s = Settings()
    conn = await asyncpg.connect(url)
    try:
        while not stop.is_set():
            await conn.execute("DELETE FROM dead_letter_jobs")  # an operator discarding them
            n = sum(
                (
                    await job_prune_finished(
                        conn,
                        succeeded_seconds=0,
                        cancelled_seconds=0,
                        failed_seconds=0,
                        limit=s.prune_batch_size,
                    )
                ).values()
            )
            totals["pruned"] += n
            if n < s.prune_batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        await conn.close()


async def churn(
    env: Env, url: str, total: int, wave: int, sample: int, timeout: float
) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    pending_sql = "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"
    stop = asyncio.Event()
    pruned = {"pruned": 0}
    pruner = asyncio.create_task(_pruner_loop(url, stop, pruned))
    w = env.spawn("jobserver.cli.worker", url, "churn")
    samples: list[dict[str, Any]] = []
    inserted = 0
    next_sample = 0
    t0 = time.monotonic()
    try:
        while True:
            if w.poll() is not None:
                raise RuntimeError(f"churn worker exited with {w.returncode}")
            if pruner.done():
                pruner.result()  # raises its error
            pending = await conn.fetchval(pending_sql)
            processed = inserted - pending
            if processed >= next_sample:
                samples.append(
                    {
                        "processed": processed,
                        "elapsed_s": round(time.monotonic() - t0, 1),
                        "worker_rss_mb": rss_mb(w.pid),
                        "pruned": pruned["pruned"],
                        "sizes": await sizes(conn),
                    }
                )
                log(
                    f"churn: {processed:,} processed, rss {samples[-1]['worker_rss_mb']} MB,"
                    f" jobs {_mb(samples[-1]['sizes'], 'jobs')} MB"
                )
                next_sample += sample
            if processed >= total:
                break
            if inserted < total and pending < wave // 2:
                n = min(wave, total - inserted)
                for i in range(0, n, 1000):
                    await job_insert_many(conn, churn_jobs(min(1000, n - i)))
                inserted += n
            elif time.monotonic() - t0 > timeout:  # report what was done
                log(f"churn: only {processed:,}/{total:,} in {timeout} s: stopping there")
                total = processed
                break
            else:
                await asyncio.sleep(0.2)
        wall = time.monotonic() - t0
        rss_end = rss_mb(w.pid)
    finally:
        env.stop(w)
        stop.set()
        await pruner
    try:
        # what is left once the pruner has caught up, then after a plain VACUUM
        await _pruner_drain(url)
        caught_up = await sizes(conn)
        await conn.execute("VACUUM (ANALYZE)")
        vacuumed = await sizes(conn)
        settings = dict(
            await conn.fetch(
                "SELECT name, setting FROM pg_settings WHERE name LIKE 'autovacuum%' ORDER BY name"
            )
        )
        reloptions = await conn.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'jobs'")
    finally:
        await conn.close()
    rss = [s["worker_rss_mb"] for s in samples if s["worker_rss_mb"]]
    after_first = [s["worker_rss_mb"] for s in samples if s["processed"] >= sample]
    return {
        "jobs": total,
        "wave": wave,
        "wall_s": round(wall, 1),
        "jobs_s": round(total / wall),
        "samples": samples,
        "worker_rss_mb": {
            "first": rss[0] if rss else None,
            "after_first_sample": after_first[0] if after_first else None,
            "max": max(rss) if rss else None,
            "end": rss_end,
        },
        "sizes_caught_up": caught_up,
        "sizes_after_vacuum": vacuumed,
        "autovacuum_settings": settings,
        "jobs_reloptions": reloptions,
    }


async def _pruner_drain(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DELETE FROM dead_letter_jobs")
        while sum(
            (
                await job_prune_finished(
                    conn,
                    succeeded_seconds=0,
                    cancelled_seconds=0,
                    failed_seconds=0,
                    limit=10_000,
                )
            ).values()
        ):
            pass
    finally:
        await conn.close()


def _mb(sz: dict[str, dict[str, Any]], rel: str) -> float | None:
    r = sz.get(rel)
    return None if r is None else round(r["heap_mb"] + r["indexes_mb"] + r["toast_mb"], 1)
