"""Read scaling (issue 19, target 6): what DATABASE_READ_URL costs the writes and moves off
the primary.

One primary with the peers' settings (fsync and synchronous_commit on) and a hot standby
streaming from it (`LocalCluster.standby_of`), both on loopback. For each mode, primary only
and with the replica, rounds alternating: an API process (`jobserver.cli.api`), then
- `POST /v1/jobs` with wrk at 64 connections: requests/s, p50/p99 and the primary's
  transactions (with the replica every answer also carries `X-Jobserver-Lsn`: WAL position
  reads shared by the writes that finish together);
- `GET /v1/jobs?limit=20` with wrk at 16 connections, by a token that writes nothing: requests/s
  and the transactions each server committed meanwhile (`pg_stat_database.xact_commit`).

Needs wrk. Usage: `python bench/read_replica.py [--seconds 10] [--rounds 2] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

import asyncpg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/

from benchlib import wait_http

from jobserver.auth import create_token
from jobserver.db import migrate
from jobserver.db.definitions import definition_upsert
from jobserver.db.pool import connect
from jobserver.registry import load_modules
from jobserver.testing.cluster import LocalCluster, free_port

SETTINGS = {
    "shared_buffers": "256MB",
    "max_connections": "200",
    "fsync": "on",
    "synchronous_commit": "on",
}
DB = "reads"
POST_LUA = """
wrk.method = "POST"
wrk.body = '{"definitionKey":"echo","params":{"message":"x"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""
GET_LUA = """
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer %s"
"""


def wrk(url: str, lua: str, seconds: int, connections: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name, url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    os.unlink(f.name)

    def ms(label: str) -> float | None:
        m = re.search(rf"^\s+{label}\s+([0-9.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return None
        v = float(m.group(1))
        return round(v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v, 2)

    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_s": float(rps.group(1)) if rps else None,
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "non_2xx": int(bad.group(1)) if bad else 0,
    }


async def commits(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        n: int = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", DB
        )
        return n
    finally:
        await conn.close()


async def prepare(primary: LocalCluster) -> dict[str, str]:
    admin = await asyncpg.connect(primary.url())
    try:
        await admin.execute(f'CREATE DATABASE "{DB}"')
    finally:
        await admin.close()
    await migrate.upgrade_async(primary.url(DB))
    conn = await connect(primary.url(DB))
    try:
        for d in load_modules().all():
            await definition_upsert(conn, d.metadata())
        return {
            "writer": await create_token(conn, "writer", [], "writer"),
            "reader": await create_token(conn, "reader", ["view_jobs"], "reader"),
        }
    finally:
        await conn.close()


def spawn_api(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "jobserver.cli.api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )


async def one_round(
    primary: LocalCluster, standby: LocalCluster, tokens: dict[str, str], replica: bool, s: int
) -> dict[str, Any]:
    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=primary.url(DB),
        PORT=str(port),
        HOST="127.0.0.1",
        LOG_LEVEL="WARNING",
    )
    if replica:
        env["DATABASE_READ_URL"] = standby.url(DB)
    api = spawn_api(env)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_http(base + "/healthz")
        before = await commits(primary.url(DB))
        post = await asyncio.to_thread(wrk, base + "/v1/jobs", POST_LUA % tokens["writer"], s, 64)
        p0, s0 = await commits(primary.url(DB)), await commits(standby.url(DB))
        post["primary_commits"] = p0 - before  # group commits, plus the WAL position reads
        get = await asyncio.to_thread(
            wrk, base + "/v1/jobs?limit=20", GET_LUA % tokens["reader"], s, 16
        )
        p1, s1 = await commits(primary.url(DB)), await commits(standby.url(DB))
        get["primary_commits"] = p1 - p0
        get["replica_commits"] = s1 - s0
        return {"replica": replica, "post_v1_jobs": post, "get_v1_jobs": get}
    finally:
        api.terminate()
        api.wait(30)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    primary = LocalCluster(fast=False, settings=SETTINGS).start()
    try:
        standby = LocalCluster.standby_of(primary)
        try:
            tokens = await prepare(primary)
            rounds = []
            for _ in range(args.rounds):
                for replica in (False, True):
                    r = await one_round(primary, standby, tokens, replica, args.seconds)
                    print(json.dumps(r), flush=True)
                    rounds.append(r)
        finally:
            standby.stop()
    finally:
        primary.stop()
    return rounds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    rounds = asyncio.run(run(args))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rounds, f, indent=1)


if __name__ == "__main__":
    main()
