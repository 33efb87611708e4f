"""The admin console's job management (`gatrix-job-management.md`) under `/gatrix`: every
example request of the document sent as written (host, port, token and ids ours; example URLs a
loopback receiver), the execute-then-executions behaviour with a real worker, paging, bad input
(a 4xx naming the field, nothing written), malformed ids and other owners' jobs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import asyncssh
import pytest

from jobserver.config import Settings
from jobserver.credentials.keyring import Keyring
from jobserver.registry import load_modules
from jobserver.worker.worker import Worker
from tests.api.conftest import FAST_WORKER, Api
from tests.waiting import wait_for
from tests.worker.credentials import keyring, store_credential  # noqa: F401
from tests.worker.http_receiver import Receiver, allow_loopback, receiver  # noqa: F401

P = "/gatrix"
JOB_FIELDS = {"id", "name", "jobTypeId", "jobDataMap", "memo", "isEnabled", "tags",
              "createdBy", "updatedBy"}  # fmt: skip
EXAMPLE_FIELDS = {"job_type_id", "job_data_map", "description", "is_enabled",
                  "max_retry_count", "timeout_seconds", "schedule"}  # fmt: skip
EXECUTION_FIELDS = {"id", "job_id", "status", "started_at", "completed_at", "result",
                    "error_message", "retry_count"}  # fmt: skip

# The document's log_message configuration, as written.
LOG_CONFIG = {
    "level": "info",
    "message": "User login successful",
    "metadata": {
        "userId": 123,
        "ip": "192.168.1.100",
        "userAgent": "Mozilla/5.0...",
        "timestamp": "2024-01-01T00:00:00Z",
    },
    "category": "authentication",
}


@pytest.fixture
async def worker(compat_api: Api, settings: Settings) -> AsyncIterator[Worker]:
    w = Worker(replace(settings, **FAST_WORKER), load_modules(), pool=compat_api.pool)
    await w.start()
    yield w
    await w.stop(grace=0)


def is_time(value: Any) -> bool:
    return isinstance(value, str) and dt.datetime.fromisoformat(value) is not None


def assert_job(job: dict[str, Any]) -> None:
    assert job.keys() >= JOB_FIELDS | EXAMPLE_FIELDS, job
    assert isinstance(job["id"], str) and isinstance(job["name"], str)
    assert isinstance(job["jobTypeId"], int) and isinstance(job["jobDataMap"], dict)
    assert isinstance(job["isEnabled"], bool) and isinstance(job["tags"], list)
    assert job["job_type_id"] == job["jobTypeId"] and job["job_data_map"] == job["jobDataMap"]
    assert job["is_enabled"] == job["isEnabled"] and job["description"] == job["memo"]


def assert_error(body: Any, code: str, field: str | None = None) -> None:
    assert body["success"] is False and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str)
    if field is not None:
        assert body["error"]["details"] == {"field": field}, body
        assert field in body["error"]["message"]


async def create(api: Api, body: dict[str, Any], token: str = "manage") -> dict[str, Any]:
    r = await api.call("POST", f"{P}/api/v1/jobs", token=token, json=body)
    assert r.status == 201, r.body
    assert r.body["success"] is True
    assert_job(r.body["data"])
    return dict(r.body["data"])


async def saved_count(api: Api) -> int:
    return int(await api.pool.fetchval("SELECT count(*) FROM saved_jobs"))


# -- the document's usage examples ----------------------------------------------------------


async def test_creating_an_email_job(compat_api: Api) -> None:
    r = await compat_api.call(
        "POST",
        "/v1/mail-templates",
        json={"name": "welcome", "subject": "Welcome", "text": "Hi {{ username }}"},
    )
    assert r.status == 201, r.body
    email_job = {
        "name": "Welcome Email",
        "job_type_id": 1,  # mailsend
        "job_data_map": {
            "to": "{{user.email}}",
            "subject": "Welcome to Gatrix",
            "template": "welcome",
            "variables": {"username": "{{user.name}}", "activationLink": "{{activation.url}}"},
        },
        "description": "Send welcome email to new users",
        "is_enabled": True,
        "max_retry_count": 3,
        "timeout_seconds": 60,
        "schedule": None,  # One-time execution
    }
    job = await create(compat_api, email_job)
    assert (job["jobTypeId"], job["jobTypeName"], job["name"]) == (1, "mailsend", "Welcome Email")
    assert job["job_data_map"] == email_job["job_data_map"]  # placeholders kept as written
    assert (job["max_retry_count"], job["timeout_seconds"], job["schedule"]) == (3, 60, None)
    assert job["is_enabled"] is True and job["memo"] == "Send welcome email to new users"
    row = await compat_api.pool.fetchrow("SELECT * FROM saved_jobs WHERE name = 'Welcome Email'")
    assert row["definition_key"] == "mail.send" and row["max_attempts"] == 4
    # the document's mailsend configuration
    config = {
        "to": "user@example.com",
        "subject": "Welcome to Gatrix",
        "template": "welcome",
        "variables": {
            "username": "John Doe",
            "activationLink": "https://example.com/activate/123",
        },
    }
    job = await create(compat_api, {"name": "mail", "jobTypeId": 1, "jobDataMap": config})
    assert job["jobDataMap"] == config and job["schedule"] is None


async def test_creating_a_scheduled_backup_job(compat_api: Api, keyring: Keyring) -> None:  # noqa: F811
    host = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    await store_credential(
        compat_api.pool,
        keyring,
        "backup.example.com",
        kind="ssh",
        username="backup",
        password="secret-pw",
        hostKeys=[host.get_fingerprint("sha256")],
    )
    backup_job = {
        "name": "Daily Database Backup",
        "job_type_id": 3,  # ssh_command
        "job_data_map": {
            "host": "backup.example.com",
            "username": "backup",
            "command": "/scripts/backup-database.sh",
            "timeout": 1800000,  # 30 minutes
        },
        "description": "Daily backup of main database",
        "is_enabled": True,
        "max_retry_count": 2,
        "timeout_seconds": 1800,
        "schedule": "0 2 * * *",  # Every day at 2 AM
    }
    job = await create(compat_api, backup_job)
    assert job["jobTypeId"] == 3 and job["schedule"] == "0 2 * * *"
    assert job["jobDataMap"] == {**backup_job["job_data_map"], "credential": "backup.example.com"}
    row = await compat_api.pool.fetchrow("SELECT * FROM saved_jobs WHERE id = $1::uuid", job["id"])
    assert row["params"]["timeout"] == 1800 and row["cron"] == "0 2 * * *"
    assert row["max_attempts"] == 3 and row["timeout_seconds"] == 1800
    # the document's ssh_command configuration, with a credential of its own
    await store_credential(
        compat_api.pool,
        keyring,
        "nginx-admin",
        kind="ssh",
        username="admin",
        password="secret-pw",
        hostKeys=[host.get_fingerprint("sha256")],
    )
    config = {
        "host": "server.example.com",
        "port": 22,
        "username": "admin",
        "command": "systemctl restart nginx",
        "timeout": 60000,
        "workingDirectory": "/var/www",
        "credential": "nginx-admin",
    }
    job = await create(compat_api, {"name": "nginx", "jobTypeId": 3, "jobDataMap": config})
    assert job["jobDataMap"] == config


async def test_ssh_job_without_its_credential_names_it(compat_api: Api) -> None:
    before = await saved_count(compat_api)
    r = await compat_api.call(
        "POST",
        f"{P}/api/v1/jobs",
        json={
            "name": "restart",
            "jobTypeId": 3,
            "jobDataMap": {
                "host": "server.example.com",
                "port": 22,
                "username": "admin",
                "command": "systemctl restart nginx",
                "timeout": 60000,
                "workingDirectory": "/var/www",
            },
        },
    )
    assert r.status == 422, r.body
    assert_error(r.body, "UNKNOWN_CREDENTIAL", "jobDataMap.credential")
    r = await compat_api.call(
        "POST",
        f"{P}/api/v1/jobs",
        json={"name": "pw", "jobTypeId": 3, "jobDataMap": {"host": "h", "command": "ls",
                                                            "password": "x"}},
    )  # fmt: skip
    assert r.status == 422 and "credential" in r.body["error"]["message"], r.body
    assert_error(r.body, "VALIDATION_ERROR", "jobDataMap.password")
    assert await saved_count(compat_api) == before


async def test_webhook_job_execute_then_executions(
    compat_api: Api,
    worker: Worker,
    receiver: Receiver,  # noqa: F811
) -> None:
    url = receiver.tell("/events")
    webhook_job = {
        "name": "User Registration Webhook",
        "job_type_id": 2,  # http_request
        "job_data_map": {
            "url": url,
            "method": "POST",
            "headers": {
                "Authorization": "Bearer analytics-token",
                "Content-Type": "application/json",
            },
            "body": {
                "event": "user_registered",
                "userId": "{{user.id}}",
                "timestamp": "{{timestamp}}",
            },
        },
        "description": "Send user registration event to analytics",
        "is_enabled": True,
        "max_retry_count": 5,
        "timeout_seconds": 30,
    }
    # the document's http_request configuration (created, not run: its URL is not ours)
    config = {
        "url": "https://api.example.com/webhook",
        "method": "POST",
        "headers": {"Authorization": "Bearer token123", "Content-Type": "application/json"},
        "body": {"event": "user_registered", "userId": 123, "timestamp": "2024-01-01T00:00:00Z"},
        "timeout": 30000,
    }
    job = await create(compat_api, {"name": "hook", "jobTypeId": 2, "jobDataMap": config})
    assert job["jobDataMap"] == {**config, "headers": {**config["headers"], "Authorization": "***"}}
    row = await compat_api.pool.fetchrow(
        "SELECT params FROM saved_jobs WHERE id = $1::uuid", job["id"]
    )
    assert row["params"]["timeout"] == 30 and row["params"]["payload"] == config["body"]
    job = await create(compat_api, webhook_job)
    # at most what http.request allows: 5 attempts, 4 retries
    assert job["jobTypeId"] == 2 and job["max_retry_count"] == 4
    assert job["jobDataMap"]["body"] == webhook_job["job_data_map"]["body"]  # type: ignore[index]
    assert job["jobDataMap"]["headers"]["Authorization"] == "***"  # a secret header, hidden
    # "Execute job immediately"
    r = await compat_api.call("POST", f"{P}/api/v1/jobs/{job['id']}/execute")
    assert r.status == 201, r.body
    execution = r.body["data"]
    assert execution.keys() >= EXECUTION_FIELDS
    assert execution["job_id"] == job["id"] and execution["status"] == "pending"

    async def completed() -> list[dict[str, Any]] | None:
        r = await compat_api.call("GET", f"{P}/api/v1/jobs/{job['id']}/executions")
        assert r.status == 200 and r.body["success"] is True, r.body
        runs: list[dict[str, Any]] = r.body["data"]
        return runs if runs and runs[0]["status"] == "completed" else None

    [run] = await wait_for(completed)
    assert run["id"] == execution["id"] and run["job_id"] == job["id"]
    assert is_time(run["started_at"]) and is_time(run["completed_at"])
    assert run["error_message"] is None and run["retry_count"] == 0
    assert run["result"]["response"]["status"] == 200
    [seen] = receiver.at("/events")
    sent = json.loads(seen.body)
    assert sent["event"] == "user_registered" and sent["userId"] == "{{user.id}}"
    assert is_time(sent["timestamp"].replace("Z", "+00:00"))  # {{timestamp}} rendered
    assert seen.headers["Authorization"] == "Bearer analytics-token"
    r = await compat_api.call("GET", f"{P}/api/v1/job-executions/{run['id']}")
    assert r.status == 200 and r.body["data"] == run, r.body
    # "Retry failed execution": a finished one runs again as a new execution
    r = await compat_api.call("POST", f"{P}/api/v1/job-executions/{run['id']}/retry")
    assert r.status == 201, r.body
    again = r.body["data"]
    assert again["id"] != run["id"] and again["job_id"] == job["id"]
    assert again["status"] == "pending"
    await wait_for(lambda: _status(compat_api, again["id"], "completed"))


async def _status(api: Api, execution_id: str, status: str) -> bool:
    r = await api.call("GET", f"{P}/api/v1/job-executions/{execution_id}")
    return bool(r.body["data"]["status"] == status)


async def test_log_message_job_manual_execution(compat_api: Api, worker: Worker) -> None:
    job = await create(
        compat_api,
        {"name": "Audit login", "jobTypeId": 4, "jobDataMap": LOG_CONFIG, "memo": "audit",
         "isEnabled": True, "tags": ["audit"]},
    )  # fmt: skip
    assert job["jobDataMap"] == LOG_CONFIG and job["tags"] == [{"name": "audit"}]
    assert job["createdBy"] == "manage" and job["updatedBy"] == "manage"
    # "Execute job via API": the fetch() of the document, a JSON content type and no body
    r = await compat_api.call(
        "POST",
        f"/gatrix/api/jobs/{job['id']}/execute",
        headers={"Content-Type": "application/json"},
    )
    assert r.status == 201, r.body
    eid = r.body["data"]["id"]
    await wait_for(lambda: _status(compat_api, eid, "completed"))
    r = await compat_api.call("GET", f"{P}/api/v1/job-executions/{eid}")
    e = r.body["data"]
    assert e.keys() >= EXECUTION_FIELDS and e["job_id"] == job["id"]
    assert e["result"]["level"] == "info" and e["result"]["category"] == "authentication"
    r = await compat_api.call("GET", "/v1/logs", params={"category": "authentication"})
    assert [i["message"] for i in r.body["items"]] == ["User login successful"]
    r = await compat_api.call(
        "GET", f"{P}/api/v1/jobs/{job['id']}/executions", params={"status": "completed"}
    )
    assert [x["id"] for x in r.body["data"]] == [eid]
    r = await compat_api.call(
        "GET", f"{P}/api/v1/jobs/{job['id']}/executions", params={"status": "failed"}
    )
    assert r.body["data"] == []


# -- the API endpoints: jobs, job types ------------------------------------------------------


async def test_create_update_list_with_pages(compat_api: Api) -> None:
    ids = []
    for name in ("alpha", "beta", "gamma"):
        job = await create(
            compat_api, {"name": name, "jobTypeId": 4, "jobDataMap": {"message": name}}
        )
        ids.append(job["id"])
    assert (
        job["isEnabled"] is True and job["memo"] == "" and job["jobDataMap"] == {"message": "gamma"}
    )
    # "Get all jobs", by page
    r = await compat_api.call("GET", f"{P}/api/v1/jobs", params={"page": 1, "limit": 2})
    assert r.status == 200, r.body
    page = r.body["data"]
    assert [j["name"] for j in page["data"]] == ["alpha", "beta"]
    assert page["pagination"] == {"total": 3, "limit": 2, "offset": 0, "page": 1,
                                  "totalPages": 2}  # fmt: skip
    r = await compat_api.call("GET", f"{P}/api/v1/jobs", params={"page": 2, "limit": 2})
    assert [j["name"] for j in r.body["data"]["data"]] == ["gamma"]
    assert r.body["data"]["pagination"]["offset"] == 2
    r = await compat_api.call("GET", f"{P}/api/v1/jobs")
    assert r.body["data"]["pagination"]["limit"] == 20 and len(r.body["data"]["data"]) == 3
    # "Update job": the fields given
    r = await compat_api.call(
        "PUT",
        f"{P}/api/v1/jobs/{ids[1]}",
        json={"name": "beta 2", "isEnabled": False, "jobDataMap": {**LOG_CONFIG, "level": "warn"},
              "max_retry_count": 1},
    )  # fmt: skip
    assert r.status == 200, r.body
    updated = r.body["data"]
    assert_job(updated)
    assert (updated["name"], updated["isEnabled"], updated["max_retry_count"]) == (
        "beta 2", False, 1)  # fmt: skip
    assert updated["jobDataMap"]["level"] == "warn" and updated["jobTypeId"] == 4
    # filters: isEnabled, jobTypeId, search
    r = await compat_api.call("GET", f"{P}/api/v1/jobs", params={"isEnabled": "false"})
    assert [j["name"] for j in r.body["data"]["data"]] == ["beta 2"]
    r = await compat_api.call("GET", f"{P}/api/v1/jobs", params={"jobTypeId": 2})
    assert r.body["data"]["data"] == [] and r.body["data"]["pagination"]["total"] == 0
    r = await compat_api.call("GET", f"{P}/api/v1/jobs", params={"search": "GAM"})
    assert [j["id"] for j in r.body["data"]["data"]] == [ids[2]]
    # "Get specific job"
    r = await compat_api.call("GET", f"{P}/api/v1/jobs/{ids[1]}")
    assert r.status == 200 and r.body["data"]["name"] == "beta 2"
    # a disabled job is not executed
    r = await compat_api.call("POST", f"{P}/api/v1/jobs/{ids[1]}/execute")
    assert r.status == 409
    assert_error(r.body, "INVALID_STATE")
    # "Delete job"
    r = await compat_api.call("DELETE", f"{P}/api/v1/jobs/{ids[0]}")
    assert r.status == 200 and r.body == {"success": True, "message": "Job deleted successfully"}
    r = await compat_api.call("GET", f"{P}/api/v1/jobs/{ids[0]}")
    assert r.status == 404
    assert_error(r.body, "NOT_FOUND")
    assert r.body["error"]["message"] == "Job not found"


async def test_job_types(compat_api: Api) -> None:
    r = await compat_api.call("GET", f"{P}/api/v1/job-types")
    assert r.status == 200, r.body
    types = r.body["data"]
    assert [(t["id"], t["name"]) for t in types] == [
        (1, "mailsend"), (2, "http_request"), (3, "ssh_command"), (4, "log_message")]  # fmt: skip
    assert all(t["isEnabled"] for t in types)
    r = await compat_api.call("GET", f"{P}/api/v1/job-types/2")
    assert r.status == 200 and r.body["data"]["definitionKey"] == "http.request"
    assert {"url", "body", "timeout"} <= set(r.body["data"]["configKeys"])
    assert "url" in r.body["data"]["paramsSchema"]["properties"]
    r = await compat_api.call("GET", f"{P}/api/v1/job-types/log_message")
    assert r.body["data"]["id"] == 4
    for bad in ("9", "nope", "1x"):
        r = await compat_api.call("GET", f"{P}/api/v1/job-types/{bad}")
        assert r.status == 404
        assert_error(r.body, "NOT_FOUND")
    r = await compat_api.call("GET", f"{P}/api/v1/job-types", token="plain")
    assert r.status == 403
    assert_error(r.body, "FORBIDDEN")


# -- bad input, ids, owners ------------------------------------------------------------------


async def test_bad_input_is_a_4xx_naming_the_field_and_writes_nothing(compat_api: Api) -> None:
    job = await create(compat_api, {"name": "keep", "jobTypeId": 4, "jobDataMap": LOG_CONFIG})
    before = await saved_count(compat_api)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "x", "job_type_id": 4, "job_data_map": {"message": "m", "colour": 1}},
         "job_data_map.colour"),
        ({"name": "x", "jobTypeId": 4, "jobDataMap": {"message": "m", "level": "loud"}},
         "jobDataMap.level"),
        ({"name": "x", "jobTypeId": 2, "jobDataMap": {"url": "ftp://x"}}, "jobDataMap.url"),
        ({"name": "x", "jobTypeId": 2, "jobDataMap": {"url": "http://x", "timeout": "soon"}},
         "jobDataMap.timeout"),
        ({"name": "x", "jobTypeId": 9, "jobDataMap": {}}, "jobTypeId"),
        ({"name": "x", "jobTypeId": 4, "job_type_id": 2, "jobDataMap": {}}, "job_type_id"),
        ({"name": "x", "jobTypeId": 4, "jobDataMap": {"message": "m"}, "schedule": "nope"},
         "schedule"),
        ({"name": "x", "jobTypeId": 4, "jobDataMap": {"message": "m"}, "colour": 1}, "colour"),
        ({"jobTypeId": 4, "jobDataMap": {"message": "m"}}, "name"),
        ({"name": "keep", "jobTypeId": 4, "jobDataMap": {"message": "m"}}, "name"),
    ]  # fmt: skip
    for body, field in cases:
        r = await compat_api.call("POST", f"{P}/api/v1/jobs", json=body)
        assert 400 <= r.status < 500, (body, r.status, r.body)
        assert r.body["success"] is False and field in r.body["error"]["message"], (body, r.body)
    r = await compat_api.call(
        "PUT", f"{P}/api/v1/jobs/{job['id']}", json={"jobDataMap": {"message": "m", "nope": 1}}
    )
    assert r.status == 422
    assert_error(r.body, "VALIDATION_ERROR", "jobDataMap.nope")
    r = await compat_api.call("GET", f"{P}/api/v1/jobs", params={"limit": 0})
    assert r.status == 422 and "limit" in r.body["error"]["message"]
    assert await saved_count(compat_api) == before
    r = await compat_api.call("GET", f"{P}/api/v1/jobs/{job['id']}")
    assert r.body["data"]["jobDataMap"] == LOG_CONFIG


async def test_malformed_ids_and_other_owners_are_not_found(
    compat_api: Api, pool: asyncpg.Pool
) -> None:
    job = await create(
        compat_api, {"name": "mine", "jobTypeId": 4, "jobDataMap": LOG_CONFIG}, token="plain"
    )
    loose = await compat_api.submit()  # a job no saved job made
    for method, path, what in [
        ("GET", "/api/v1/jobs/123", "Job"),
        ("PUT", "/api/v1/jobs/not-a-uuid", "Job"),
        ("DELETE", "/api/v1/jobs/123", "Job"),
        ("POST", "/api/jobs/123/execute", "Job"),
        ("GET", "/api/v1/jobs/123/executions", "Job"),
        ("GET", "/api/v1/job-executions/123", "Job execution"),
        ("POST", "/api/v1/job-executions/123/retry", "Job execution"),
        ("GET", f"/api/v1/job-executions/{loose['id']}", "Job execution"),
        ("GET", f"/api/v1/jobs/{job['id']}", "Job"),  # bob's eyes
        ("PUT", f"/api/v1/jobs/{job['id']}", "Job"),
        ("DELETE", f"/api/v1/jobs/{job['id']}", "Job"),
        ("POST", f"/api/v1/jobs/{job['id']}/execute", "Job"),
    ]:
        r = await compat_api.call(
            method, P + path, token="other", json={} if method == "PUT" else None
        )
        assert r.status == 404, (method, path, r.body)
        assert r.body == {
            "success": False,
            "error": {"code": "NOT_FOUND", "message": f"{what} not found"},
        }
    r = await compat_api.call("GET", f"{P}/api/v1/jobs", token="other")
    assert r.body["data"]["data"] == []
    r = await compat_api.call("GET", f"{P}/api/v1/jobs/{job['id']}", token="plain")
    assert r.status == 200
    r = await compat_api.call("GET", f"{P}/api/v1/jobs", token=None)
    assert r.status == 401
    assert_error(r.body, "UNAUTHORIZED")
