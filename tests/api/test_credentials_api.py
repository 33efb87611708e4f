"""`/v1/credentials` through the real app: store, list, read, rotate, delete; 422s naming
the field; the refusal without JOBSERVER_SECRET_KEY; scopes; no secret in any answer. And
the submission checks of `ssh.command`'s `credential` (a 422 naming it, a 403 without
manage_jobs) on every route that creates jobs."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import asyncssh
import pytest

from jobserver.auth import create_token
from jobserver.config import Settings
from tests.api.conftest import Api, register_definitions, start_api

PRIVATE = asyncssh.generate_private_key("ssh-ed25519")
PRIVATE_TEXT = PRIVATE.export_private_key().decode()
LOCKED = PRIVATE.export_private_key("openssh", "x", rounds=4, ignore_few_rounds=True).decode()
PUBLIC_LINE = " ".join(PRIVATE.export_public_key().decode().split()[:2])
HOST = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
HOST_LINE = " ".join(HOST.export_public_key().decode().split()[:2])
PASSWORD = "pw-" + secrets.token_hex(8)
SECRET_KEY = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


async def _api(settings: Settings, pool: asyncpg.Pool, secret_key: str) -> AsyncIterator[Api]:
    await register_definitions(pool)
    tokens = {
        "plain": await create_token(pool, "plain", [], "alice"),
        "outbound": await create_token(pool, "outbound", ["outbound"], "carol"),
        "view": await create_token(pool, "view", ["view_jobs"], "viewer"),
        "manage": await create_token(pool, "manage", ["manage_jobs"], "admin"),
    }
    client, app = await start_api(
        replace(settings, host="127.0.0.1", secret_key=secret_key, min_every=1), pool
    )
    try:
        yield Api(client, app, pool, tokens)
    finally:
        await client.close()


@pytest.fixture
async def capi(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Api]:
    """The app with a JOBSERVER_SECRET_KEY."""
    async for api in _api(settings, pool, SECRET_KEY):
        yield api


@pytest.fixture
async def keyless(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Api]:
    """The app without one."""
    async for api in _api(settings, pool, ""):
        yield api


def ssh_body(name: str = "deploy", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "ssh",
        "username": "deploy",
        "privateKey": PRIVATE_TEXT,
        "password": PASSWORD,
        "hostKeys": [HOST_LINE, HOST.get_fingerprint("sha256")],
        **extra,
    }


def assert_no_secret(body: Any) -> None:
    text = json.dumps(body)
    assert PASSWORD not in text and "PRIVATE KEY" not in text
    assert PRIVATE_TEXT.splitlines()[1] not in text


async def test_create_answers_fingerprints_and_the_public_key_never_a_secret(
    capi: Api,
) -> None:
    r = await capi.call("POST", "/v1/credentials", json=ssh_body())
    assert r.status == 201, r.body
    assert_no_secret(r.body)
    assert r.body["hostKeys"] == [
        {"fingerprint": HOST.get_fingerprint("sha256"), "key": HOST_LINE}
    ]  # the fingerprint of the key given is the key itself: one entry
    assert r.body["publicKey"] == PUBLIC_LINE
    assert r.body["publicKeyFingerprint"] == PRIVATE.get_fingerprint("sha256")
    assert r.body["secrets"] == ["password", "privateKey"]
    assert r.body["createdBy"] == "manage" and r.body["keyId"].startswith("k")
    stored = await capi.pool.fetchrow("SELECT t::text AS text, secret FROM credentials t")
    assert stored is not None and PASSWORD not in stored["text"]
    assert PASSWORD.encode() not in bytes(stored["secret"])

    again = await capi.call("POST", "/v1/credentials", json=ssh_body())
    assert (again.status, again.body["code"], again.body["field"]) == (409, "conflict", "name")


async def test_list_get_rotate_and_delete(capi: Api) -> None:
    for name in ("b-ssh", "a-ssh"):
        assert (await capi.call("POST", "/v1/credentials", json=ssh_body(name))).status == 201
    smtp = {
        "name": "c-mail",
        "kind": "smtp",
        "username": "apikey",
        "password": PASSWORD,
        "host": "smtp.example.com",
        "port": 587,
        "tls": "starttls",
    }
    assert (await capi.call("POST", "/v1/credentials", json=smtp)).status == 201

    first = await capi.call("GET", "/v1/credentials", params={"limit": 2})
    assert first.status == 200
    assert [c["name"] for c in first.body["items"]] == ["a-ssh", "b-ssh"]
    rest = await capi.call(
        "GET", "/v1/credentials", params={"limit": 2, "cursor": first.body["nextCursor"]}
    )
    assert [c["name"] for c in rest.body["items"]] == ["c-mail"] and rest.body["nextCursor"] is None
    mail = rest.body["items"][0]
    assert (mail["host"], mail["port"], mail["tls"], mail["hostKeys"]) == (
        "smtp.example.com",
        587,
        "starttls",
        [],
    )
    only = await capi.call("GET", "/v1/credentials", params={"kind": "smtp"})
    assert [c["name"] for c in only.body["items"]] == ["c-mail"]
    for page in (first.body, rest.body):
        assert_no_secret(page)

    one = await capi.call("GET", "/v1/credentials/a-ssh")
    assert one.status == 200 and one.body["name"] == "a-ssh"
    assert_no_secret(one.body)
    before = await capi.pool.fetchval("SELECT secret FROM credentials WHERE name = 'a-ssh'")

    rotated = await capi.call(
        "PUT",
        "/v1/credentials/a-ssh",
        json={
            "kind": "ssh",
            "username": "ops",
            "password": "new-" + PASSWORD,
            "hostKeys": [HOST_LINE],
        },
    )
    assert rotated.status == 200, rotated.body
    assert rotated.body["username"] == "ops" and rotated.body["secrets"] == ["password"]
    assert rotated.body["publicKey"] is None and rotated.body["updatedAt"] > one.body["updatedAt"]
    after = await capi.pool.fetchval("SELECT secret FROM credentials WHERE name = 'a-ssh'")
    assert after != before and b"new-" not in bytes(after)
    kind = await capi.call(
        "PUT", "/v1/credentials/a-ssh", json={"kind": "smtp", "username": "u", "password": "p"}
    )
    assert (kind.status, kind.body["field"]) == (422, "kind")
    named = await capi.call("PUT", "/v1/credentials/nope", json=ssh_body())
    assert (named.status, named.body["field"]) == (422, "name")  # the path names it
    body = {k: v for k, v in ssh_body().items() if k != "name"}
    assert (await capi.call("PUT", "/v1/credentials/nope", json=body)).status == 404

    assert (await capi.call("DELETE", "/v1/credentials/a-ssh")).status == 204
    assert (await capi.call("GET", "/v1/credentials/a-ssh")).status == 404
    assert (await capi.call("DELETE", "/v1/credentials/a-ssh")).status == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nbroken\n"}, "privateKey"),
        ({"privateKey": None, "password": None}, "privateKey"),
        ({"privateKey": LOCKED}, "passphrase"),
        ({"hostKeys": [HOST_LINE, "ssh-ed25519 AAAAC3Nope"]}, "hostKeys[1]"),
        ({"hostKeys": None}, "hostKeys"),
        ({"hostKeys": []}, "hostKeys"),
        ({"port": 22}, "port"),
        ({"kind": "smtp"}, "privateKey"),
        ({"kind": "telnet"}, "kind"),
        ({"name": "has space"}, "name"),
        ({"username": ""}, "username"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_bad_fields_are_422s_naming_them_and_nothing_is_written(
    capi: Api, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**ssh_body(), **change}.items() if v is not None}
    r = await capi.call("POST", "/v1/credentials", json=body)
    assert (r.status, r.body["field"]) == (422, field), r.body
    assert_no_secret(r.body)
    assert await capi.pool.fetchval("SELECT count(*) FROM credentials") == 0


async def test_storing_needs_jobserver_secret_key(keyless: Api) -> None:
    r = await keyless.call("POST", "/v1/credentials", json=ssh_body())
    assert (r.status, r.body["code"]) == (503, "secret_key_missing")
    assert "JOBSERVER_SECRET_KEY" in r.body["error"]
    body = {k: v for k, v in ssh_body().items() if k != "name"}
    r = await keyless.call("PUT", "/v1/credentials/deploy", json=body)
    assert (r.status, r.body["code"]) == (503, "secret_key_missing")
    assert await keyless.pool.fetchval("SELECT count(*) FROM credentials") == 0
    listed = await keyless.call("GET", "/v1/credentials")
    assert (listed.status, listed.body["items"]) == (200, [])


@pytest.mark.parametrize("token", ["plain", "outbound", "view"])
async def test_every_credential_route_needs_manage_jobs(capi: Api, token: str) -> None:
    body = {k: v for k, v in ssh_body().items() if k != "name"}
    for method, path, payload in (
        ("POST", "/v1/credentials", ssh_body()),
        ("GET", "/v1/credentials", None),
        ("GET", "/v1/credentials/deploy", None),
        ("PUT", "/v1/credentials/deploy", body),
        ("DELETE", "/v1/credentials/deploy", None),
    ):
        r = await capi.call(method, path, token=token, json=payload)
        assert (r.status, r.body["code"]) == (403, "forbidden"), (method, path)
    assert await capi.pool.fetchval("SELECT count(*) FROM credentials") == 0


# -- submissions naming a credential ---------------------------------------------------------------


def ssh_job(credential: str = "deploy") -> dict[str, Any]:
    return {
        "definitionKey": "ssh.command",
        "params": {"host": "203.0.113.7", "command": "uptime", "credential": credential},
    }


async def test_a_job_must_name_a_stored_ssh_credential(capi: Api) -> None:
    assert (await capi.call("POST", "/v1/credentials", json=ssh_body())).status == 201
    mail = {"name": "mailer", "kind": "smtp", "username": "u", "password": PASSWORD}
    assert (await capi.call("POST", "/v1/credentials", json=mail)).status == 201

    ok = await capi.call("POST", "/v1/jobs", json=ssh_job())
    assert ok.status == 201, ok.body
    unknown = await capi.call("POST", "/v1/jobs", json=ssh_job("nope"))
    assert (unknown.status, unknown.body["code"], unknown.body["field"]) == (
        422,
        "unknown_credential",
        "params.credential",
    )
    wrong = await capi.call("POST", "/v1/jobs", json=ssh_job("mailer"))
    assert (wrong.status, wrong.body["field"]) == (422, "params.credential")
    assert "of kind smtp, not ssh" in wrong.body["error"]
    no_name = {"definitionKey": "ssh.command", "params": {"host": "h", "command": "c"}}
    missing = await capi.call("POST", "/v1/jobs", json=no_name)
    assert (missing.status, missing.body["field"]) == (422, "params.credential")

    templated = ssh_job()
    templated["params"]["command"] = "echo {{$nope}}"
    r = await capi.call("POST", "/v1/jobs", json=templated)
    assert (r.status, r.body["field"]) == (422, "params.command")
    env = ssh_job()
    env["params"]["env"] = {"1BAD": "x"}
    r = await capi.call("POST", "/v1/jobs", json=env)
    assert (r.status, r.body["field"][:10]) == (422, "params.env")

    batch = await capi.call("POST", "/v1/jobs/batch", json={"jobs": [ssh_job(), ssh_job("nope")]})
    assert (batch.status, batch.body["field"]) == (422, "jobs[1].params.credential")
    dry = await capi.call("POST", "/v1/simulate", json=ssh_job("nope"))
    assert (dry.status, dry.body["field"]) == (422, "params.credential")
    schedule = {"name": "nightly", "everySeconds": 3600, **ssh_job("nope")}
    r = await capi.call("POST", "/v1/schedules", json=schedule)
    assert (r.status, r.body["field"]) == (422, "params.credential")
    assert await capi.job_count() == 1


async def test_naming_a_credential_needs_manage_jobs(capi: Api) -> None:
    assert (await capi.call("POST", "/v1/credentials", json=ssh_body())).status == 201
    r = await capi.call("POST", "/v1/jobs", token="outbound", json=ssh_job())
    assert (r.status, r.body["code"], r.body["field"]) == (403, "forbidden", "params.credential")
    r = await capi.call("POST", "/v1/jobs/batch", token="outbound", json={"jobs": [ssh_job()]})
    assert (r.status, r.body["field"]) == (403, "jobs[0].params.credential")
    r = await capi.call("POST", "/v1/jobs", token="plain", json=ssh_job())
    assert (r.status, r.body["capability"]) == (403, "outbound")  # ssh.command calls out
    assert await capi.job_count() == 0


async def test_a_credential_named_by_saved_jobs_or_schedules_is_not_deleted(capi: Api) -> None:
    assert (await capi.call("POST", "/v1/credentials", json=ssh_body())).status == 201
    spare = {"name": "spare", "kind": "smtp", "username": "u", "password": PASSWORD}
    assert (await capi.call("POST", "/v1/credentials", json=spare)).status == 201
    saved_ids = []
    for name, trigger in (("deploy-now", {}), ("deploy-hourly", {"everySeconds": 3600})):
        r = await capi.call("POST", "/v1/saved-jobs", json={"name": name, **ssh_job(), **trigger})
        assert r.status == 201, r.body
        saved_ids.append(r.body["id"])
    r = await capi.call(
        "POST", "/v1/schedules", json={"name": "nightly", "everySeconds": 3600, **ssh_job()}
    )
    assert r.status == 201, r.body

    r = await capi.call("DELETE", "/v1/credentials/deploy")
    assert (r.status, r.body["code"], r.body["field"]) == (409, "in_use", "name"), r.body
    used = r.body["usedBy"]
    assert sorted(s["id"] for s in used["savedJobs"]) == sorted(saved_ids)
    assert {s["name"] for s in used["savedJobs"]} == {"deploy-now", "deploy-hourly"}
    # the hourly saved job's trigger is its own schedule: only the plain one is listed
    assert used["schedules"] == [{"name": "nightly"}]
    assert (used["savedJobCount"], used["scheduleCount"]) == (2, 1)
    assert "nightly" in r.body["error"] and saved_ids[0] in r.body["error"]
    assert (await capi.call("GET", "/v1/credentials/deploy")).status == 200
    # a credential nobody names goes (an smtp one: the ssh jobs' param wants ssh)
    assert (await capi.call("DELETE", "/v1/credentials/spare")).status == 204

    for sid in saved_ids:
        assert (await capi.call("DELETE", f"/v1/saved-jobs/{sid}")).status == 204
    r = await capi.call("DELETE", "/v1/credentials/deploy")
    assert r.status == 409 and r.body["usedBy"]["savedJobs"] == [], r.body
    assert (await capi.call("DELETE", "/v1/schedules/nightly")).status == 204
    assert (await capi.call("DELETE", "/v1/credentials/deploy")).status == 204
    assert (await capi.call("DELETE", "/v1/credentials/deploy")).status == 404
