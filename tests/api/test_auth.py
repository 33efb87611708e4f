"""Authentication and permissions: the 401/403/404 matrix, token storage, CLI, auth disabled."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
import uuid
from dataclasses import replace

import asyncpg
import pytest

from jobserver.api.keys import TOKEN_CACHE_KEY
from jobserver.config import Settings
from jobserver.db.pool import create_pool
from jobserver.db.tokens import token_revoke
from jobserver.logs import JsonFormatter
from tests.api.conftest import Api, start_api, wait_for

PROTECTED = [
    ("POST", "/v1/jobs", {"definitionKey": "echo", "params": {}}),
    ("POST", "/v1/jobs/batch", {"jobs": [{"definitionKey": "echo"}]}),
    ("GET", "/v1/jobs", None),
    ("GET", "/v1/jobs/{id}", None),
    ("POST", "/v1/jobs/{id}/cancel", None),
    ("GET", "/v1/jobs/{id}/events", None),
    ("GET", "/v1/jobs/{id}/attempts", None),
    ("GET", "/v1/definitions", None),
    ("GET", "/v1/schedules/nightly/runs", None),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
async def test_missing_invalid_and_malformed_tokens_get_401(
    api: Api, method: str, path: str, body: object
) -> None:
    path = path.replace("{id}", str(uuid.uuid4()))
    for token, headers in (
        (None, None),
        ("js_not-a-real-token", None),
        (None, {"Authorization": "Basic dXNlcjpwYXNz"}),
        (None, {"Authorization": "Bearer "}),
        (None, {"Authorization": "Bearer " + "x" * 5000}),
    ):
        r = await api.call(method, path, token=token, json=body, headers=headers)
        assert r.status == 401, (token, headers, r.body)
        assert r.body["code"] == "unauthorized"
    assert await api.job_count() == 0


async def test_revoked_token_stops_working_within_cache_ttl(api: Api) -> None:
    api.app[TOKEN_CACHE_KEY].ttl = 0.2
    assert (await api.call("GET", "/v1/jobs", token="plain")).status == 200
    assert await token_revoke(api.pool, "plain")

    async def rejected() -> bool:
        return (await api.call("GET", "/v1/jobs", token="plain")).status == 401

    await wait_for(rejected, within=3)
    r = await api.call("GET", "/v1/jobs", token="plain")
    assert r.body["code"] == "unauthorized"


async def test_scope_matrix(api: Api) -> None:
    """Each scope on each route gets the documented status."""
    own = await api.submit(token="plain")
    schedule = {"name": "nightly", "cron": "0 3 * * *", "definitionKey": "echo"}
    assert (await api.call("POST", "/v1/schedules", json=schedule)).status == 201
    path_of = {p: p.replace("{id}", own["jobId"]) for _, p, _ in PROTECTED}
    expected = {
        # route: (plain, view, manage); plain owns the job
        ("POST", "/v1/jobs"): (201, 201, 201),
        ("POST", "/v1/jobs/batch"): (201, 201, 201),
        ("GET", "/v1/jobs"): (200, 200, 200),
        ("GET", "/v1/jobs/{id}"): (200, 200, 200),
        ("GET", "/v1/jobs/{id}/events"): (200, 200, 200),
        ("GET", "/v1/jobs/{id}/attempts"): (200, 200, 200),
        ("GET", "/v1/definitions"): (403, 200, 200),
        ("GET", "/v1/schedules/nightly/runs"): (403, 200, 200),
    }
    for method, path, body in PROTECTED:
        if (method, path) not in expected:
            continue
        for token, want in zip(("plain", "view", "manage"), expected[(method, path)], strict=True):
            r = await api.call(method, path_of[path], token=token, json=body)
            assert r.status == want, (method, path, token, r.body)
            if want == 403:
                assert r.body["code"] == "forbidden"
    # cancel: the owner may; view_jobs sees but may not cancel another's job; manage may.
    other = await api.submit(token="other")
    r = await api.call("POST", f"/v1/jobs/{other['jobId']}/cancel", token="view")
    assert (r.status, r.body["code"]) == (403, "forbidden")
    r = await api.call("POST", f"/v1/jobs/{own['jobId']}/cancel", token="plain")
    assert r.status == 200 and r.body["status"] == "cancelled"
    r = await api.call("POST", f"/v1/jobs/{other['jobId']}/cancel", token="manage")
    assert r.status == 200 and r.body["status"] == "cancelled"


async def test_public_routes_need_no_token(api: Api) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        r = await api.call("GET", path, token=None)
        assert r.status == 200, (path, r.body)
        # a bad token on a public route is ignored, not rejected
        assert (await api.call("GET", path, token="garbage")).status == 200


async def test_other_owners_job_is_404_and_not_listed(api: Api) -> None:
    bobs = await api.submit(token="other")
    alices = await api.submit(token="plain")
    for method, suffix in (
        ("GET", ""),
        ("POST", "/cancel"),
        ("GET", "/events"),
        ("GET", "/attempts"),
    ):
        r = await api.call(method, f"/v1/jobs/{bobs['jobId']}{suffix}", token="plain")
        assert (r.status, r.body["code"]) == (404, "not_found"), (suffix, r.body)
    r = await api.call("GET", "/v1/jobs", token="plain")
    assert [j["jobId"] for j in r.body["items"]] == [alices["jobId"]]
    r = await api.call("GET", "/v1/jobs/count", token="plain")
    assert r.body == {"total": 1, "isEstimate": False}
    r = await api.call("GET", "/v1/jobs", token="view")
    assert {j["jobId"] for j in r.body["items"]} == {alices["jobId"], bobs["jobId"]}
    assert (await api.call("GET", f"/v1/jobs/{bobs['jobId']}", token="view")).status == 200
    # Bob's job was not cancelled by Alice's attempt.
    assert (await api.call("GET", f"/v1/jobs/{bobs['jobId']}")).body["status"] == "queued"
    # Idempotency keys are per owner: the same key for two owners makes two jobs.
    a = await api.submit(token="plain", idempotencyKey="k1")
    b = await api.submit(token="other", idempotencyKey="k1")
    assert a["jobId"] != b["jobId"]


async def test_tokens_are_stored_only_as_hashes_and_never_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in api.tokens:
        await api.call("GET", "/v1/jobs", token=name)
    await api.call("GET", "/v1/jobs", token="js_wrong-token-value")
    rows = await api.pool.fetch("SELECT * FROM api_tokens")
    assert len(rows) == len(api.tokens)
    dump = repr([dict(r) for r in rows])
    for name, plaintext in api.tokens.items():
        assert plaintext.startswith("js_") and len(plaintext) >= 43
        assert plaintext not in dump
        assert plaintext[3:] not in dump
        row = next(r for r in rows if r["name"] == name)
        assert row["token_hash"] == hashlib.sha256(plaintext.encode()).hexdigest()
        assert row["last_used_at"] is not None
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "/v1/jobs" in logged
    for plaintext in [*api.tokens.values(), "js_wrong-token-value"]:
        assert plaintext not in logged
    assert "Authorization" not in logged and "Bearer" not in logged


async def test_readyz_reports_database_down(settings: Settings) -> None:
    dead = await create_pool(
        "postgresql://nobody@127.0.0.1:9/nothing",
        replace(settings, db_pool_connection_timeout_ms=300),
        min_size=0,
    )
    client, _ = await start_api(settings, dead)
    try:
        async with client.get("/readyz") as resp:
            body = await resp.json()
            assert resp.status == 503
            assert body["code"] == "database_unavailable"
        async with client.get("/healthz") as resp:
            assert resp.status == 200
        # Any DB-backed route answers 503, not 500, while the database is down.
        async with client.get("/v1/jobs", headers={"Authorization": "Bearer js_x"}) as resp:
            assert resp.status == 503
            assert (await resp.json())["code"] == "database_unavailable"
    finally:
        await client.close()
        await dead.close()


async def test_auth_disabled_serves_anonymous_and_warns(
    settings: Settings, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.api.conftest import register_definitions

    await register_definitions(pool)
    caplog.set_level(logging.WARNING, logger="jobserver.api")
    client, _ = await start_api(replace(settings, auth="disabled"), pool)
    try:
        assert any("DISABLED" in r.getMessage() for r in caplog.records)
        async with client.post("/v1/jobs", json={"definitionKey": "echo"}) as resp:
            assert resp.status == 201, await resp.text()
            assert (await resp.json())["owner"] == "system:anonymous"
        async with client.get("/v1/definitions") as resp:
            assert resp.status == 200
    finally:
        await client.close()


async def _cli(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobserver.cli.tokens",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_tokens_cli_create_list_revoke(api: Api, database_url: str) -> None:
    code, out, err = await _cli(
        database_url, "create", "--name", "ci", "--scope", "view_jobs", "--owner", "team"
    )
    assert code == 0, err
    token = out.strip()
    assert token.startswith("js_")
    r = await api.call("GET", "/v1/definitions", token=token)
    assert r.status == 200
    code, out, _ = await _cli(database_url, "list")
    assert code == 0 and "ci" in out and "view_jobs" in out and token not in out
    code, _, err = await _cli(database_url, "create", "--name", "ci")
    assert code == 1 and "already exists" in err
    code, _, _ = await _cli(database_url, "revoke", "ci")
    assert code == 0
    code, _, err = await _cli(database_url, "revoke", "ci")
    assert code == 1 and "no active token" in err
    api.app[TOKEN_CACHE_KEY].clear()
    assert (await api.call("GET", "/v1/definitions", token=token)).status == 401


async def test_tokens_cli_sets_and_changes_quotas(api: Api, database_url: str) -> None:
    code, out, err = await _cli(
        database_url, "create", "--name", "q", "--max-running", "3", "--max-queued", "1"
    )
    assert code == 0, err
    token = out.strip()
    row = await api.pool.fetchrow("SELECT max_running, max_queued FROM api_tokens WHERE name = 'q'")
    assert (row["max_running"], row["max_queued"]) == (3, 1)
    body = {"definitionKey": "echo", "params": {"message": "hi"}}
    assert (await api.call("POST", "/v1/jobs", token=token, json=body)).status == 201
    assert (await api.call("POST", "/v1/jobs", token=token, json=body)).status == 429
    code, out, _ = await _cli(database_url, "list")
    line = next(x for x in out.splitlines() if x.startswith("q "))
    assert line.split()[4:6] == ["3", "1"]
    # change one, keep the other; `default` clears
    code, _, err = await _cli(database_url, "quotas", "q", "--max-queued", "default")
    assert code == 0, err
    row = await api.pool.fetchrow("SELECT max_running, max_queued FROM api_tokens WHERE name = 'q'")
    assert (row["max_running"], row["max_queued"]) == (3, None)
    api.app[TOKEN_CACHE_KEY].clear()
    assert (await api.call("POST", "/v1/jobs", token=token, json=body)).status == 201
    for bad in (
        ("create", "--name", "z", "--max-running", "0"),
        ("quotas", "q", "--max-queued", "-1"),
    ):
        code, _, err = await _cli(database_url, *bad)
        assert code == 2 and "must be at least 1" in err, err
    code, _, err = await _cli(database_url, "quotas", "ghost", "--max-running", "2")
    assert code == 1 and "no active token" in err
