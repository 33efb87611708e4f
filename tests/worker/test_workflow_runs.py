"""Stored workflow runs on real workers, started through the real API: a diamond runs in
order once per step and completes; a 500-item fan-out completes and fans in with the
children's results in order; a failing step cancels its dependents while `continue` runs
them; a `kill -9` of the worker mid-run: the run completes, each step succeeded once."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from jobserver.auth import create_token
from jobserver.config import Settings
from jobserver.db.maintenance import job_rescue_expired
from jobserver.worker.worker import Worker
from tests.api.conftest import Api, start_api
from tests.worker.conftest import Proc, wait_for


@pytest.fixture
async def api(settings: Settings, db: asyncpg.Pool) -> AsyncIterator[Api]:
    tokens = {"manage": await create_token(db, "manage", ["manage_jobs"], "admin")}
    client, app = await start_api(replace(settings, host="127.0.0.1"), db)
    try:
        yield Api(client, app, db, tokens)
    finally:
        await client.close()


def step(name: str, *parents: str, **extra: Any) -> dict[str, Any]:
    params = extra.pop("params", {"tag": name})
    return {
        "name": name,
        "jobType": "test.step@1",
        "dependsOn": list(parents),
        "params": params,
        **extra,
    }


async def run_workflow(api: Api, steps: list[dict[str, Any]], input_data: Any = None) -> str:
    r = await api.call("POST", "/v1/workflows", json={"name": "w", "steps": steps})
    assert r.status == 201, r.body
    r = await api.call("POST", f"/v1/workflows/{r.body['id']}/runs", json={"inputData": input_data})
    assert r.status == 201, r.body
    return str(r.body["runId"])


async def run_answer(api: Api, run_id: str) -> dict[str, Any]:
    r = await api.call("GET", f"/v1/workflows/runs/{run_id}")
    assert r.status == 200, r.body
    return r.body


async def ended(api: Api, run_id: str) -> bool:
    return (await run_answer(api, run_id))["status"] in ("completed", "failed", "cancelled")


async def ledger(db: asyncpg.Pool, tag: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT l.attempt, l.started_at, l.ended_at FROM ledger l JOIN jobs j ON j.id = l.job_id"
        " WHERE j.params->>'tag' = $1 ORDER BY l.attempt",
        tag,
    )


async def test_diamond_runs_in_order_once_per_step(
    api: Api, db: asyncpg.Pool, start_worker: Callable[..., Awaitable[Worker]]
) -> None:
    steps = [
        step("a", params={"tag": "{{input.first}}"}),
        step("b", "a"),
        step("c", "a"),
        step("d", "b", "c", params={"tag": "d", "from": "{{steps.b.result.tag}}"}),
    ]
    run_id = await run_workflow(api, steps, {"first": "a"})
    await start_worker(concurrency=4)
    await wait_for(lambda: ended(api, run_id), within=60)
    answer = await run_answer(api, run_id)
    assert answer["status"] == "completed", answer
    assert [s["status"] for s in answer["steps"]] == ["succeeded"] * 4
    la, lb, lc, ld = [await ledger(db, t) for t in "abcd"]
    assert [len(x) for x in (la, lb, lc, ld)] == [1, 1, 1, 1]
    assert min(lb[0]["started_at"], lc[0]["started_at"]) >= la[0]["ended_at"]
    assert ld[0]["started_at"] >= max(lb[0]["ended_at"], lc[0]["ended_at"])
    d = answer["steps"][3]
    assert d["result"]["tag"] == "d"
    assert [p["name"] for p in d["result"]["parents"]] == ["b", "c"]  # ctx.parents() of d
    assert await db.fetchval("SELECT params->>'from' FROM jobs WHERE name = 'd'") == "b"
    assert answer["result"] == {"status": "completed", "results": {"d": d["result"]}}


async def test_fan_out_of_500_fans_in_in_order(
    api: Api, db: asyncpg.Pool, start_worker: Callable[..., Awaitable[Worker]]
) -> None:
    items = [f"i{n}" for n in range(500)]
    steps = [
        step("each", forEach="input.items", params={"tag": "{{item}}", "n": "{{index}}"}),
        step("merge", "each", params={"tag": "merge", "all": "{{steps.each.result}}"}),
    ]
    run_id = await run_workflow(api, steps, {"items": items})
    await start_worker(concurrency=50)
    await wait_for(lambda: ended(api, run_id), within=120)
    answer = await run_answer(api, run_id)
    assert answer["status"] == "completed", answer["error"]
    each, merge = answer["steps"]
    assert each["forEach"]["total"] == 500 and each["forEach"]["counts"] == {"succeeded": 500}
    assert [j["index"] for j in each["forEach"]["jobs"]] == list(range(500))
    merged = await db.fetchval("SELECT params->'all' FROM jobs WHERE name = 'merge'")
    assert [r["tag"] for r in merged] == items  # fan-in sees the results in item order
    assert merge["status"] == "succeeded" and len(merge["result"]["parents"]) == 500
    assert await db.fetchval("SELECT count(*) FROM ledger WHERE ended_at IS NOT NULL") == 501


async def test_failing_step_cancels_dependents_and_continue_runs(
    api: Api, db: asyncpg.Pool, start_worker: Callable[..., Awaitable[Worker]]
) -> None:
    steps = [
        step("a", params={"tag": "a", "fail": True}),
        step("b", "a"),
        step("c", "b"),
        step("k", "a", onParentFailure="continue"),
    ]
    run_id = await run_workflow(api, steps)
    await start_worker()
    await wait_for(lambda: ended(api, run_id), within=60)
    answer = await run_answer(api, run_id)
    assert answer["status"] == "failed"
    assert [s["status"] for s in answer["steps"]] == [
        "failed",
        "cancelled",
        "cancelled",
        "succeeded",
    ]
    assert await ledger(db, "b") == [] and await ledger(db, "c") == []
    assert "c (cancelled)" in answer["error"]


async def test_kill_9_mid_run_completes_each_step_once(
    api: Api, db: asyncpg.Pool, spawn: Callable[..., Proc]
) -> None:
    steps = [
        step("a"),
        step("b", "a", params={"tag": "b", "sleepFirst": 60}),
        step("c", "b", params={"tag": "c", "after": "{{steps.b.result.tag}}"}),
    ]
    run_id = await run_workflow(api, steps)
    proc = spawn()

    async def b_running() -> bool:
        return bool(await ledger(db, "b"))

    await wait_for(b_running, within=30)
    proc.signal(signal.SIGKILL)
    proc.wait(10)
    assert (await run_answer(api, run_id))["status"] == "running"

    async def rescued() -> bool:
        async with db.acquire() as conn:
            await job_rescue_expired(conn)
        return bool(await db.fetchval("SELECT status = 'queued' FROM jobs WHERE name = 'b'"))

    await wait_for(rescued, within=30)
    spawn()
    await wait_for(lambda: ended(api, run_id), within=60)
    answer = await run_answer(api, run_id)
    assert answer["status"] == "completed", answer
    la, lb, lc = [await ledger(db, t) for t in "abc"]
    assert len(la) == 1 and len(lc) == 1
    assert [r["ended_at"] is not None for r in lb] == [False, True]  # attempt 1 died
    succeeded = await db.fetch(
        "SELECT name, count(*) AS n FROM jobs WHERE status = 'succeeded' GROUP BY name"
    )
    assert {r["name"]: r["n"] for r in succeeded} == {
        "a": 1,
        "b": 1,
        "c:expand": 1,
        "c": 1,
        "run": 1,
    }
