"""Runner control through the API (jobserver/api/control.py) with in-process workers: ping,
broadcast, pause and resume of a worker and of a queue, reload, shutdown, and bad requests.
The same against worker processes: tests/faults/test_runner_control.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from jobserver.config import Settings
from jobserver.db.workers import worker_register, worker_set_status
from jobserver.registry import load_modules
from jobserver.worker.reload import SettingsSource
from jobserver.worker.worker import Worker
from tests.api.conftest import Api
from tests.waiting import wait_for

FAST = {
    "lease_duration_seconds": 5.0,
    "heartbeat_interval_seconds": 0.5,
    "poll_interval_ms": 100,
    "cancel_check_interval_ms": 100,
    "shutdown_grace_seconds": 1.0,
}
StartWorker = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def start_worker(settings: Settings) -> AsyncIterator[StartWorker]:
    started: list[Worker] = []

    async def start(worker_id: str, **kw: Any) -> Worker:
        w = Worker(replace(settings, worker_id=worker_id, **FAST), load_modules(), **kw)
        started.append(w)
        await w.start()
        assert w._listener is not None
        await wait_for(lambda: _connected(w), within=10)
        return w

    yield start
    for w in started:
        await w.stop(grace=0)


async def _connected(w: Worker) -> bool:
    return w._listener is not None and w._listener.connected.is_set()


async def test_ping_answers_with_the_measured_time(api: Api, start_worker: StartWorker) -> None:
    await start_worker("w-ping")
    r = await api.call("POST", "/v1/runners/w-ping/ping", json={"timeoutMs": 5000})
    assert r.status == 200, r.body
    assert (r.body["runnerId"], r.body["answered"], r.body["reply"]) == (
        "w-ping",
        True,
        {"pong": True},
    )
    assert 0 <= r.body["ms"] <= 5000 and r.body["command"] == "ping"
    r = await api.call("POST", "/v1/runners/w-ping/ping")  # no body: the default timeout
    assert r.status == 200 and r.body["timeoutMs"] == 5000 and r.body["answered"]
    who = await api.pool.fetchval(
        "SELECT created_by FROM runner_commands WHERE id = $1::uuid", r.body["commandId"]
    )
    assert who == "manage"


async def test_a_runner_that_cannot_answer(api: Api) -> None:
    await worker_register(api.pool, "w-dead", "h", 1, None, [], 1)  # its row, no process
    r = await api.call("POST", "/v1/runners/w-dead/ping", json={"timeoutMs": 200})
    assert r.status == 200, r.body
    assert (r.body["answered"], r.body["ms"], r.body["reply"]) == (False, None, None)
    await worker_set_status(api.pool, "w-dead", "stopped")
    r = await api.call("POST", "/v1/runners/w-dead/ping", json={"timeoutMs": 200})
    assert (r.status, r.body["code"], r.body["runnerStatus"]) == (409, "invalid_state", "stopped")
    r = await api.call("POST", "/v1/runners/nope/shutdown", json={"mode": "immediate"})
    assert (r.status, r.body["code"]) == (404, "not_found")


async def test_bad_requests_name_their_field_and_write_nothing(api: Api) -> None:
    await worker_register(api.pool, "w1", "h", 1, None, [], 1)
    cases: list[tuple[str, Any, str]] = [
        ("/v1/runners/w1/ping", {"timeoutMs": 0}, "timeoutMs"),
        ("/v1/runners/w1/ping", {"timeoutMs": 60001}, "timeoutMs"),
        ("/v1/runners/w1/ping", {"timeout": 5}, "timeout"),
        ("/v1/runners/w1/shutdown", {"mode": "now"}, "mode"),
        ("/v1/runners/broadcast", {}, "command"),
        ("/v1/runners/broadcast", {"command": "explode"}, "command"),
        ("/v1/runners/broadcast", {"command": "ping"}, "command"),  # ping is per runner
        ("/v1/runners/broadcast", {"command": "status", "mode": "immediate"}, "mode"),
        ("/v1/runners/broadcast", {"command": "status", "queue": "a b"}, "queue"),
        ("/v1/queues/a%20b/pause", {}, "name"),
        ("/v1/queues/" + "q" * 101 + "/pause", {}, "name"),
        ("/v1/queues/emails/pause", {"reason": 5}, "reason"),
        ("/v1/queues/emails/resume", {"reason": "x"}, "reason"),
    ]
    for path, body, field in cases:
        r = await api.call("POST", path, json=body)
        assert (r.status, r.body.get("field")) == (422, field), (path, body, r.body)
    assert await api.pool.fetchval("SELECT count(*) FROM runner_commands") == 0
    assert await api.pool.fetchval("SELECT count(*) FROM paused_queues") == 0
    r = await api.call(
        "POST", "/v1/runners/broadcast", data="{", headers={"Content-Type": "application/json"}
    )
    assert r.status == 400


async def test_broadcast_is_its_own_resource(api: Api) -> None:
    # not a runner named "broadcast": a 405 that advertises POST alone
    r = await api.call("GET", "/v1/runners/broadcast")
    assert (r.status, r.headers["Allow"]) == (405, "POST")


async def test_scopes(api: Api) -> None:
    await worker_register(api.pool, "w1", "h", 1, None, [], 1)
    for path, body in (
        ("/v1/runners/w1/ping", {}),
        ("/v1/runners/w1/shutdown", {}),
        ("/v1/runners/broadcast", {"command": "status"}),
        ("/v1/queues/emails/pause", {}),
        ("/v1/queues/emails/resume", {}),
    ):
        for token in ("plain", "view"):
            r = await api.call("POST", path, json=body, token=token)
            assert (r.status, r.body["code"]) == (403, "forbidden"), (path, token)
    assert (await api.call("GET", "/v1/queues/paused", token="plain")).status == 403
    assert (await api.call("GET", "/v1/queues/paused", token="view")).status == 200
    assert await api.pool.fetchval("SELECT count(*) FROM runner_commands") == 0


async def test_broadcast_status_and_a_runner_that_does_not_answer(
    api: Api, start_worker: StartWorker
) -> None:
    await start_worker("w-a", queues=["emails"])
    await start_worker("w-b")
    await worker_register(api.pool, "w-dead", "h", 1, ["other"], [], 1)
    r = await api.call(
        "POST", "/v1/runners/broadcast", json={"command": "status", "timeoutMs": 500}
    )
    assert r.status == 200, r.body
    assert (r.body["expected"], r.body["answered"], r.body["notAnswered"]) == (3, 2, ["w-dead"])
    replies = {x["runnerId"]: x for x in r.body["replies"]}
    assert set(replies) == {"w-a", "w-b"}
    a = replies["w-a"]["reply"]
    assert (a["state"], a["claiming"], a["queues"], a["pausedQueues"]) == (
        "active",
        True,
        ["emails"],
        [],
    )
    assert a["settings"]["POLL_INTERVAL_MS"] == 100 and a["concurrency"] == 10
    assert all(x["ms"] >= 0 for x in replies.values())
    # only the runners of one queue: w-a (emails) and w-b (every queue)
    r = await api.call(
        "POST", "/v1/runners/broadcast", json={"command": "status", "queue": "emails"}
    )
    assert (r.body["expected"], r.body["notAnswered"]) == (2, [])
    assert {x["runnerId"] for x in r.body["replies"]} == {"w-a", "w-b"}
    r = await api.call("GET", "/v1/runners", params={"queue": "other"}, token="view")
    assert sorted(w["id"] for w in r.body["items"]) == ["w-b", "w-dead"]


async def test_a_runners_own_pause_and_resume(api: Api, start_worker: StartWorker) -> None:
    w = await start_worker("w-p")
    r = await api.call("POST", "/v1/runners/broadcast", json={"command": "pause"})
    assert [x["reply"] for x in r.body["replies"]] == [{"paused": True, "changed": True}]
    assert w.gate.paused and not w.gate.open
    r = await api.call("POST", "/v1/runners/broadcast", json={"command": "status"})
    assert r.body["replies"][0]["reply"]["state"] == "paused"
    r = await api.call("POST", "/v1/runners/broadcast", json={"command": "resume"})
    assert [x["reply"] for x in r.body["replies"]] == [{"paused": False, "changed": True}]
    assert w.gate.open


async def test_pause_a_queue_tells_the_runners(api: Api, start_worker: StartWorker) -> None:
    w = await start_worker("w-q")
    other = await start_worker("w-other", queues=["other"])
    r = await api.call("POST", "/v1/queues/emails/pause", json={"reason": "SMTP maintenance"})
    assert r.status == 200, r.body
    assert (r.body["queue"], r.body["paused"], r.body["changed"]) == ("emails", True, True)
    assert (r.body["pausedBy"], r.body["reason"]) == ("manage", "SMTP maintenance")
    # the runners of the queue applied it before the answer; the others are told too
    assert r.body["acknowledged"] == ["w-q"] and r.body["notAnswered"] == []
    assert w.gate.skip_queues == ["emails"]

    async def told() -> bool:
        return other.gate.paused_queues == {"emails"}

    await wait_for(told, within=10)
    assert other.gate.claim_queues == ["other"]
    r = await api.call("POST", "/v1/queues/emails/pause", json={"reason": "again"})
    assert (r.body["changed"], r.body["reason"]) == (False, "SMTP maintenance")
    r = await api.call("GET", "/v1/queues/paused", token="view")
    assert [(q["queue"], q["pausedBy"]) for q in r.body["items"]] == [("emails", "manage")]
    r = await api.call("POST", "/v1/queues/emails/resume")
    assert (r.body["paused"], r.body["changed"], r.body["pausedAt"]) == (False, True, None)
    assert w.gate.skip_queues is None
    r = await api.call("POST", "/v1/queues/emails/resume")
    assert r.body["changed"] is False
    assert (await api.call("GET", "/v1/queues/paused")).body["items"] == []


async def test_reload_applies_the_changed_settings(
    api: Api, start_worker: StartWorker, tmp_path: Path
) -> None:
    w = await start_worker("w-r")
    env_file = tmp_path / ".env"
    env_file.write_text("MAX_CONCURRENT_EXECUTIONS=10\nPOLL_INTERVAL_MS=100\n")
    w.control.source = SettingsSource(env_file, {"CANCEL_CHECK_INTERVAL_MS": "100"})
    r = await api.call("POST", "/v1/runners/broadcast", json={"command": "reload"})
    assert r.body["replies"][0]["reply"] == {"changed": {}, "ignored": {}}
    env_file.write_text("MAX_CONCURRENT_EXECUTIONS=3\nPOLL_INTERVAL_MS=250\nLOG_LEVEL=INFO\n")
    r = await api.call("POST", "/v1/runners/broadcast", json={"command": "reload"})
    assert r.body["replies"][0]["reply"] == {
        "changed": {
            "MAX_CONCURRENT_EXECUTIONS": {"from": 10, "to": 3},
            "POLL_INTERVAL_MS": {"from": 100, "to": 250},
        },
        "ignored": {},
    }
    assert (w.concurrency, w.slots.concurrency, w._bell.poll) == (3, 3, 0.25)
    assert await api.pool.fetchval("SELECT max_concurrency FROM workers WHERE id = 'w-r'") == 3
    env_file.write_text("LOG_LEVEL=LOUD\n")
    r = await api.call("POST", "/v1/runners/broadcast", json={"command": "reload"})
    assert "LOG_LEVEL" in r.body["replies"][0]["reply"]["error"]
    assert w.concurrency == 3  # nothing applied


async def test_shutdown_stops_the_runner(api: Api, start_worker: StartWorker) -> None:
    w = await start_worker("w-s")
    r = await api.call("POST", "/v1/runners/w-s/shutdown", json={"mode": "immediate"})
    assert r.status == 200, r.body
    assert r.body["answered"] and r.body["reply"]["mode"] == "immediate"
    await wait_for(lambda: _stopped(api, "w-s"), within=10)
    assert w.stopping


async def _stopped(api: Api, worker_id: str) -> bool:
    status = await api.pool.fetchval("SELECT status FROM workers WHERE id = $1", worker_id)
    return bool(status == "stopped")
