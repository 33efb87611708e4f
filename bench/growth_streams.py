"""Part 5 of bench/growth.py: one API process holding `n` open `GET /v1/stream` connections.

The API's RSS is read (from /proc) when it is idle after one request, once every stream has
its `hello`, and once every stream has received at least one `job` event while jobs change
state (submitted, claimed, completed through the db functions the API and the worker use,
each of which announces on the feed), and after the streams are closed. Every stream's count
of job events is kept: the check is that all of them received events, not most.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from extra import Env, rss_mb, start_api

from jobserver.db import job_runs
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.db.pool import connect

WORKER_ID = "growth-streams"


class Stream:
    def __init__(self) -> None:
        self.hello = asyncio.Event()
        self.got_job = asyncio.Event()
        self.jobs = 0
        self.resyncs = 0
        self.status: int | None = None


async def _read(s: aiohttp.ClientSession, url: str, st: Stream) -> None:
    async with s.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as r:
        st.status = r.status
        if r.status != 200:
            st.hello.set()
            return
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line == "event: hello":
                st.hello.set()
            elif line == "event: job":
                st.jobs += 1
                st.got_job.set()
            elif line == "event: resync":
                st.resyncs += 1


async def _changes(url: str, stop: asyncio.Event) -> int:
    """Submit, claim and complete jobs in rounds of 50 until `stop`; returns the jobs done."""
    conn = await connect(url, server_settings=job_runs.CLAIM_SESSION_SETTINGS)
    done = 0
    try:
        while not stop.is_set():
            await job_insert_many(conn, [NewJob("echo", 1, 3, params={}) for _ in range(50)])
            rows = await job_runs.job_claim_available(conn, WORKER_ID, 50, ["echo@1"], None, 60)
            await job_runs.job_complete_many(
                conn,
                WORKER_ID,
                [r["id"] for r in rows],
                [r["attempt"] for r in rows],
                ["{}"] * len(rows),
                [0.0] * len(rows),
            )
            done += len(rows)
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return done


async def streams(env: Env, url: str, n: int, timeout: float = 120) -> dict[str, Any]:
    api, base, token = await start_api(env, url, "streams")
    out: dict[str, Any] = {"streams": n}
    try:
        headers = {"Authorization": f"Bearer {token}"}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(headers=headers, connector=connector) as s:
            async with s.get(base + "/v1/jobs") as r:
                await r.read()
            await asyncio.sleep(1)  # let the first request's allocations settle
            out["api_rss_idle_mb"] = rss_mb(api.pid)
            subs = [Stream() for _ in range(n)]
            t0 = time.monotonic()
            tasks = [asyncio.create_task(_read(s, base + "/v1/stream", st)) for st in subs]
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(st.hello.wait() for st in subs))
            out["open_s"] = round(time.monotonic() - t0, 2)
            statuses: dict[str, int] = {}
            for st in subs:
                statuses[str(st.status)] = statuses.get(str(st.status), 0) + 1
            out["statuses"] = statuses
            out["api_rss_open_mb"] = rss_mb(api.pid)
            stop = asyncio.Event()
            changer = asyncio.create_task(_changes(url, stop))
            t1 = time.monotonic()
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*(st.got_job.wait() for st in subs if st.status == 200))
                out["all_received_s"] = round(time.monotonic() - t1, 2)
                await asyncio.sleep(5)  # events keep flowing to every stream for a while
            except TimeoutError:
                out["all_received_s"] = None
            stop.set()
            out["jobs_changed"] = await changer
            out["api_rss_flowing_mb"] = rss_mb(api.pid)
            counts = sorted(st.jobs for st in subs)
            out["received_events"] = {"min": counts[0], "median": counts[n // 2], "max": counts[-1]}
            out["streams_with_events"] = sum(1 for c in counts if c > 0)
            out["resyncs"] = sum(st.resyncs for st in subs)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(2)  # a figure, not a check: the server drops the closed streams
        out["api_rss_closed_mb"] = rss_mb(api.pid)
        open_, idle = out["api_rss_open_mb"], out["api_rss_idle_mb"]
        if open_ and idle:
            out["kb_per_stream"] = round((out["api_rss_flowing_mb"] - idle) * 1024 / n, 1)
    finally:
        env.stop(api)
    return out
