"""Recurring webhooks, schedule side: frequency bounds, no retries by default, event/tags on
fired jobs, disabling after repeated failures (end to end with a real worker), expiry, and
`GET /v1/schedules/{name}/runs`. MIN_EVERY is lowered to 1 s for this module."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from jobserver.config import Settings
from jobserver.registry import load_modules
from jobserver.scheduler.cron import CronService
from jobserver.scheduler.failures import FailureWatch
from jobserver.worker.worker import Worker
from tests.api.conftest import FAST_WORKER, Api, start_api, wait_for

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, worker_id="test-worker", min_every=1)


def every(name: str, **fields: object) -> dict[str, object]:
    return {"name": name, "everySeconds": 60, "definitionKey": "echo", **fields}


async def fired(api: Api, name: str) -> list[asyncpg.Record]:
    return await api.pool.fetch(
        "SELECT * FROM jobs WHERE schedule_name = $1 ORDER BY scheduled_for", name
    )


async def test_frequency_bounds_are_422_naming_the_field(api: Api) -> None:
    cases = [
        ({"everySeconds": 0}, "everySeconds"),
        ({"everySeconds": 86401}, "everySeconds"),
        ({"everySeconds": None, "cron": "* * * * * *"}, None),  # 1 s apart: allowed here
    ]
    for change, field in cases:
        r = await api.call("POST", "/v1/schedules", json={**every("b"), **change})
        if field is None:
            assert r.status == 201, r.body
            assert (await api.call("DELETE", "/v1/schedules/b")).status == 204
        else:
            assert (r.status, r.body["field"]) == (422, field), (change, r.body)
    r = await api.call("POST", "/v1/schedules", json=every("b", everySeconds=86401))
    assert "between 1 and 86400" in r.body["error"]
    assert await api.pool.fetchval("SELECT count(*) FROM schedules") == 0


async def test_default_min_every_refuses_fast_interval_and_cron(
    api: Api, pool: asyncpg.Pool, database_url: str
) -> None:
    client, _ = await start_api(Settings(database_url=database_url, host="127.0.0.1"), pool)
    try:
        headers = {"Authorization": f"Bearer {api.tokens['manage']}"}
        cases = [
            ({"everySeconds": 4}, "everySeconds", "between 5 and 86400"),
            ({"everySeconds": None, "cron": "*/2 * * * * *"}, "cron", "every 5 s"),
            ({"everySeconds": None, "cron": "0,3 * * * * *"}, "cron", "3 s apart"),
        ]
        for change, field, text in cases:
            async with client.post(
                "/v1/schedules", json={**every("c"), **change}, headers=headers
            ) as resp:
                body = await resp.json()
                assert (resp.status, body["field"]) == (422, field), (change, body)
                assert text in body["error"], body
        for ok in ({"everySeconds": 5}, {"everySeconds": None, "cron": "*/5 * * * * *"}):
            async with client.post(
                "/v1/schedules", json={**every("c"), **ok}, headers=headers
            ) as resp:
                assert resp.status == 201, await resp.text()
            async with client.delete("/v1/schedules/c", headers=headers) as resp:
                assert resp.status == 204
        # a PATCH that leaves the timing alone is not re-checked against the bounds
        await pool.execute(
            "INSERT INTO schedules (name, every_seconds, definition_key) VALUES ('old', 1, 'echo')"
        )
        async with client.patch("/v1/schedules/old", json={"priority": 2}, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        async with client.patch(
            "/v1/schedules/old", json={"everySeconds": 2}, headers=headers
        ) as resp:
            assert resp.status == 422
    finally:
        await client.close()


async def test_fired_jobs_are_not_retried_by_default_and_carry_event_and_tags(
    api: Api,
) -> None:
    r = await api.call(
        "POST",
        "/v1/schedules",
        json=every("plain", definitionVersion=1, event="order.paid", tags=["billing", "eu"]),
    )
    assert r.status == 201, r.body
    assert (r.body["event"], r.body["tags"]) == ("order.paid", ["billing", "eu"])
    assert r.body["maxConsecutiveFailures"] is None and r.body["consecutiveFailures"] == 0
    assert r.body["disabledReason"] is None and r.body["disabledAt"] is None
    r = await api.call("POST", "/v1/schedules", json=every("retried", maxAttempts=3))
    assert r.status == 201, r.body
    await api.pool.execute("UPDATE schedules SET next_fire_at = now() - interval '1 second'")
    assert (await CronService(api.pool).run_once())["fired"] == 2
    [plain] = await fired(api, "plain")
    assert plain["max_attempts"] == 1  # echo@1's default is 3: recurring runs do not retry
    assert (plain["event"], plain["tags"]) == ("order.paid", ["billing", "eu"])
    [retried] = await fired(api, "retried")
    assert retried["max_attempts"] == 3 and retried["event"] is None and retried["tags"] is None
    r = await api.call("POST", "/v1/schedules/plain/trigger")
    job = await api.pool.fetchrow("SELECT * FROM jobs WHERE id = $1::uuid", r.body["jobId"])
    assert job["max_attempts"] == 1 and job["tags"] == ["billing", "eu"]

    bad = [
        ({"event": ""}, "event"),
        ({"event": "x" * 201}, "event"),
        ({"tags": ["a", "a"]}, "tags"),
        ({"tags": [str(i) for i in range(21)]}, "tags"),
        ({"tags": [""]}, "tags"),
        ({"tags": ["x" * 101]}, "tags"),
        ({"tags": "billing"}, "tags"),
        ({"maxConsecutiveFailures": -1}, "maxConsecutiveFailures"),
    ]
    for change, field in bad:
        r = await api.call("POST", "/v1/schedules", json={**every("bad"), **change})
        assert r.status == 422, (change, r.body)
        assert r.body["field"].startswith(field), (change, r.body)
        r = await api.call("PATCH", "/v1/schedules/plain", json=change)
        assert r.status == 422, (change, r.body)
    assert await api.pool.fetchval("SELECT count(*) FROM schedules WHERE name = 'bad'") == 0
    r = await api.call("PATCH", "/v1/schedules/plain", json={"tags": None, "event": "x"})
    assert r.status == 200 and (r.body["event"], r.body["tags"]) == ("x", None)


async def test_failing_schedule_is_disabled_after_three_runs_then_fires_nothing(
    api: Api, settings: Settings, services: tuple[CronService, FailureWatch]
) -> None:
    cron, watch = services
    r = await api.call(
        "POST",
        "/v1/schedules",
        json={
            "name": "hook",
            "everySeconds": 1,
            "definitionKey": "failing",
            "params": {"reason": "sink said 500"},
            "catchupPolicy": "none",
        },
    )
    assert r.status == 201, r.body
    worker = Worker(replace(settings, **FAST_WORKER), load_modules(), pool=api.pool)
    await worker.start()
    try:
        cron.start()
        watch.start()

        async def disabled() -> asyncpg.Record | None:
            row = await api.pool.fetchrow("SELECT * FROM schedules WHERE name = 'hook'")
            return row if not row["enabled"] else None

        row = await wait_for(disabled, within=30)
        # nothing fired after the disable, however many ticks pass
        runs = cron.runs
        await cron.wait_runs(runs + 5)
        jobs = await fired(api, "hook")
        assert all(j["created_at"] < row["disabled_at"] for j in jobs)
    finally:
        await worker.stop(grace=0)
    assert all(j["max_attempts"] == 1 for j in jobs)
    failed = [j for j in jobs if j["status"] == "failed"]
    assert len(failed) >= 3
    last = max(failed, key=lambda j: j["scheduled_for"])
    assert row["disabled_reason"].startswith(
        f"disabled after 3 consecutive failed runs (last: job {last['id']}: "
    ), row["disabled_reason"]
    assert "sink said 500" in row["disabled_reason"]
    event = await api.pool.fetchval(
        "SELECT details FROM job_events WHERE event = 'schedule_disabled' AND job_id = $1",
        last["id"],
    )
    assert event == {"schedule": "hook", "reason": row["disabled_reason"]}

    r = await api.call("GET", "/v1/schedules/hook")
    assert r.body["enabled"] is False and r.body["consecutiveFailures"] == 3
    assert r.body["disabledReason"] == row["disabled_reason"] and r.body["disabledAt"]
    # re-enabling clears the streak and the reason; older failures no longer count
    r = await api.call("PATCH", "/v1/schedules/hook", json={"enabled": True})
    assert r.status == 200, r.body
    assert r.body["consecutiveFailures"] == 0 and r.body["disabledReason"] is None
    assert r.body["nextFireAt"] is not None
    await api.pool.execute("UPDATE schedules SET next_fire_at = now() WHERE name = 'hook'")
    assert (await CronService(api.pool).run_once())["fired"] == 1
    r = await api.call("GET", "/v1/schedules/hook")
    assert r.body["enabled"] is True


async def test_expiring_schedule_stops_by_itself(
    api: Api, services: tuple[CronService, FailureWatch]
) -> None:
    cron, _ = services
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2.5)
    r = await api.call(
        "POST",
        "/v1/schedules",
        json={
            "name": "brief",
            "everySeconds": 1,
            "definitionKey": "echo",
            "expiresAt": expires.isoformat(),
            "catchupPolicy": "none",
        },
    )
    assert r.status == 201, r.body
    cron.start()

    async def stopped() -> bool:
        return not await api.pool.fetchval("SELECT enabled FROM schedules WHERE name = 'brief'")

    await wait_for(stopped, within=15)
    count = len(await fired(api, "brief"))
    await cron.wait_runs(cron.runs + 5)
    jobs = await fired(api, "brief")
    assert len(jobs) == count >= 1
    assert all(j["scheduled_for"] < expires for j in jobs)
    r = await api.call("GET", "/v1/schedules/brief")
    assert r.body["enabled"] is False and r.body["nextFireAt"] is None


async def test_runs_route_lists_newest_first_with_outcomes_and_pages(api: Api) -> None:
    assert (await api.call("POST", "/v1/schedules", json=every("hist"))).status == 201
    assert (await api.call("GET", "/v1/schedules/nope/runs")).status == 404
    r = await api.call("GET", "/v1/schedules/hist/runs")
    assert r.status == 200 and r.body == {"items": [], "nextCursor": None}
    statuses = ["succeeded", "failed", "queued", "expired", "cancelled"]
    ids = []
    for i, status in enumerate(statuses):
        ids.append(
            await api.pool.fetchval(
                """
                INSERT INTO jobs (definition_key, definition_version, status, attempt,
                    max_attempts, last_error, schedule_name, scheduled_for, started_at,
                    finished_at)
                VALUES ('echo', 1, $1, 1, 2, $2, 'hist',
                    now() - make_interval(secs => 100 - $3),
                    CASE WHEN $1 = 'queued' THEN NULL ELSE now() - interval '2 seconds' END,
                    CASE WHEN $1 = 'queued' THEN NULL ELSE now() - interval '500 milliseconds' END)
                RETURNING id
                """,
                status,
                "boom" if status == "failed" else None,
                i,
            )
        )
    await api.submit()  # not a run of the schedule
    r = await api.call("GET", "/v1/schedules/hist/runs")
    items = r.body["items"]
    assert [i["jobId"] for i in items] == [str(x) for x in reversed(ids)]
    by_status = {i["status"]: i for i in items}
    assert [i["finishReason"] for i in items] == [
        "cancelled",
        "expired",
        None,
        "failed",
        "succeeded",
    ]
    assert by_status["failed"]["lastError"] == "boom"
    assert by_status["succeeded"]["durationMs"] == pytest.approx(1500, abs=5)
    assert by_status["queued"]["durationMs"] is None and by_status["queued"]["startedAt"] is None
    assert (by_status["failed"]["attempt"], by_status["failed"]["maxAttempts"]) == (1, 2)
    assert items[0]["scheduledFor"] > items[-1]["scheduledFor"]

    seen, cursor = [], None
    while True:
        r = await api.call(
            "GET",
            "/v1/schedules/hist/runs",
            params={"limit": 2, **({"cursor": cursor} if cursor else {})},
        )
        assert len(r.body["items"]) <= 2
        seen += [i["jobId"] for i in r.body["items"]]
        cursor = r.body["nextCursor"]
        if cursor is None:
            break
    assert seen == [i["jobId"] for i in items]
    r = await api.call("GET", "/v1/schedules/hist/runs", params={"status": "failed,expired"})
    assert [i["status"] for i in r.body["items"]] == ["expired", "failed"]
    r = await api.call("GET", "/v1/schedules/hist/runs", params={"status": "nope"})
    assert r.status == 422 and r.body["field"].startswith("status"), r.body
    r = await api.call("GET", "/v1/schedules/hist/runs", params={"cursor": "garbage"})
    assert (r.status, r.body["field"]) == (422, "cursor")
    # view_jobs reads runs; a plain token does not
    assert (await api.call("GET", "/v1/schedules/hist/runs", token="view")).status == 200
    assert (await api.call("GET", "/v1/schedules/hist/runs", token="plain")).status == 403
