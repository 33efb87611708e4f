"""`call.api` in a worker under the outbound policy, against real aiohttp servers on loopback.

Loopback is refused by default: these tests prove the denial (a final failure on the first
attempt, `outbound_denied`, nothing retried, the URL's query string never logged) and open
127.0.0.1 through the operator allowlist only where a request must get through.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from aiohttp import web

from jobserver import outbound
from jobserver.outbound.policy import Policy, parse_cidrs
from tests.worker.conftest import job, status_is, submit, wait_for


@pytest.fixture
async def internal() -> AsyncIterator[tuple[str, list[str]]]:
    """An "internal" service on 127.0.0.1 (a stand-in for /metrics): base URL, paths seen."""
    seen: list[str] = []

    async def metrics(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        return web.Response(text="jobserver_secret_metric 1\n")

    async def big(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        return web.json_response({"pad": "x" * (2 * 1024 * 1024)})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/big", big)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


@pytest.fixture
def policy() -> Iterator[None]:
    """The policy from the (empty) defaults: no allowlist, loopback refused."""
    outbound.configure(Policy())
    yield
    outbound.configure(None)


async def _attempts(db: asyncpg.Pool, job_id: uuid.UUID) -> int:
    return int(await db.fetchval("SELECT count(*) FROM job_attempts WHERE job_id = $1", job_id))


async def test_loopback_target_fails_at_once_without_retry_and_logs_no_secret(
    db: asyncpg.Pool,
    start_worker,
    internal: tuple[str, list[str]],
    policy: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base, seen = internal
    [j] = await submit(db, "call.api", [{"endpoint": f"{base}/metrics?api_key=SECRET"}])
    assert (await job(db, j))["max_attempts"] == 5
    caplog.set_level(logging.INFO)
    await start_worker()
    await wait_for(lambda: status_is(db, j, "failed"))
    row = await job(db, j)
    assert "outbound_denied: 127.0.0.1 is loopback" in row["last_error"]
    assert row["attempt"] == 1 and await _attempts(db, j) == 1  # no retry of 5 attempts
    assert await db.fetchval("SELECT count(*) FROM dead_letter_jobs WHERE id = $1", j) == 1
    assert seen == []  # never connected
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/metrics?***" in logged and "SECRET" not in logged
    assert "SECRET" not in row["last_error"]


async def test_allowlisted_loopback_succeeds_and_an_oversized_body_fails_for_good(
    db: asyncpg.Pool, start_worker, internal: tuple[str, list[str]]
) -> None:
    base, _ = internal
    outbound.configure(Policy(allow_cidrs=parse_cidrs("127.0.0.1/32")))
    try:
        ok, big = await submit(
            db, "call.api", [{"endpoint": f"{base}/metrics"}, {"endpoint": f"{base}/big"}]
        )
        await start_worker()
        await wait_for(lambda: status_is(db, ok, "succeeded"))
        assert (await job(db, ok))["result"]["body"] == "jobserver_secret_metric 1\n"
        await wait_for(lambda: status_is(db, big, "failed"))
        row = await job(db, big)
        assert "response_too_large" in row["last_error"] and row["attempt"] == 1
        assert await _attempts(db, big) == 1
    finally:
        outbound.configure(None)


async def test_a_stored_host_header_is_refused_by_the_client_too(
    db: asyncpg.Pool, start_worker, internal: tuple[str, list[str]]
) -> None:
    """The schema refuses a Host header at submission; a job stored another way (older rows,
    another producer) is refused again by the outbound client before connecting."""
    base, seen = internal
    outbound.configure(Policy(allow_cidrs=parse_cidrs("127.0.0.1/32")))
    try:
        [j] = await submit(
            db, "call.api", [{"endpoint": f"{base}/metrics", "headers": {"Host": "admin"}}]
        )
        await start_worker()
        await wait_for(lambda: status_is(db, j, "failed"))
        assert "outbound_denied: header 'Host' may not be set" in (await job(db, j))["last_error"]
        assert seen == []
    finally:
        outbound.configure(None)
