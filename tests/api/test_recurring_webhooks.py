"""A recurring webhook end to end: a schedule of `http.request` every second (MIN_EVERY lowered
for this module) fired by the cron service, run by a real worker against a loopback receiver.
Each run renders its payload afresh; runs are not retried; three failed runs in a row disable
the schedule."""

from __future__ import annotations

import json
from dataclasses import replace

import asyncpg
import pytest

from jobserver.config import Settings
from jobserver.registry import load_modules
from jobserver.scheduler.cron import CronService
from jobserver.scheduler.failures import FailureWatch
from jobserver.worker.worker import Worker
from tests.api.conftest import FAST_WORKER, Api
from tests.waiting import wait_for
from tests.worker.http_receiver import Answer, Receiver


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, worker_id="webhook-worker", min_every=1)


async def test_each_run_renders_afresh_and_three_failures_disable_the_schedule(
    api: Api,
    settings: Settings,
    services: tuple[CronService, FailureWatch],
    receiver: Receiver,
) -> None:
    url = receiver.tell(
        "/hook", Answer(200, "ok"), Answer(200, "ok"), Answer(500, "receiver is down")
    )
    body = {
        "name": "heartbeat",
        "everySeconds": 1,
        "catchupPolicy": "none",
        "event": "heartbeat",
        "definitionKey": "http.request",
        "params": {
            "url": url,
            "method": "POST",
            "payload": {"id": "{{$uuid}}", "run": "{{schedule.scheduledFor}}"},
        },
    }
    r = await api.call("POST", "/v1/schedules", json=body)
    assert r.status == 201, r.body
    worker = Worker(replace(settings, **FAST_WORKER), load_modules(), pool=api.pool)
    await worker.start()
    cron, watch = services
    try:
        cron.start()
        watch.start()

        async def disabled() -> asyncpg.Record | None:
            row = await api.pool.fetchrow("SELECT * FROM schedules WHERE name = 'heartbeat'")
            return row if not row["enabled"] else None

        row = await wait_for(disabled, within=40)
    finally:
        await worker.stop(grace=0)
    sent = [json.loads(s.body) for s in receiver.at("/hook")]
    assert len(sent) >= 5  # two good runs, then three failed ones
    assert len({s["id"] for s in sent}) == len(sent)  # $uuid is fresh for every run
    assert len({s["run"] for s in sent}) == len(sent)  # and so is the run's own fire time
    jobs = await api.pool.fetch(
        "SELECT * FROM jobs WHERE schedule_name = 'heartbeat' ORDER BY scheduled_for"
    )
    assert all(j["max_attempts"] == 1 and j["event"] == "heartbeat" for j in jobs)
    finished = [j for j in jobs if j["status"] in ("succeeded", "failed")]
    assert [j["status"] for j in finished[:2]] == ["succeeded", "succeeded"]
    assert [j["status"] for j in finished[-3:]] == ["failed"] * 3
    assert "HTTP 500" in row["disabled_reason"]
    r = await api.call("GET", "/v1/schedules/heartbeat/runs?limit=3")
    assert [i["finishReason"] for i in r.body["items"] if i["finishReason"]] == ["failed"] * len(
        [i for i in r.body["items"] if i["finishReason"]]
    )
