"""What one tenant may ask of the shared fleet at submission (the hardening issue, case 6):
a job only lowers its definition's attempts and timeout, high priorities need manage_jobs, and
an owner's queued jobs stay within its quota (429 quota_exceeded, nothing written)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg

from jobserver.auth import create_token
from jobserver.config import Settings
from tests.api.conftest import Api, start_api

ECHO = {"definitionKey": "echo", "definitionVersion": 1, "params": {"message": "hi"}}


async def test_a_job_cannot_raise_its_definitions_timeout_or_attempts(api: Api) -> None:
    # the attack as written: a week-long timeout on a definition that allows 60 s
    for token in ("plain", "manage"):
        r = await api.call("POST", "/v1/jobs", token=token, json={**ECHO, "timeoutSeconds": 604800})
        assert (r.status, r.body["field"]) == (422, "timeoutSeconds"), r.body
        r = await api.call("POST", "/v1/jobs", token=token, json={**ECHO, "maxAttempts": 4})
        assert (r.status, r.body["field"]) == (422, "maxAttempts"), r.body
    batch = {"jobs": [ECHO, {**ECHO, "maxAttempts": 50}]}
    r = await api.call("POST", "/v1/jobs/batch", token="plain", json=batch)
    assert (r.status, r.body["field"]) == (422, "jobs[1].maxAttempts")
    assert await api.job_count() == 0
    # lowering both is fine, and equal to the definition's is fine
    j = await api.submit("plain", timeoutSeconds=5, maxAttempts=1)
    assert (j["timeoutSeconds"], j["maxAttempts"]) == (5, 1)
    j = await api.submit("plain", timeoutSeconds=60, maxAttempts=3)
    assert (j["timeoutSeconds"], j["maxAttempts"]) == (60, 3)


async def test_a_schedule_cannot_raise_its_definitions_attempts(api: Api) -> None:
    body = {"name": "s", "everySeconds": 60, **ECHO, "maxAttempts": 9}
    r = await api.call("POST", "/v1/schedules", json=body)
    assert (r.status, r.body["field"]) == (422, "maxAttempts")
    assert await api.pool.fetchval("SELECT count(*) FROM schedules") == 0


async def test_priorities_above_the_bound_need_manage_jobs(api: Api) -> None:
    r = await api.call("POST", "/v1/jobs", token="plain", json={**ECHO, "priority": 1000})
    assert (r.status, r.body["code"], r.body["field"]) == (403, "forbidden", "priority")
    assert "MAX_PRIORITY_PLAIN" in r.body["error"]
    r = await api.call(
        "POST", "/v1/jobs/batch", token="plain", json={"jobs": [ECHO, {**ECHO, "priority": 11}]}
    )
    assert (r.status, r.body["field"]) == (403, "jobs[1].priority")
    assert await api.job_count() == 0
    assert (await api.submit("plain", priority=10))["priority"] == 10
    assert (await api.submit("plain", priority=-1000))["priority"] == -1000
    assert (await api.submit("manage", priority=1000))["priority"] == 1000


async def _quota_api(settings: Settings, pool: asyncpg.Pool, **changes: object) -> Api:
    client, app = await start_api(replace(settings, host="127.0.0.1", **changes), pool)  # type: ignore[arg-type]
    return Api(client, app, pool, {})


async def test_queued_quota_refuses_past_it_and_writes_nothing(api: Api) -> None:
    token = await create_token(api.pool, "capped", [], "tenant", max_queued=3)
    r = await api.call("POST", "/v1/jobs/batch", token=token, json={"jobs": [ECHO, ECHO]})
    assert r.status == 201
    assert (await api.call("POST", "/v1/jobs", token=token, json=ECHO)).status == 201
    r = await api.call("POST", "/v1/jobs", token=token, json=ECHO)
    assert (r.status, r.body["code"]) == (429, "quota_exceeded"), r.body
    assert (r.body["maxQueued"], r.body["queued"]) == (3, 3)
    r = await api.call("POST", "/v1/jobs/batch", token=token, json={"jobs": [ECHO]})
    assert r.status == 429
    assert await api.pool.fetchval("SELECT count(*) FROM jobs WHERE owner = 'tenant'") == 3
    # other owners are not affected
    assert (await api.call("POST", "/v1/jobs", token="plain", json=ECHO)).status == 201
    # a job leaving the queue makes room for exactly one more
    await api.pool.execute(
        "UPDATE jobs SET status = 'running' WHERE id = (SELECT id FROM jobs"
        " WHERE owner = 'tenant' LIMIT 1)"
    )
    assert (await api.call("POST", "/v1/jobs", token=token, json=ECHO)).status == 201
    assert (await api.call("POST", "/v1/jobs", token=token, json=ECHO)).status == 429


async def test_a_repeat_at_the_quota_is_answered_with_the_stored_job(api: Api) -> None:
    token = await create_token(api.pool, "capped", [], "tenant", max_queued=1)
    body = {**ECHO, "idempotencyKey": "k1"}
    first = await api.call("POST", "/v1/jobs", token=token, json=body)
    assert first.status == 201
    again = await api.call("POST", "/v1/jobs", token=token, json=body)
    assert (again.status, again.body["jobId"]) == (200, first.body["jobId"])
    r = await api.call("POST", "/v1/jobs/batch", token=token, json={"jobs": [body]})
    assert (r.status, r.body["created"]) == (200, 0)


async def test_concurrent_submissions_never_pass_the_quota(api: Api) -> None:
    token = await create_token(api.pool, "capped", [], "tenant", max_queued=10)
    replies = await asyncio.gather(
        *(api.call("POST", "/v1/jobs", token=token, json=ECHO) for _ in range(40))
    )
    assert sorted(r.status for r in replies) == [201] * 10 + [429] * 30
    assert await api.pool.fetchval("SELECT count(*) FROM jobs WHERE owner = 'tenant'") == 10


async def test_the_smallest_quota_of_an_owners_tokens_holds(api: Api) -> None:
    loose = await create_token(api.pool, "loose", [], "tenant", max_queued=100)
    await create_token(api.pool, "tight", [], "tenant", max_queued=1)
    assert (await api.call("POST", "/v1/jobs", token=loose, json=ECHO)).status == 201
    assert (await api.call("POST", "/v1/jobs", token=loose, json=ECHO)).status == 429


async def test_the_default_quota_comes_from_the_environment(
    settings: Settings, pool: asyncpg.Pool, api: Api
) -> None:
    limited = await _quota_api(settings, pool, owner_max_queued=2)
    try:
        token = await create_token(pool, "t", [], "tenant")
        for want in (201, 201, 429):
            assert (await limited.call("POST", "/v1/jobs", token=token, json=ECHO)).status == want
        # a token's own quota holds over the default
        own = await create_token(pool, "own", [], "roomy", max_queued=5)
        r = await limited.call("POST", "/v1/jobs/batch", token=own, json={"jobs": [ECHO] * 5})
        assert r.status == 201
    finally:
        await limited.client.close()


async def test_the_slot_hoarding_attack_as_written_is_refused(api: Api) -> None:
    """10 process.batch jobs with a week's timeout, priority 1000 and long delays once filled a
    worker for days; each part of that request is now refused, and nothing is written."""
    attack = {
        "definitionKey": "process.batch",
        "params": {"items": list(range(10)), "batchSize": 1, "delayMs": 600000},
        "timeoutSeconds": 604800,
        "priority": 1000,
    }
    r = await api.call("POST", "/v1/jobs/batch", token="plain", json={"jobs": [attack] * 10})
    assert (r.status, r.body["field"]) == (403, "jobs[0].priority")
    del attack["priority"]
    r = await api.call("POST", "/v1/jobs/batch", token="plain", json={"jobs": [attack] * 10})
    assert (r.status, r.body["field"]) == (422, "jobs[0].params.delayMs")
    attack["params"] = {"items": list(range(10)), "batchSize": 1, "delayMs": 1000}
    r = await api.call("POST", "/v1/jobs/batch", token="plain", json={"jobs": [attack] * 10})
    assert (r.status, r.body["field"]) == (422, "jobs[0].timeoutSeconds")
    assert await api.job_count() == 0
