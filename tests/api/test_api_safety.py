"""API-side safety (issue 11, cases 3, 8, 11 and 14), each with the attack as it was made.

3. Metrics made slow for real (another session holds a lock on a table the refresh reads):
   25 concurrent scrapes cost the database one refresh and one connection, and a submission
   still answers at once; with every connection taken, a request is a 503 `database_busy`
   after DB_ACQUIRE_TIMEOUT_MS, not a hang.
8. `1e308` (and 1e-300, 1e16) in params is a 422 naming the field, not a 309-digit number
   read back.
11. A request path carrying `%0A` writes no forged line to the text log.
14. /metrics needs a `view_jobs` token when the API is not bound to loopback; queue labels
    are bounded by METRICS_MAX_QUEUES (the rest summed under `other`).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from jobserver.api.app import create_app
from jobserver.api.keys import METRICS_CACHE_KEY, PROMETHEUS_KEY
from jobserver.config import Settings
from jobserver.logs import TextFormatter
from tests.api.conftest import Api
from tests.scheduler.helpers import insert_job
from tests.waiting import wait_for

SCRAPERS = 25
HANG = 15.0  # seconds: only a hang detector, a healthy answer takes milliseconds


@pytest.fixture
async def own_pool_client(api: Api, settings: Settings) -> AsyncIterator[tuple[TestClient, Any]]:
    """An app that opens its own pool (`create_api_pool`, DB_POOL_MAX=20), as in production."""
    app = create_app(replace(settings, host="127.0.0.1", db_pool_max=20))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, app
    finally:
        await client.close()


async def _lock(database_url: str, table: str) -> asyncpg.Connection:
    """Another session holding an ACCESS EXCLUSIVE lock on `table` until it is closed."""
    conn = await asyncpg.connect(database_url)
    tx = conn.transaction()
    await tx.start()
    await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    return conn


async def _waiting_on_lock(pool: asyncpg.Pool, text: str) -> int:
    """Sessions of this database blocked on a lock while running a query containing `text`."""
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'",
            text,
        )
    )


async def _true(value: bool) -> bool:
    return value


async def _get(client: TestClient, path: str, token: str | None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with client.get(path, headers=headers) as resp:
        return resp.status, await resp.read()


async def _post_job(client: TestClient, token: str) -> tuple[int, Any, float]:
    body = {"definitionKey": "echo", "definitionVersion": 1, "params": {"message": "hi"}}
    t0 = time.monotonic()
    async with client.post(
        "/v1/jobs",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=aiohttp.ClientTimeout(total=HANG),
    ) as resp:
        return resp.status, await resp.json(), time.monotonic() - t0


# ------------------------------------------------------------------------------ 3. pool


async def test_concurrent_scrapes_share_one_refresh_and_submissions_still_answer(
    api: Api, own_pool_client: tuple[TestClient, Any], database_url: str
) -> None:
    client, app = own_pool_client
    await insert_job(api.pool, status="queued")
    locker = await _lock(database_url, "dead_letter_jobs")  # the refresh's dlq_count blocks
    scrapes: list[asyncio.Task[tuple[int, bytes]]] = []
    try:
        scrapes = [asyncio.create_task(_get(client, "/metrics", None)) for _ in range(SCRAPERS)]
        flights = app[PROMETHEUS_KEY][1].flights
        await wait_for(lambda: _true(flights.waiting == SCRAPERS), within=HANG)
        status, body, took = await _post_job(client, api.tokens["plain"])
        assert (status, took < HANG) == (201, True), (status, body, took)
        # every scraper is still waiting, and the database saw one refresh, not 25
        assert not any(t.done() for t in scrapes)

        async def one_refresh_waits() -> bool:  # the refresh's query may still be on its way
            return await _waiting_on_lock(api.pool, "dead_letter_jobs") == 1

        await wait_for(one_refresh_waits, within=HANG)
        assert app[PROMETHEUS_KEY][1].flights.started == 1
    finally:
        await locker.close()
    answers = await asyncio.wait_for(asyncio.gather(*scrapes), HANG)
    assert {s for s, _ in answers} == {200}
    assert app[PROMETHEUS_KEY][1].flights.started == 1


async def test_v1_metrics_refreshes_are_single_flight(
    api: Api, own_pool_client: tuple[TestClient, Any], database_url: str
) -> None:
    client, app = own_pool_client
    locker = await _lock(database_url, "jobs")
    try:
        calls = [
            asyncio.create_task(_get(client, "/v1/metrics?ttl=0", api.tokens["view"]))
            for _ in range(SCRAPERS)
        ]
        flights = app[METRICS_CACHE_KEY].flights
        await wait_for(lambda: _true(flights.waiting == SCRAPERS), within=HANG)

        async def one_refresh_waits() -> bool:  # the refresh's query may still be on its way
            return await _waiting_on_lock(api.pool, "FROM jobs") == 1

        await wait_for(one_refresh_waits, within=HANG)
        assert flights.started == 1
    finally:
        await locker.close()
    answers = await asyncio.wait_for(asyncio.gather(*calls), HANG)
    assert {s for s, _ in answers} == {200}
    assert len({json.loads(b)["cachedAt"] for _, b in answers}) == 1  # one computation


async def test_every_connection_busy_is_503_database_busy_not_a_hang(
    api: Api, settings: Settings, database_url: str
) -> None:
    app = create_app(replace(settings, host="127.0.0.1", db_pool_max=1, db_acquire_timeout_ms=300))
    client = TestClient(TestServer(app))
    await client.start_server()
    locker = await _lock(database_url, "dead_letter_jobs")
    try:
        scrape = asyncio.create_task(_get(client, "/metrics", None))  # holds the one connection
        assert await wait_for(lambda: _waiting_on_lock(api.pool, "dead_letter_jobs"), within=HANG)
        status, body, took = await _post_job(client, api.tokens["plain"])
        assert (status, body["code"]) == (503, "database_busy"), body
        assert took < HANG, took
        async with client.get(
            "/v1/jobs", headers={"Authorization": f"Bearer {api.tokens['plain']}"}
        ) as resp:
            assert (resp.status, (await resp.json())["code"]) == (503, "database_busy")
            assert resp.headers["Retry-After"] == "1"
    finally:
        await locker.close()
    assert (await asyncio.wait_for(scrape, HANG))[0] == 200
    status, body, _ = await _post_job(client, api.tokens["plain"])  # free again: served
    assert status == 201, body
    await client.close()


# ------------------------------------------------------------------------------ 8. numbers


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"x": 1e308}, "params.x"),
        ({"x": -1e300}, "params.x"),
        ({"x": 1e-300}, "params.x"),
        ({"x": 1e16}, "params.x"),
        ({"deep": [1, {"y": 2.5e-17}]}, "params.deep[1].y"),
        ({"x": -123456789012345678901.0}, "params.x"),
    ],
)
async def test_amplifying_numbers_are_422_naming_the_field(
    api: Api, params: dict[str, Any], field: str
) -> None:
    body = {"definitionKey": "echo", "definitionVersion": 1, "params": params}
    r = await api.call("POST", "/v1/jobs", json=body)
    assert (r.status, r.body["code"], r.body["field"]) == (422, "validation_error", field)
    assert await api.job_count() == 0


async def test_numbers_in_a_batch_are_named_by_item(api: Api) -> None:
    ok = {"definitionKey": "echo", "definitionVersion": 1, "params": {"message": "hi"}}
    bad = {**ok, "params": {"message": "hi", "n": 1e308}}
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": [ok, bad]})
    assert (r.status, r.body["field"]) == (422, "jobs[1].params.n"), r.body
    assert await api.job_count() == 0


async def test_bounded_numbers_read_back_short(api: Api) -> None:
    params = {
        "big": 9.999999999999998e15,
        "small": 1.2345678901234567e-16,
        "int": 2**70,  # integers are stored digit for digit: not amplified
        "neg": -(2**63),
        "zero": 0.0,
        "digits": "1" * 500,  # a long digit run inside a string is just text
    }
    job = await api.submit(params=params)
    r = await api.call("GET", f"/v1/jobs/{job['jobId']}")
    assert r.status == 200
    back = r.body["params"]
    assert back["int"] == 2**70 and back["neg"] == -(2**63) and back["digits"] == "1" * 500
    raw = await api.pool.fetchval("SELECT params::text FROM jobs WHERE id = $1", job["jobId"])
    printed = re.findall(r'": (-?[0-9][0-9.eE+-]*)', raw)  # numbers as PostgreSQL prints them
    assert len(printed) == 5 and max(len(t) for t in printed) <= 34, raw


async def test_a_rendered_job_stays_within_a_few_times_its_request(api: Api) -> None:
    """The worst cases the rule lets through ("9e15" prints as 16 digits, "1e-16" as 18
    characters) read back at most 4 times their size: a job answer is bounded by
    MAX_BODY_BYTES (here 64 KiB) and never grows 60-fold as `1e308` did."""
    for number in ("9e15", "1e-16", "-9.007199254740991e15"):
        items = ",".join([number] * (50_000 // (len(number) + 1)))
        raw = f'{{"definitionKey":"echo","definitionVersion":1,"params":{{"n":[{items}]}}}}'
        r = await api.call(
            "POST", "/v1/jobs", data=raw, headers={"Content-Type": "application/json"}
        )
        assert r.status == 201, r.body
        async with api.client.get(
            f"/v1/jobs/{r.body['jobId']}",
            headers={"Authorization": f"Bearer {api.tokens['manage']}"},
        ) as resp:
            answer = await resp.read()
        assert resp.status == 200 and len(answer) <= 4 * len(raw) + 2048, (number, len(answer))


# ------------------------------------------------------------------------------ 11. logs


async def test_encoded_newline_in_a_path_forges_no_text_log_line(api: Api) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    access = logging.getLogger("jobserver.api.access")
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    fake = "12:00:00 WARNING jobserver.auth: token revoked for admin"
    try:
        for path in (
            "/v1/jobs/x%0A" + fake.replace(" ", "%20"),
            "/v1/jobs/x%0D%0A" + fake.replace(" ", "%20"),
            "/v1/jobs/x%1B%5B2J%1B%5BHcleared",  # ANSI: clear the screen, cursor home
            "/v1/jobs/x%E2%80%A8" + fake.replace(" ", "%20"),  # U+2028 line separator
        ):
            r = await api.call("GET", path)
            assert r.status in (404, 422), r.body
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert all(
        re.match(r"\d\d:\d\d:\d\d INFO +jobserver\.api\.access: request \[", ln) for ln in lines
    )
    assert not any(ln.startswith(fake) for ln in lines)
    assert "\x1b" not in out.getvalue() and "\u2028" not in out.getvalue()
    assert "path=/v1/jobs/x\\n12:00:00 WARNING" in lines[0], lines[0]


# ------------------------------------------------------------------------------ 14. /metrics


async def _scrape_status(settings: Settings, pool: asyncpg.Pool, token: str | None) -> int:
    app = create_app(settings, pool)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        return (await _get(client, "/metrics", token))[0]
    finally:
        await client.close()


async def test_metrics_need_a_token_when_not_bound_to_loopback(
    api: Api, settings: Settings
) -> None:
    public = replace(settings, host="0.0.0.0")  # the default: METRICS_REQUIRE_TOKEN=auto
    assert public.metrics_require_token == "auto"
    assert await _scrape_status(public, api.pool, None) == 401
    assert await _scrape_status(public, api.pool, api.tokens["plain"]) == 403
    assert await _scrape_status(public, api.pool, api.tokens["view"]) == 200
    loopback = replace(settings, host="127.0.0.1")
    assert await _scrape_status(loopback, api.pool, None) == 200
    opened = replace(settings, host="0.0.0.0", metrics_require_token="false")
    assert await _scrape_status(opened, api.pool, None) == 200
    closed = replace(settings, host="127.0.0.1", metrics_require_token="true")
    assert await _scrape_status(closed, api.pool, None) == 401


def _queue_samples(text: str, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[s.labels["queue"]] = out.get(s.labels["queue"], 0) + s.value
    return out


async def test_tenant_chosen_queue_labels_are_bounded(api: Api, settings: Settings) -> None:
    sizes = {"big": 5, "mid": 3, "t1": 1, "t2": 1, "t3": 1}
    for queue, n in sizes.items():
        for _ in range(n):
            await insert_job(api.pool, status="queued", queue=queue)
    app = create_app(replace(settings, host="127.0.0.1", metrics_max_queues=2), api.pool)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        status, body = await _get(client, "/metrics", None)
    finally:
        await client.close()
    assert status == 200
    text = body.decode()
    assert _queue_samples(text, "jobserver_jobs") == {"big": 5, "mid": 3, "other": 3}
    assert _queue_samples(text, "jobserver_jobs_submitted_total") == {
        "big": 5,
        "mid": 3,
        "other": 3,
    }
