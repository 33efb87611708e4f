"""Case 7: cost limits in the shipped definitions, against a live API process.

The attack as written (a `compute.math` product of 1,000 integers of 1,040 digits each) and
the other costly params (a product over the total-digit bound, an integer past Python's digit
limit, `process.data` in millions of chunks, `process.batch` waiting for hours) are each a 422
naming the field, and nothing is written. A product just under the bound, submitted over the
same API, is run by a real worker (in this process, so the test shares its event loop) and
succeeds while the loop stays responsive: the largest gap between ticks of a 5 ms ticker while
the products run stays well under the time one such product takes when computed inline.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import asyncpg
import pytest

from jobserver.config import Settings
from jobserver.definitions.compute_math import MAX_PRODUCT_DIGITS, compute, total_digits
from jobserver.worker.worker import Worker
from tests.faults.conftest import REGISTRY, Row
from tests.faults.helpers import Procs, all_terminal, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.scenario("cost limits")]

BIG = 2**63 - 1  # 19 digits: the largest number the schema lets through
UNDER = [BIG] * (MAX_PRODUCT_DIGITS // 19)  # 99,997 digits in all: just under the bound


def math(operation: str, numbers: list[int] | str) -> dict[str, Any]:
    return {"definitionKey": "compute.math", "params": {"operation": operation, "numbers": numbers}}


REFUSED: list[tuple[str, Any, str]] = [
    # the attack as written: refused by the schema's 64-bit rule on the first number
    ("attack", math("product", [10**1039 + 7] * 1000), "params.numbers[0]"),
    ("digits", math("product", [BIG] * (len(UNDER) + 1)), "params.numbers"),
    ("fibonacci", math("fibonacci", [1_000_000] * 21), "params.numbers"),
    (
        "chunks",
        {
            "definitionKey": "process.data",
            "params": {"operation": "aggregate", "size": 10_000_000, "chunkSize": 1},
        },
        "params.chunkSize",
    ),
    (
        "delay",
        {
            "definitionKey": "process.batch",
            "params": {"items": list(range(100)), "batchSize": 1, "delayMs": 600_000},
        },
        "params.delayMs",
    ),
]


@pytest.fixture
async def api(procs: Procs, db: asyncpg.Pool, tokens: dict[str, str]) -> AsyncIterator[Any]:
    _, base = await procs.api()
    headers = {"Authorization": f"Bearer {tokens['alice']}"}
    async with aiohttp.ClientSession(base, headers=headers) as session:
        yield session


async def _post(session: aiohttp.ClientSession, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else None
    kwargs: dict[str, Any] = {"data": data} if data is not None else {"json": body}
    if data is not None:
        kwargs["headers"] = {"Content-Type": "application/json"}
    async with session.post("/v1/jobs", **kwargs) as r:
        return r.status, await r.json()


async def test_costly_params_are_refused_at_submission(
    api: aiohttp.ClientSession, db: asyncpg.Pool, report: Row
) -> None:
    answers = {name: await _post(api, body) for name, body, _ in REFUSED}
    huge = b'{"definitionKey": "compute.math", "params": {"operation": "sum", "numbers": [1, '
    answers["huge"] = await _post(api, huge + b"9" * 5000 + b"]}}")
    expected = {name: field for name, _, field in REFUSED} | {"huge": "params.numbers[1]"}
    for name, (status, body) in answers.items():
        assert status == 422, (name, body)
        assert body["field"] == expected[name], (name, body)
    assert "at most 100000 digits in total" in answers["digits"][1]["error"]
    assert "at most 4300 digits" in answers["huge"][1]["error"]
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0
    report.accepted, report.http_5xx = 0, 0
    report.note = f"{len(answers)} costly submissions: 422 naming the field, no job written"


async def _ticker(gaps: list[float], stop: asyncio.Event) -> None:
    last = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.005)
        now = time.monotonic()
        gaps.append(now - last)
        last = now


async def test_a_product_under_the_bound_runs_off_the_event_loop(
    api: aiohttp.ClientSession, db: asyncpg.Pool, settings: Settings, report: Row
) -> None:
    t0 = time.perf_counter()
    expected = compute("product", UNDER)
    inline = time.perf_counter() - t0  # what one product blocks a loop for when run inline
    assert total_digits(UNDER) <= MAX_PRODUCT_DIGITS < total_digits([*UNDER, BIG])

    worker = Worker(replace(settings, poll_interval_ms=100), REGISTRY, concurrency=8)
    await worker.start()
    try:
        # warm the process pool first (its start is not what this test measures)
        status, body = await _post(api, math("fibonacci", [10]))
        assert status == 201, body
        warm = [uuid.UUID(body["id"])]
        await wait_for(lambda: all_terminal(db, warm), within=30)

        gaps: list[float] = []
        stop = asyncio.Event()
        ticker = asyncio.create_task(_ticker(gaps, stop))
        ids = []
        for body_ in [math("product", UNDER)] * 4 + [{"definitionKey": "echo", "params": {}}]:
            status, body = await _post(api, body_)
            assert status == 201, body
            ids.append(uuid.UUID(body["id"]))
        await wait_for(lambda: all_terminal(db, ids), within=60)
        stop.set()
        await ticker
    finally:
        await worker.stop(grace=0)
    rows = await db.fetch("SELECT status, result FROM jobs WHERE id = ANY($1)", ids)
    assert [r["status"] for r in rows] == ["succeeded"] * 5
    products = [r["result"] for r in rows if r["result"].get("operation") == "product"]
    assert products == [{"operation": "product", "result": expected}] * 4
    assert expected["digits"] == 99_813
    worst = max(gaps)
    assert worst < inline / 2, f"the loop stalled {worst:.3f} s (a product inline: {inline:.3f} s)"
    report.accepted, report.terminal = len(ids), len(rows)
    report.note = f"worst loop gap {worst:.3f} s; one product inline {inline:.3f} s"
