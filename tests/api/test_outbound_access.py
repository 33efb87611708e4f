"""The outbound capability at submission, and internal owners no token can take.

- A definition that calls out (`call.api`, published with `outbound: true`) is submitted only
  by tokens with the `outbound` scope (or manage_jobs): others get a 403 naming it, and nothing
  is written.
- The attack of issue 11, as written: a token named `scheduler` saw every schedule-fired job,
  `anonymous` every job submitted while auth was off. Such names are refused at creation, and a
  token created before the rule is refused at authentication.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from jobserver.api.keys import TOKEN_CACHE_KEY
from jobserver.auth import create_token, generate_token
from jobserver.config import Settings
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.db.tokens import token_insert
from jobserver.owners import ANONYMOUS, SCHEDULER
from tests.api.conftest import Api, start_api
from tests.api.test_auth import _cli

CALL = {"definitionKey": "call.api", "params": {"endpoint": "http://example.invalid/x"}}


async def _outbound_token(api: Api) -> str:
    return await create_token(api.pool, "caller", ["outbound"], "carol")


async def test_definitions_publish_the_outbound_flag(api: Api) -> None:
    r = await api.call("GET", "/v1/definitions", token="view")
    flags = {d["ref"]: d["outbound"] for d in r.body["items"]}
    assert flags["call.api@1"] is True and flags["echo@1"] is False


@pytest.mark.parametrize("token", ["plain", "view"])
async def test_a_token_without_the_capability_gets_403_and_nothing_is_written(
    api: Api, token: str
) -> None:
    before = await api.job_count()
    r = await api.call("POST", "/v1/jobs", token=token, json=CALL)
    assert r.status == 403, r.body
    assert r.body["code"] == "forbidden" and r.body["capability"] == "outbound"
    assert "outbound capability" in r.body["error"] and r.body["field"] == "definitionKey"
    batch = {"jobs": [{"definitionKey": "echo"}, CALL]}
    r = await api.call("POST", "/v1/jobs/batch", token=token, json=batch)
    assert r.status == 403 and r.body["field"] == "jobs[1].definitionKey"
    assert await api.job_count() == before
    # the same token still submits what does not call out
    assert (
        await api.call("POST", "/v1/jobs", token=token, json={"definitionKey": "echo"})
    ).status == 201


async def test_outbound_and_manage_tokens_may_submit_call_api(api: Api) -> None:
    caller = await _outbound_token(api)
    for token in (caller, "manage"):
        r = await api.call("POST", "/v1/jobs", token=token, json=CALL)
        assert r.status == 201, r.body
        r = await api.call("POST", "/v1/jobs/batch", token=token, json={"jobs": [CALL]})
        assert r.status == 201, r.body


async def test_a_host_header_is_refused_at_submission(api: Api) -> None:
    body = {**CALL, "params": {**CALL["params"], "headers": {"Host": "metadata.internal"}}}
    r = await api.call("POST", "/v1/jobs", json=body)
    assert r.status == 422 and r.body["field"].startswith("params.headers")


# -- reserved owners -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "owner"),
    [
        ("scheduler", "scheduler"),
        ("anonymous", "anonymous"),
        ("Scheduler", "Scheduler"),
        ("mine", "scheduler"),
        ("mine", SCHEDULER),
        ("mine", ANONYMOUS),
        ("system:x", "system:x"),
        ("a b", "a b"),
    ],
)
async def test_reserved_or_malformed_names_cannot_be_created(
    api: Api, name: str, owner: str
) -> None:
    with pytest.raises(ValueError, match="token"):
        await create_token(api.pool, name, [], owner)


async def test_tokens_cli_refuses_reserved_names_and_grants_outbound(
    api: Api, database_url: str
) -> None:
    code, _, err = await _cli(database_url, "create", "--name", "scheduler")
    assert code == 2 and "reserved" in err
    code, _, err = await _cli(database_url, "create", "--name", "x", "--owner", "anonymous")
    assert code == 2 and "reserved" in err
    code, out, err = await _cli(database_url, "create", "--name", "hook", "--outbound")
    assert code == 0 and "outbound" in err, err
    r = await api.call("POST", "/v1/jobs", token=out.strip(), json=CALL)
    assert r.status == 201, r.body
    code, out, err = await _cli(database_url, "create", "--name", "plain2")
    r = await api.call("POST", "/v1/jobs", token=out.strip(), json=CALL)
    assert r.status == 403


async def _schedule_and_anonymous_jobs(api: Api) -> list[Any]:
    async with api.pool.acquire() as conn, conn.transaction():
        return await job_insert_many(
            conn, [NewJob("echo", 1, 1, owner=SCHEDULER), NewJob("echo", 1, 1, owner=ANONYMOUS)]
        )


@pytest.mark.parametrize("name", ["scheduler", "anonymous"])
async def test_a_token_named_like_an_internal_owner_sees_nothing(api: Api, name: str) -> None:
    """The attack as written, with a token stored before the rule (inserted directly): it is
    refused at authentication, and today's internal owners are out of reach anyway."""
    fired, anon = await _schedule_and_anonymous_jobs(api)
    # jobs stored under the old internal names, as before migration 0003
    async with api.pool.acquire() as conn, conn.transaction():
        old = await job_insert_many(conn, [NewJob("echo", 1, 1, owner=name)])
    plaintext, digest, prefix = generate_token()
    await token_insert(api.pool, name, digest, prefix, [], name)
    api.app[TOKEN_CACHE_KEY].clear()
    for path in ("/v1/jobs", f"/v1/jobs/{fired}", f"/v1/jobs/{anon}", f"/v1/jobs/{old[0]}"):
        r = await api.call("GET", path, token=plaintext)
        assert r.status == 401, (path, r.body)


async def test_internal_owners_are_the_system_values(settings: Settings, api: Api) -> None:
    """Schedule fires and auth-disabled submissions are owned by values with `:`, which no
    token name or owner may contain."""
    client, _ = await start_api(replace(settings, auth="disabled"), api.pool)
    try:
        async with client.post("/v1/jobs", json={"definitionKey": "echo"}) as resp:
            assert (await resp.json())["owner"] == ANONYMOUS == "system:anonymous"
    finally:
        await client.close()
    from jobserver.scheduler.cron import SCHEDULE_OWNER

    assert SCHEDULE_OWNER == SCHEDULER == "system:scheduler"
