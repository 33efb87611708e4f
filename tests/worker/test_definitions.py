"""The shipped definitions: schemas, real work through a worker, progress, HTTP calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import jsonschema_rs
import pytest
from aiohttp import web

from jobserver import outbound
from jobserver.definitions.compute_math import compute, digit_count, fibonacci, is_prime
from jobserver.outbound.policy import Policy, parse_cidrs
from tests.worker.conftest import REGISTRY, job, status_is, submit, wait_for


def _schema(key: str) -> dict:
    d = REGISTRY.get(key, 1)
    assert d is not None and d.params_schema is not None
    return d.params_schema


@pytest.mark.parametrize(
    ("key", "params"),
    [
        ("compute.math", {"operation": "median", "numbers": [1]}),
        ("compute.math", {"operation": "sum", "numbers": []}),
        ("compute.math", {"operation": "fibonacci", "numbers": [-1]}),
        ("compute.math", {"operation": "prime", "numbers": [1]}),
        ("process.data", {"operation": "sort"}),
        ("process.data", {"operation": "aggregate", "size": -1}),
        ("call.api", {"endpoint": "ftp://example.org"}),
        ("call.api", {"endpoint": "http://x", "method": "BREW"}),
        ("process.batch", {"items": [1], "batchSize": 0}),
    ],
)
def test_schemas_reject_bad_params(key: str, params: dict) -> None:
    with pytest.raises(jsonschema_rs.ValidationError):
        jsonschema_rs.validate(_schema(key), params)


def test_compute_math_is_real_arithmetic() -> None:
    assert compute("sum", [1, 2, 3]) == 6
    assert compute("product", [2**40, 2**40]) == {"digits": 25, "value": str(2**80)}
    assert [fibonacci(n) for n in range(10)] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]
    assert compute("fibonacci", [90])[0]["value"] == "2880067194370816120"
    assert [n for n in range(2, 40) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]
    assert is_prime(2**61 - 1) and not is_prime(2**61 + 1)
    assert digit_count(10**5000) == 5001 and digit_count(10**5000 - 1) == 5000


async def test_shipped_definitions_run_in_a_worker(db: asyncpg.Pool, start_worker) -> None:
    jobs = {
        "sum": await submit(db, "compute.math", [{"operation": "sum", "numbers": [1, 2, 3]}]),
        "prime": await submit(db, "compute.math", [{"operation": "prime", "numbers": [97]}]),
        "agg": await submit(
            db, "process.data", [{"operation": "aggregate", "size": 2500, "chunkSize": 1000}]
        ),
        "filter": await submit(
            db, "process.data", [{"operation": "filter", "size": 500, "threshold": 90}]
        ),
        "transform": await submit(db, "process.data", [{"operation": "transform", "size": 10}]),
        "batch": await submit(db, "process.batch", [{"items": list(range(25)), "batchSize": 10}]),
    }
    await start_worker()
    for [jid] in jobs.values():
        await wait_for(lambda jid=jid: status_is(db, jid, "succeeded", "failed"), within=20)
    res = {name: (await job(db, jid))["result"] for name, [jid] in jobs.items()}
    assert res["sum"] == {"operation": "sum", "result": 6}
    assert res["prime"]["result"] == [{"n": 97, "prime": True, "next": 101}]
    agg = res["agg"]["result"]
    assert sum(c["count"] for c in agg.values()) == 2500 and set(agg) == set("abcde")
    assert 0 < res["filter"]["result"]["count"] < 500
    assert res["transform"]["result"]["count"] == 10
    assert res["batch"]["processed"] == 25 and res["batch"]["batches"] == 3
    [agg_id], [batch_id] = jobs["agg"], jobs["batch"]
    assert (await job(db, agg_id))["progress"]["done"] == 2500
    progress = await db.fetchval(
        "SELECT count(*) FROM job_events WHERE job_id = $1 AND event = 'progress'", agg_id
    )
    # three reports within PROGRESS_MIN_INTERVAL_MS: the first is written, the last is flushed
    # before the outcome, the one between is replaced by it
    assert progress == 2
    assert (await job(db, batch_id))["progress"] == {
        "done": 25,
        "total": 25,
        "percent": 100.0,
        "message": "batch 3",
    }


@pytest.fixture
async def api_server() -> AsyncIterator[str]:
    async def ok(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        return web.json_response(
            {"method": request.method, "got": body, "auth": request.headers.get("X-Token")}
        )

    async def boom(request: web.Request) -> web.Response:
        return web.Response(status=500, text="exploded")

    app = web.Application()
    app.router.add_route("*", "/ok", ok)
    app.router.add_get("/boom", boom)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
def loopback_allowed() -> Iterator[None]:
    """The test servers live on loopback, which the outbound policy refuses unless allowed."""
    outbound.configure(Policy(allow_cidrs=parse_cidrs("127.0.0.0/8")))
    yield
    outbound.configure(None)


async def test_call_api_success_and_failure(
    db: asyncpg.Pool, start_worker, api_server: str, loopback_allowed: None
) -> None:
    [ok] = await submit(
        db,
        "call.api",
        [
            {
                "endpoint": f"{api_server}/ok",
                "method": "POST",
                "headers": {"X-Token": "t"},
                "body": {"a": 1},
                "timeoutSeconds": 5,
            }
        ],
    )
    [bad] = await submit(db, "call.api", [{"endpoint": f"{api_server}/boom"}], max_attempts=1)
    await start_worker()
    await wait_for(lambda: status_is(db, ok, "succeeded"))
    result = (await job(db, ok))["result"]
    assert result["status"] == 200
    assert result["body"] == {"method": "POST", "got": {"a": 1}, "auth": "t"}
    await wait_for(lambda: status_is(db, bad, "failed"))
    assert (await job(db, bad))["last_error"].startswith("ApiCallFailed: HTTP 500")
