"""Transactional enqueue (`jobserver.client.transactional`) per kind of connection: jobs/s
for one job per committed transaction, and for `enqueue_many` of 1,000 jobs in one.

Each kind runs the same checks and the same insert statement; the figures say what the
driver adds (psycopg's and SQLAlchemy's round trips against asyncpg's prepared statements).
The job is `echo` (a params schema, no stored references): per job one definition read and
one insert, plus the commit. Run: `.venv/bin/python bench/transactional_enqueue.py [--quick]
[--out FILE.json]`; bench/run runs it too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import psycopg
from benchlib import new_database
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from jobserver.client.transactional import enqueue, enqueue_many
from jobserver.db import migrate
from jobserver.db.definitions import definition_upsert
from jobserver.db.pool import connect
from jobserver.db.urls import asyncpg_url
from jobserver.registry import load_modules
from jobserver.testing.cluster import LocalCluster

SETTINGS = {"shared_buffers": "256MB", "fsync": "on"}
KINDS = ("asyncpg", "psycopg", "psycopg-async", "sqlalchemy-session", "sqlalchemy-async-session")
PARAMS = {"message": "hi"}


def log(msg: str) -> None:
    print(f"[transactional_enqueue {time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def fresh_db(cluster: LocalCluster) -> str:
    url = await new_database(cluster, "bench_txenqueue")
    await migrate.upgrade_async(url)
    conn = await connect(url)
    try:
        for d in load_modules().all():
            await definition_upsert(conn, d.metadata())
    finally:
        await conn.close()
    return url


def _sa(url: str, driver: str) -> str:
    return f"postgresql+{driver}" + asyncpg_url(url).removeprefix("postgresql")


async def timed(kind: str, url: str, singles: int, batch: int, rounds: int) -> dict[str, Any]:
    """(singles jobs/s, batch jobs/s) for one kind of connection."""
    plain = asyncpg_url(url)
    many = [{"definition_key": "echo", "params": PARAMS}] * batch
    one: Callable[[], Awaitable[None]]
    bulk: Callable[[], Awaitable[None]]
    closing: list[Callable[[], Any]] = []
    if kind == "asyncpg":
        import asyncpg

        aconn = await asyncpg.connect(plain)
        closing.append(aconn.close)

        async def one() -> None:
            async with aconn.transaction():
                await enqueue(aconn, "echo", PARAMS)

        async def bulk() -> None:
            async with aconn.transaction():
                await enqueue_many(aconn, many)

    elif kind == "psycopg":
        sconn = psycopg.connect(plain)
        closing.append(sconn.close)

        async def one() -> None:
            with sconn.transaction():
                enqueue(sconn, "echo", PARAMS)

        async def bulk() -> None:
            with sconn.transaction():
                enqueue_many(sconn, many)

    elif kind == "psycopg-async":
        pconn = await psycopg.AsyncConnection.connect(plain)
        closing.append(pconn.close)

        async def one() -> None:
            async with pconn.transaction():
                await enqueue(pconn, "echo", PARAMS)

        async def bulk() -> None:
            async with pconn.transaction():
                await enqueue_many(pconn, many)

    elif kind == "sqlalchemy-session":
        engine = create_engine(_sa(url, "psycopg"))
        closing.append(engine.dispose)

        async def one() -> None:
            with Session(engine) as s, s.begin():
                enqueue(s, "echo", PARAMS)

        async def bulk() -> None:
            with Session(engine) as s, s.begin():
                enqueue_many(s, many)

    else:
        aengine = create_async_engine(_sa(url, "asyncpg"))
        closing.append(aengine.dispose)

        async def one() -> None:
            async with AsyncSession(aengine) as s, s.begin():
                await enqueue(s, "echo", PARAMS)

        async def bulk() -> None:
            async with AsyncSession(aengine) as s, s.begin():
                await enqueue_many(s, many)

    try:
        await one()  # warm: connect, prepare, first definition read
        start = time.perf_counter()
        for _ in range(singles):
            await one()
        single_rate = singles / (time.perf_counter() - start)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            await bulk()
            times.append(time.perf_counter() - start)
        return {
            "single_tx_jobs_per_s": round(single_rate),
            "many_jobs_per_s": round(batch / statistics.median(times)),
        }
    finally:
        for close in closing:
            result = close()
            if asyncio.iscoroutine(result):
                await result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"cpus": os.cpu_count(), "singles": args.singles}
    result["batch"] = args.batch
    with LocalCluster(fast=False, settings=SETTINGS) as cluster:
        url = await fresh_db(cluster)
        for kind in KINDS:
            result[kind] = await timed(kind, url, args.singles, args.batch, args.rounds)
            log(f"{kind}: {json.dumps(result[kind])}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--singles", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.quick:
        args.singles, args.rounds = 100, 1
    result = asyncio.run(run(args))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
