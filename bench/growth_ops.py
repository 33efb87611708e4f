"""Part 1 of bench/growth.py: the hot statements and the listing routes, small table vs grown.

Each operation runs in rounds that alternate between the two databases (empty first on even
rounds, grown first on odd ones), so a burst of load from the shared machine falls on both:

- claim N / complete N: `job_claim_available` on a session with the worker's claim settings
  (CLAIM_SESSION_SETTINGS, the statement prepared as the worker prepares it) and
  `job_complete_many` of the claimed rows on a session with its write settings, as the worker's
  claim loop and ack buffer call them;
- insert 1 / insert 1,000: `job_insert_many` (the one insert path);
- the API: `POST /v1/jobs`, `GET /v1/jobs` (newest first), with a status filter (succeeded, and
  queued), and `GET /v1/jobs/count` with and without a filter, each one request at a time,
  timed by the client around the whole request.

`explain` runs a db function once on a connection that records `EXPLAIN (ANALYZE, BUFFERS)` of
every statement it sends (inside a transaction rolled back after: the claim's UPDATE is not
kept), so the plans are those of the exact statements the routes and the worker run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import aiohttp
import asyncpg

from jobserver.config import Settings
from jobserver.db import job_runs
from jobserver.db.job_counts import job_status_counts
from jobserver.db.jobs import JobFilter, NewJob, job_count, job_insert_many, job_list
from jobserver.db.pool import connect
from jobserver.registry import load_modules
from jobserver.worker.worker import Worker

WORKER_ID = "growth-bench"
REFS = ["echo@1"]
COUNT_CAP = 10_000  # the API's COUNT_CAP (jobserver/api/jobs.py)
POST_BODY = json.dumps({"definitionKey": "echo", "params": {"message": "x"}})
ROUTES = [
    ("GET /v1/jobs", "/v1/jobs", {}),
    ("GET /v1/jobs?status=succeeded", "/v1/jobs", {"status": "succeeded"}),
    ("GET /v1/jobs?status=queued", "/v1/jobs", {"status": "queued"}),
    ("GET /v1/jobs/count", "/v1/jobs/count", {}),
    ("GET /v1/jobs/count?status=queued", "/v1/jobs/count", {"status": "queued"}),
]


@dataclass
class Side:
    """One database under test (the small table or the grown one) and its sessions."""

    name: str
    url: str
    base: str = ""
    token: str = ""
    claim: asyncpg.Connection | None = None
    ack: asyncpg.Connection | None = None
    plain: asyncpg.Connection | None = None
    http: aiohttp.ClientSession | None = None
    times: dict[str, list[float]] = field(default_factory=dict)

    async def open(self) -> None:
        self.claim = await connect(self.url, server_settings=job_runs.CLAIM_SESSION_SETTINGS)
        await job_runs.job_runs_prepare(self.claim, claim=True)
        self.ack = await connect(self.url, server_settings=job_runs.WRITE_SESSION_SETTINGS)
        await job_runs.job_runs_prepare(self.ack)
        self.plain = await connect(self.url)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        self.http = aiohttp.ClientSession(headers=headers)

    async def close(self) -> None:
        for c in (self.claim, self.ack, self.plain):
            if c is not None:
                await c.close()
        if self.http is not None:
            await self.http.close()

    def record(self, op: str, ms: float) -> None:
        self.times.setdefault(op, []).append(ms)


@lru_cache(maxsize=1)
def worker_claim() -> tuple[list[str], dict[str, int]]:
    """(refs, concurrency limits) of a worker with the shipped definitions, as
    `jobserver.cli.worker` claims them: encode.video's concurrencyLimit makes every claim of
    such a worker a limited claim (`_CLAIM_LIMITED`)."""
    w = Worker(Settings(), load_modules())
    return list(w.claims._refs), dict(w.claims._limits or {})


async def claim(conn: Any, n: int, limited: bool) -> list[asyncpg.Record]:
    if limited:
        refs, limits = worker_claim()
        return await job_runs.job_claim_available(conn, WORKER_ID, n, refs, None, 300.0, limits)
    return await job_runs.job_claim_available(conn, WORKER_ID, n, REFS, None, 300.0)


async def claim_and_complete(side: Side, n: int, limited: bool = False) -> int:
    """One claim of up to `n` jobs and the completion of what it got, each timed."""
    assert side.claim is not None and side.ack is not None
    t0 = time.perf_counter()
    rows = await claim(side.claim, n, limited)
    t1 = time.perf_counter()
    if not rows:
        raise RuntimeError(f"{side.name}: nothing left to claim")
    ids = [r["id"] for r in rows]
    done = await job_runs.job_complete_many(
        side.ack,
        WORKER_ID,
        ids,
        [r["attempt"] for r in rows],
        ['{"ok":true}'] * len(ids),
        [0.0] * len(ids),
    )
    t2 = time.perf_counter()
    if len(done) != len(ids):
        raise RuntimeError(f"{side.name}: {len(ids) - len(done)} completions fenced off")
    side.record(f"claim {n}{' (worker limits)' if limited else ''}", (t1 - t0) * 1000)
    side.record(f"complete {n}", (t2 - t1) * 1000)
    return len(ids)


def new_jobs(n: int) -> list[NewJob]:
    return [NewJob("echo", 1, 3, params={"message": "x"}) for _ in range(n)]


async def insert(side: Side, n: int) -> None:
    assert side.plain is not None
    jobs = new_jobs(n)
    t0 = time.perf_counter()
    await job_insert_many(side.plain, jobs)
    side.record(f"insert {n}", (time.perf_counter() - t0) * 1000)


async def post_job(side: Side) -> None:
    assert side.http is not None
    t0 = time.perf_counter()
    async with side.http.post(side.base + "/v1/jobs", data=POST_BODY) as r:
        body = await r.read()
        if r.status != 201:
            raise RuntimeError(f"POST /v1/jobs -> {r.status}: {body[:300]!r}")
    side.record("POST /v1/jobs", (time.perf_counter() - t0) * 1000)


async def get_route(side: Side, name: str, path: str, params: dict[str, str]) -> None:
    assert side.http is not None
    t0 = time.perf_counter()
    async with side.http.get(side.base + path, params=params) as r:
        body = await r.read()
        if r.status != 200:
            raise RuntimeError(f"{name} -> {r.status}: {body[:300]!r}")
    side.record(name, (time.perf_counter() - t0) * 1000)


async def alternate(
    sides: tuple[Side, Side], rounds: int, step: Callable[[Side], Awaitable[Any]]
) -> None:
    """`rounds` of `step` on both sides, the order flipped every round."""
    for i in range(rounds):
        for side in sides if i % 2 == 0 else sides[::-1]:
            await step(side)


async def run_reads_and_inserts(sides: tuple[Side, Side], sc: dict[str, int]) -> None:
    """The API routes and the inserts (a warm-up round first, not recorded); run before the
    small table gets the queued jobs its claims take, so its listing is that of a small table."""
    for side in sides:  # warm-up: caches, prepared statements, the API's first requests
        await insert(side, 1)
        await post_job(side)
        for name, path, params in ROUTES:
            await get_route(side, name, path, params)
        side.times.clear()
    for name, path, params in ROUTES:
        await alternate(
            sides, sc["http_rounds"], lambda s, n=name, p=path, q=params: get_route(s, n, p, q)
        )
    await alternate(sides, sc["http_rounds"], post_job)
    await alternate(sides, sc["insert_rounds"], lambda s: insert(s, 1))
    await alternate(sides, max(5, sc["insert_rounds"] // 5), lambda s: insert(s, 1000))


async def run_claims(sides: tuple[Side, Side], sc: dict[str, int]) -> None:
    """Claim and complete, in the worker's batch and one at a time (a warm-up claim first)."""
    kept = [dict(side.times) for side in sides]
    for side in sides:
        await claim_and_complete(side, sc["claim_batch"])
    for side, times in zip(sides, kept, strict=True):
        side.times = times
    await alternate(sides, sc["claim_rounds"], lambda s: claim_and_complete(s, sc["claim_batch"]))
    await alternate(sides, sc["claim_rounds"], lambda s: claim_and_complete(s, 1))
    rounds = max(3, sc["claim_rounds"] // 10)  # the limited claim can take seconds a round
    await alternate(sides, rounds, lambda s: claim_and_complete(s, sc["claim_batch"], True))


# -- plans ----------------------------------------------------------------------------------------


class Explaining:
    """A connection that answers as asyncpg's but first records the plan of each statement."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.plans: list[dict[str, Any]] = []

    async def _explain(self, sql: str, args: tuple[Any, ...]) -> None:
        if sql.lstrip().upper().startswith("EXPLAIN"):
            return
        savepoint = self._conn.transaction()  # what EXPLAIN ANALYZE wrote is undone
        await savepoint.start()
        try:
            rows = await self._conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
        finally:
            await savepoint.rollback()
        self.plans.append({"sql": " ".join(sql.split())[:400], "plan": [r[0] for r in rows]})

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        await self._explain(sql, args)
        return await self._conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        await self._explain(sql, args)
        return await self._conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        await self._explain(sql, args)
        return await self._conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        await self._explain(sql, args)
        return await self._conn.execute(sql, *args)

    def transaction(self) -> Any:
        return self._conn.transaction()


async def explain(conn: asyncpg.Connection, call: Callable[[Any], Awaitable[Any]]) -> list[Any]:
    """The plans of the statements `call(connection)` runs, nothing of it kept."""
    proxy = Explaining(conn)
    tr = conn.transaction()
    await tr.start()
    try:
        await call(proxy)
    finally:
        await tr.rollback()
    return proxy.plans


async def claim_plans(side: Side, claim_batch: int) -> dict[str, list[Any]]:
    """The plans of the claim and the completion on this side."""
    assert side.claim is not None and side.ack is not None
    out: dict[str, list[Any]] = {}

    async def claim_plain(c: Any) -> None:
        await claim(c, claim_batch, False)

    async def claim_limited(c: Any) -> None:
        await claim(c, claim_batch, True)

    async def complete(c: Any) -> None:
        rows = await job_runs.job_claim_available(
            side.ack, WORKER_ID, claim_batch, REFS, None, 300.0
        )
        await job_runs.job_complete_many(
            c,
            WORKER_ID,
            [r["id"] for r in rows],
            [r["attempt"] for r in rows],
            ["{}"] * len(rows),
            [0.0] * len(rows),
        )

    out[f"claim {claim_batch}"] = await explain(side.claim, claim_plain)
    out[f"claim {claim_batch} (worker limits)"] = await explain(side.claim, claim_limited)
    out[f"complete {claim_batch}"] = await explain(side.ack, complete)
    return out


async def read_plans(side: Side) -> dict[str, list[Any]]:
    """The plans of the inserts and the routes on this side (the routes' statements through
    the same db functions the handlers call, for a token with view_jobs: no owner filter)."""
    assert side.plain is not None
    out: dict[str, list[Any]] = {}
    out["insert 1"] = await explain(side.plain, lambda c: job_insert_many(c, new_jobs(1)))
    out["insert 1000"] = await explain(side.plain, lambda c: job_insert_many(c, new_jobs(1000)))
    for name, _, params in ROUTES:
        flt = JobFilter(statuses=[params["status"]] if "status" in params else [])
        if "count" in name:
            out[name] = await explain(side.plain, lambda c, f=flt: job_count(c, f, COUNT_CAP))
        else:

            async def listing(c: Any, f: JobFilter = flt) -> None:
                await job_list(c, f, limit=21)
                await job_status_counts(c, f, COUNT_CAP)

            out[name] = await explain(side.plain, listing)
    return out


def walked(plan: list[str]) -> list[str]:
    """The plan lines that say what a statement read: its scans, with rows and buffers."""
    keep = ("Scan", "Buffers", "rows=", "Execution Time", "Planning Time")
    return [line for line in plan if any(k in line for k in keep)][:40]
