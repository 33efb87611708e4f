"""Prometheus: the API's /metrics and the scheduler's METRICS_PORT parse with the official
parser and carry the expected series."""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import replace

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from jobserver.config import Settings
from jobserver.testing.cluster import free_port
from tests.api.conftest import Api, start_api
from tests.scheduler.helpers import insert_job, kill, output, spawn, wait_for


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_api_metrics(api: Api) -> None:
    await insert_job(api.pool, status="queued", queue="q1")
    await insert_job(api.pool, status="queued", queue="q1")
    await insert_job(api.pool, status="running")
    await insert_job(api.pool, status="succeeded", created_ago=3, started_ago=2, finished_ago=1)
    dead = await insert_job(
        api.pool, status="failed", attempt=3, created_ago=10, started_ago=9, finished_ago=5
    )
    await api.pool.execute(
        "INSERT INTO dead_letter_jobs (id, definition_key, definition_version, queue, params,"
        " owner, priority, attempts, max_attempts, created_at) SELECT id, definition_key,"
        " definition_version, queue, params, owner, priority, attempt, max_attempts, created_at"
        " FROM jobs WHERE id = $1",
        dead,
    )
    await api.call("GET", "/v1/jobs/00000000-0000-0000-0000-000000000000")
    r = await api.call("GET", "/metrics", token=None)
    assert r.status == 200
    m = parse(r.body.decode() if isinstance(r.body, bytes) else str(r.body))
    jobs = "jobserver_jobs"
    assert m[(jobs, (("definition", "echo"), ("queue", "q1"), ("status", "queued")))] == 2
    assert m[(jobs, (("definition", "echo"), ("queue", "default"), ("status", "running")))] == 1
    fin = "jobserver_jobs_finished_recent"
    assert m[(fin, (("definition", "echo"), ("queue", "default"), ("status", "succeeded")))] == 1
    assert m[(fin, (("definition", "echo"), ("queue", "default"), ("status", "failed")))] == 1
    assert (
        m[
            (
                "jobserver_jobs_retried_recent",
                (("definition", "echo"), ("queue", "default"), ("status", "failed")),
            )
        ]
        == 1
    )
    assert m[("jobserver_dlq_size", ())] == 1
    assert m[("jobserver_job_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    assert m[("jobserver_job_duration_seconds_bucket", (("le", "0.5"),))] == 0
    assert m[("jobserver_job_duration_seconds_bucket", (("le", "1"),))] == 1
    assert m[("jobserver_job_duration_seconds_bucket", (("le", "5"),))] == 2
    assert m[("jobserver_job_queue_wait_seconds_bucket", (("le", "+Inf"),))] == 2
    http = (
        "jobserver_http_requests_total",
        (("method", "GET"), ("route", "/v1/jobs/{id}"), ("status", "404")),
    )
    assert m[http] >= 1
    plain = (
        "jobserver_http_requests_total",
        (("method", "GET"), ("route", "/metrics"), ("status", "200")),
    )
    r = await api.call("GET", "/metrics", token=None)
    assert parse(r.body.decode() if isinstance(r.body, bytes) else str(r.body))[plain] >= 1
    assert any(k[0] == "jobserver_http_request_duration_seconds_count" for k in m)


async def test_api_metrics_token_required(api: Api, settings: Settings) -> None:
    client, _ = await start_api(replace(settings, metrics_require_token="true"), api.pool)
    try:
        async with client.get("/metrics") as resp:
            assert resp.status == 401
        headers = {"Authorization": f"Bearer {api.tokens['view']}"}
        async with client.get("/metrics", headers=headers) as resp:
            assert resp.status == 200
            parse(await resp.text())
        headers = {"Authorization": f"Bearer {api.tokens['plain']}"}
        async with client.get("/metrics", headers=headers) as resp:
            assert resp.status == 403
    finally:
        await client.close()


def listening_on(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on `port` (from /proc/net/tcp)."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, _, hex_port = local.partition(":")
                if state == "0A" and int(hex_port, 16) == port:
                    raw = bytes.fromhex(addr)
                    if len(raw) == 4:
                        out.add(str(ipaddress.IPv4Address(raw[::-1])))
                    else:
                        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                        out.add(str(ipaddress.IPv6Address(words)))
    return out


async def test_scheduler_metrics_port(database_url: str, pool: asyncpg.Pool) -> None:
    """Served where the worker's is: METRICS_HOST (127.0.0.1), whatever the API's HOST."""
    port = free_port()
    proc = spawn(
        "jobserver.cli.scheduler",
        {
            "DATABASE_URL": database_url,
            "METRICS_PORT": str(port),
            "HOST": "0.0.0.0",
            "LEADER_LEASE_SECONDS": "1",
        },
    )
    try:
        async with aiohttp.ClientSession() as http:

            async def scrape() -> dict | None:  # type: ignore[type-arg]
                try:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        m = parse(await resp.text())
                except aiohttp.ClientError:
                    return None
                return m if m.get(("jobserver_scheduler_is_leader", ())) == 1 else None

            m = await wait_for(scrape, within=15)
        assert m[("jobserver_scheduler_leadership_changes_total", (("change", "acquired"),))] == 1
        assert listening_on(port) == {"127.0.0.1"}
        assert any(k[0] == "jobserver_scheduler_ticks_total" for k in m)
    finally:
        kill(proc)
        assert proc.returncode is not None, output(proc)


async def test_job_counters_survive_pruning(pool: asyncpg.Pool) -> None:
    """Counters are live rows plus the pruner's tally: pruning never makes them go down."""
    from jobserver.api.prometheus import job_counters
    from jobserver.db.maintenance import job_prune_finished
    from jobserver.db.metrics import metrics_job_totals

    ok = await insert_job(pool, status="succeeded", attempt=2, finished_ago=100)
    await insert_job(pool, status="failed", attempt=3, finished_ago=100)
    await insert_job(pool, status="queued", queue="q2")
    await pool.execute(
        "UPDATE job_attempts SET outcome = 'lease_expired' WHERE job_id = $1 AND attempt = 1", ok
    )

    async def counters() -> dict[tuple[str, str, str], float]:
        out = {}
        async with pool.acquire() as conn:
            for fam in job_counters(await metrics_job_totals(conn)):
                for s in fam.samples:
                    if s.name.endswith("_total"):
                        out[(s.name, s.labels["definition"], s.labels["queue"])] = s.value
        return out

    before = await counters()
    assert before[("jobserver_jobs_submitted_total", "echo", "default")] == 2
    assert before[("jobserver_jobs_submitted_total", "echo", "q2")] == 1
    assert before[("jobserver_jobs_started_total", "echo", "default")] == 5
    assert before[("jobserver_jobs_retried_total", "echo", "default")] == 3
    assert before[("jobserver_jobs_succeeded_total", "echo", "default")] == 1
    assert before[("jobserver_jobs_failed_total", "echo", "default")] == 1
    assert before[("jobserver_jobs_dead_lettered_total", "echo", "default")] == 1
    assert before[("jobserver_leases_rescued_total", "echo", "default")] == 1
    async with pool.acquire() as conn:
        pruned = await job_prune_finished(
            conn, succeeded_seconds=1, cancelled_seconds=1, failed_seconds=1
        )
    assert pruned == {"succeeded": 1, "failed": 1}
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 1
    assert await counters() == before
