"""Scenario 6: many concurrent clients submit through POST /v1/jobs and /v1/jobs/batch.

CLIENTS clients (one connection each) submit for DURATION seconds: single jobs, batches of
BATCH, and submissions under a small shared pool of idempotency keys that several clients race
on. Audit: zero 5xx, every id the API acknowledged is a row, each idempotency key maps to exactly
one job (a repeat answered 200 with the same id), and two workers run every job to the end.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import asyncpg
import pytest

from tests.faults.conftest import Row
from tests.faults.helpers import (
    HttpStats,
    Procs,
    active_workers,
    audit,
    job_body,
    post_json,
    scaled,
    wait_for,
    wait_terminal,
)

pytestmark = [pytest.mark.faults, pytest.mark.scenario("6. API under load")]

CLIENTS = scaled(200, 400)
DURATION = scaled(30.0, 120.0)
BATCH = 10
IDEM_KEYS = 50


async def test_concurrent_submitters(
    db: asyncpg.Pool, procs: Procs, tokens: dict[str, str], report: Row
) -> None:
    _, base = await procs.api(env={"LOG_LEVEL": "WARNING", "DB_POOL_MAX": "20"})
    stats = HttpStats()
    idem_ids: dict[str, set[uuid.UUID]] = {}
    token = tokens["alice"]
    deadline = time.monotonic() + DURATION

    async def client(n: int, session: aiohttp.ClientSession) -> None:
        i = 0
        while time.monotonic() < deadline:
            i += 1
            kind = (n + i) % 3
            if kind == 0:
                await post_json(session, f"{base}/v1/jobs", job_body(i, ms=1), token, stats)
            elif kind == 1:
                body = {"jobs": [job_body(i * 100 + k, ms=1) for k in range(BATCH)]}
                await post_json(session, f"{base}/v1/jobs/batch", body, token, stats)
            else:
                key = f"k{(n * 7 + i) % IDEM_KEYS}"
                body = job_body(0, ms=1, idempotencyKey=key)
                status, reply = await post_json(session, f"{base}/v1/jobs", body, token, stats)
                if status in (200, 201):
                    idem_ids.setdefault(key, set()).add(uuid.UUID(reply["id"]))

    conn = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=conn) as session:
        await asyncio.gather(*(client(n, session) for n in range(CLIENTS)))

    report.http_5xx = stats.count_5xx
    requests = sum(stats.statuses.values())
    report.note = (
        f"{CLIENTS} clients x {DURATION:g} s: {requests} requests, {len(stats.accepted)} jobs, "
        f"statuses {dict(stats.statuses)}, slowest {stats.slowest:.2f} s"
    )
    assert stats.count_5xx == 0, stats.server_errors
    assert not stats.errors, f"connection errors: {dict(stats.errors)}"
    assert set(stats.statuses) <= {200, 201}, dict(stats.statuses)
    assert requests > CLIENTS  # every client got several requests through
    # each idempotency key: one job, whichever client and however often it was sent
    assert all(len(v) == 1 for v in idem_ids.values()), {k: v for k, v in idem_ids.items()}
    rows = await db.fetch(
        "SELECT idempotency_key, count(*) AS n FROM jobs WHERE idempotency_key IS NOT NULL"
        " GROUP BY 1"
    )
    assert {r["idempotency_key"] for r in rows} == set(idem_ids)
    assert all(r["n"] == 1 for r in rows)
    # every acknowledged id is a row, and nothing was written that nobody acknowledged
    assert await db.fetchval("SELECT count(*) FROM jobs") == len(stats.accepted)

    names = ["w0", "w1"]
    for name in names:
        procs.worker(name, "--concurrency", "50", env={"LOG_LEVEL": "WARNING"})
    await wait_for(lambda: active_workers(db, names), within=20)
    await wait_terminal(db, stats.accepted, scaled(120, 600), procs)
    a = await audit(db, stats.accepted)
    report.accepted, report.terminal, report.duplicates = a.accepted, a.terminal, a.duplicates
    report.why = a.why()
    a.assert_clean()
    assert a.by_status == {"succeeded": len(stats.accepted)}
    assert a.duplicates == 0
