"""`GET /v1/definitions/{key}`: one job type with its params schema, defaults, versions and
outbound flag; the latest version unless `version` is given; 404s naming the key or version."""

from __future__ import annotations

import jsonschema_rs

from jobserver.api.keys import DEFINITION_CACHE_KEY
from jobserver.api.schemas import DEFINITION_DETAIL
from jobserver.definitions.log_message import SCHEMA as LOG_SCHEMA
from tests.api.conftest import Api

_valid = jsonschema_rs.validator_for(DEFINITION_DETAIL)


async def test_one_job_type_with_its_schema_and_defaults(api: Api) -> None:
    r = await api.call("GET", "/v1/definitions/log.message", token="view")
    assert r.status == 200, r.body
    assert not list(_valid.iter_errors(r.body))
    body = r.body
    assert (body["key"], body["version"], body["ref"], body["latest"]) == (
        "log.message",
        1,
        "log.message@1",
        True,
    )
    assert body["paramsSchema"] == LOG_SCHEMA
    assert body["paramDefaults"] == {"level": "info", "metadata": {}, "category": "general"}
    assert body["templated"] == ["message", "metadata", "category"]
    assert (body["defaultMaxAttempts"], body["timeoutSeconds"]) == (3, 60)
    assert body["outbound"] is False and body["versions"] == [1]
    assert body["description"].startswith("Write a structured entry")
    outbound = await api.call("GET", "/v1/definitions/http.request", token="view")
    assert outbound.status == 200 and outbound.body["outbound"] is True
    assert outbound.body["paramDefaults"]["method"] == "GET"


async def test_latest_version_unless_one_is_asked_for(api: Api) -> None:
    latest = await api.call("GET", "/v1/definitions/echo", token="view")
    assert latest.status == 200, latest.body
    assert (latest.body["version"], latest.body["latest"]) == (2, True)
    assert latest.body["versions"] == [1, 2]
    assert latest.body["defaultMaxAttempts"] == 7
    assert latest.body["templated"] is None  # echo@2 is a test definition: no code here
    first = await api.call("GET", "/v1/definitions/echo", token="view", params={"version": "1"})
    assert first.status == 200, first.body
    assert (first.body["version"], first.body["latest"], first.body["versions"]) == (
        1,
        False,
        [1, 2],
    )
    assert first.body["paramDefaults"] == {}
    assert first.body["templated"] == []  # shipped code that templates nothing
    # a version the database has but this process has no code for
    await api.pool.execute(
        "INSERT INTO job_definitions (key, version, fingerprint) VALUES ('remote.only', 4, 'f')"
    )
    api.app[DEFINITION_CACHE_KEY].invalidate()  # else found within a second (the miss refresh)
    remote = await api.call("GET", "/v1/definitions/remote.only", token="view")
    assert remote.status == 200, remote.body
    assert (remote.body["templated"], remote.body["paramsSchema"]) == (None, None)
    assert not list(_valid.iter_errors(remote.body))


async def test_unknown_keys_and_versions_are_404s_naming_them(api: Api) -> None:
    r = await api.call("GET", "/v1/definitions/no.such.type", token="view")
    assert (r.status, r.body["code"], r.body["field"]) == (404, "not_found", "key")
    assert "'no.such.type'" in r.body["error"]
    r = await api.call("GET", "/v1/definitions/echo", token="view", params={"version": "9"})
    assert (r.status, r.body["field"]) == (404, "version")
    assert "'echo'" in r.body["error"] and "9" in r.body["error"]
    r = await api.call("GET", "/v1/definitions/" + "x" * 400, token="view")
    assert r.status == 404
    for bad in ("0", "-1", "two", "99999999999"):
        r = await api.call("GET", "/v1/definitions/echo", token="view", params={"version": bad})
        assert (r.status, r.body["field"]) == (422, "version"), (bad, r.body)
    r = await api.call("GET", "/v1/definitions/echo", token="view", params={"v": "1"})
    assert (r.status, r.body["field"]) == (422, "v")


async def test_a_plain_token_gets_403(api: Api) -> None:
    for token, status in (("plain", 403), ("view", 200), ("manage", 200), (None, 401)):
        r = await api.call("GET", "/v1/definitions/echo", token=token)
        assert r.status == status, (token, r.body)
