"""Scenario 2: PostgreSQL crashes (`pg_ctl stop -m immediate`) and comes back mid-run.

The API is under submission load, two workers are busy and a scheduler runs. The server is
stopped with `-m immediate` (a crash: no checkpoint, every connection cut), kept down for a few
seconds, then started again. While it is down the API answers 503 `database_unavailable`
quickly (no hang, no 500). Afterwards every process carries on by itself: every job the API
acknowledged, before, during or after the outage, is terminal, and none stays `running` past
its lease. Needs the suite's own PostgreSQL (skipped with JOBSERVER_TEST_DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import asyncpg
import pytest

from jobserver.config import Settings
from jobserver.db.leader import leader_get
from jobserver.db.pool import create_pool
from tests.conftest import PgServer
from tests.faults.conftest import Row, prepare
from tests.faults.helpers import (
    RESCUE,
    HttpStats,
    Procs,
    active_workers,
    audit,
    held_past_lease,
    job_body,
    post_json,
    scaled,
    wait_for,
    wait_terminal,
)

pytestmark = [pytest.mark.faults, pytest.mark.scenario("2. PostgreSQL restart")]

CLIENTS = 10
DOWN = scaled(3.0, 10.0)  # seconds the database stays down
QUICK = 3.0  # a 503 must come back within this many seconds while the database is down


async def test_immediate_restart_under_load(
    pg_server: PgServer, database_url: str, procs: Procs, report: Row
) -> None:
    cluster = pg_server.cluster
    if cluster is None:
        pytest.skip(
            "needs the suite's own PostgreSQL to crash it"
            " (JOBSERVER_TEST_DATABASE_URL or a container is in use)"
        )
    pool = await create_pool(database_url, Settings(), max_size=4)
    try:
        from jobserver.auth import create_token

        await prepare(pool)
        # The test cluster runs with synchronous_commit off for speed; a crash then loses the
        # last commits, acknowledged or not. Production keeps it on: so does this database.
        name = database_url.rsplit("/", 1)[1]
        await pool.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
        token = await create_token(pool, "load", [], "load")
    finally:
        await pool.close()
    _, base = await procs.api(env={"LOG_LEVEL": "WARNING"})
    procs.scheduler("sched")
    for name in ("w0", "w1"):
        procs.worker(name, "--concurrency", "10", env={"LOG_LEVEL": "WARNING"})

    stats = HttpStats()
    stop = asyncio.Event()
    first_after: list[float] = []
    restarted_at: list[float] = []

    async def client(n: int, session: aiohttp.ClientSession) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            status, _ = await post_json(
                session, f"{base}/v1/jobs", job_body(n * 100000 + i, ms=50), token, stats
            )
            if status == 201 and restarted_at and not first_after:
                first_after.append(time.monotonic() - restarted_at[0])
            if status != 201:
                await asyncio.sleep(0.05)  # a client backing off a failing API

    probes: list[tuple[int, str, float]] = []
    async with aiohttp.ClientSession() as session:
        clients = [asyncio.create_task(client(n, session)) for n in range(CLIENTS)]
        await wait_for(lambda: _count(stats.accepted, 200), within=30)
        check = await create_pool(database_url, Settings(), max_size=1)
        try:  # every process is up and busy before the crash
            await wait_for(lambda: active_workers(check, ["w0", "w1"]), within=20)
            await wait_for(lambda: _leader(check), within=20)
            await wait_for(lambda: _running(check), within=20)
        finally:
            await check.close()
        await asyncio.to_thread(cluster.stop_server, "immediate")
        down_at = time.monotonic()
        while time.monotonic() - down_at < DOWN:
            for method, path, body in (
                ("GET", "/readyz", None),
                ("POST", "/v1/jobs", job_body(0)),
            ):
                t0 = time.monotonic()
                async with session.request(
                    method,
                    f"{base}{path}",
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as r:
                    reply = await r.json(content_type=None)
                probes.append((r.status, (reply or {}).get("code", ""), time.monotonic() - t0))
            await asyncio.sleep(0.2)  # probe pace
        await asyncio.to_thread(cluster.start_server)
        restarted_at.append(time.monotonic())
        await wait_for(lambda: _count(first_after, 1), within=30)
        n_after = len(stats.accepted)
        await wait_for(lambda: _count(stats.accepted, n_after + 200), within=30)
        stop.set()
        await asyncio.gather(*clients)

    pool = await create_pool(database_url, Settings(), max_size=4)
    try:
        await wait_terminal(pool, stats.accepted, scaled(60, 300), procs)
        a = await audit(pool, stats.accepted)
        past_lease = await held_past_lease(pool, slack=RESCUE + 1)
    finally:
        await pool.close()
    report.accepted, report.terminal, report.duplicates = a.accepted, a.terminal, a.duplicates
    report.why = a.why()
    report.recovery_s = first_after[0]
    report.http_5xx = stats.count_5xx
    codes = {s for s in stats.statuses if s >= 500}
    report.note = (
        f"down {DOWN:g} s; {len(probes)} probes while down,"
        f" slowest {max(p[2] for p in probes):.2f} s;"
        f" statuses {dict(stats.statuses)} (5xx all 503 database_unavailable);"
        f" recovery = restart -> first 201"
    )
    assert probes and all(p[:2] == (503, "database_unavailable") for p in probes), probes
    assert max(p[2] for p in probes) < QUICK, probes
    assert codes <= {503}, stats.server_errors
    assert all("database_unavailable" in e for e in stats.server_errors), stats.server_errors
    assert not stats.errors, dict(stats.errors)
    a.assert_clean()
    assert a.by_status == {"succeeded": a.accepted}, a.by_status
    assert past_lease == 0


async def _leader(pool: asyncpg.Pool) -> bool:
    row = await leader_get(pool, "scheduler")
    return row is not None and not row["expired"]


async def _running(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM jobs WHERE status = 'running'"))


async def _count(items: object, n: int) -> bool:
    return len(items) >= n  # type: ignore[arg-type]
