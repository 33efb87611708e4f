"""Every job type of the admin console as a saved job, on demand and on a trigger, against real
processes and real peers: an API, a worker and a scheduler over REST; a webhook receiver
(aiohttp), an SMTP server (aiosmtpd, STARTTLS and AUTH) and OpenSSH's sshd on loopback,
allowed through OUTBOUND_ALLOW_CIDRS; a stored ssh and smtp credential sealed under
JOBSERVER_SECRET_KEY.

Each saved job fires every second (MIN_EVERY=1) and is executed once by hand; its executions
list must then show a succeeded manual run and a succeeded scheduled one, and each peer must
have seen the work.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from jobserver.auth import create_token
from jobserver.db.definitions import definition_upsert
from jobserver.registry import load_modules
from tests.faults.helpers import Procs
from tests.waiting import wait_for
from tests.worker.http_receiver import serve_all
from tests.worker.smtp_server import Sinks, StartSink, TestCerts
from tests.worker.sshd import Sshd, sshd_fixture  # noqa: F401 (the `sshd` fixture)

SMTP_PASSWORD = "relay-password-never-shown"


@pytest.fixture
async def webhook_sink() -> AsyncIterator[tuple[list[str], str]]:
    bodies: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.text())
        return web.json_response({"ok": True})

    runner, base = await serve_all(handle)
    yield bodies, f"{base}/hook"
    await runner.cleanup()


@pytest.fixture
def certs(tmp_path: Path) -> TestCerts:
    return TestCerts.make(tmp_path)


@pytest.fixture
async def start_smtp(certs: TestCerts) -> AsyncIterator[StartSink]:
    async with Sinks(certs) as start:
        yield start


def saved_jobs(hook: str, smtp_port: int, sshd: Sshd) -> dict[str, dict[str, Any]]:
    """One saved job per job type, keyed by definition."""
    return {
        "http.request": {
            "params": {"url": hook, "method": "POST", "payload": {"at": "{{$timestamp}}"}},
        },
        "mail.send": {
            "params": {
                "to": "ops@example.com",
                "from": "jobs@example.com",
                "subject": "run {{job.id}}",
                "text": "sent at {{$timestamp}}",
                "credential": "relay",
            },
        },
        "ssh.command": {
            "params": {
                "host": "127.0.0.1",
                "port": sshd.port,
                "username": "root",
                "command": "echo saved-job-run {{job.id}}",
                "credential": "box",
            },
        },
        "log.message": {
            "params": {"level": "info", "category": "saved", "message": "run {{job.id}}"},
        },
    }


async def test_every_job_type_runs_from_a_saved_job_by_hand_and_on_its_trigger(
    pool: asyncpg.Pool,
    database_url: str,
    webhook_sink: tuple[list[str], str],
    start_smtp: StartSink,
    certs: TestCerts,
    sshd: Sshd,
) -> None:
    smtp = await start_smtp(starttls=True, user="relay", password=SMTP_PASSWORD)
    for d in load_modules().all():
        await definition_upsert(pool, d.metadata())
    token = await create_token(pool, "ops", ["manage_jobs"], "ops")
    bodies, hook = webhook_sink
    env = {
        "JOBSERVER_SECRET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "OUTBOUND_ALLOW_CIDRS": "127.0.0.1/32",
        "MIN_EVERY": "1",
        "SMTP_CA_FILE": str(certs.ca_file),  # the test CA that signed the server's certificate
    }
    procs = Procs(database_url)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        _, base = await procs.api(env=env)
        procs.start("jobserver.cli.worker", name="worker", env=env)
        procs.scheduler("scheduler", env=env)
        async with aiohttp.ClientSession(base, headers=headers) as http:

            async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
                async with http.request(method, path, json=body) as r:
                    return r.status, await r.json(content_type=None)

            credentials = [
                {
                    "name": "box",
                    "kind": "ssh",
                    "username": "root",
                    "privateKey": sshd.client_key,
                    "hostKeys": [sshd.host_key],
                },
                {
                    "name": "relay",
                    "kind": "smtp",
                    "username": "relay",
                    "password": SMTP_PASSWORD,
                    "host": "127.0.0.1",
                    "port": smtp.port,
                    "tls": "starttls",
                },
            ]
            for credential in credentials:
                status, body = await call("POST", "/v1/credentials", credential)
                assert status == 201, body
            ids: dict[str, str] = {}
            for key, fields in saved_jobs(hook, smtp.port, sshd).items():
                saved = {"name": f"every {key}", "definitionKey": key, "everySeconds": 1}
                status, body = await call("POST", "/v1/saved-jobs", {**saved, **fields})
                assert status == 201, body
                ids[key] = body["id"]
                status, body = await call("POST", f"/v1/saved-jobs/{ids[key]}/execute")
                assert status == 201, body

            async def both_ran(key: str) -> list[dict[str, Any]] | None:
                status, page = await call("GET", f"/v1/saved-jobs/{ids[key]}/executions")
                assert status == 200, page
                done = [e for e in page["items"] if e["status"] == "succeeded"]
                failed = [e for e in page["items"] if e["status"] == "failed"]
                assert not failed, [(key, e["lastError"]) for e in failed]
                triggers = {e["trigger"] for e in done}
                return done if {"manual", "schedule"} <= triggers else None

            runs = {key: await wait_for(lambda k=key: both_ran(k), within=60) for key in ids}
            for key, (status, body) in [
                (k, await call("PATCH", f"/v1/saved-jobs/{i}", {"enabled": False}))
                for k, i in ids.items()
            ]:
                assert status == 200 and body["enabled"] is False, (key, body)
    finally:
        procs.close()
    print(json.dumps({k: v[-1] for k, v in runs.items()}, indent=1, default=str))
    assert bodies and all("at" in json.loads(b) for b in bodies)
    assert smtp.received and all(r.login == "relay" and r.tls for r in smtp.received)
    ssh = runs["ssh.command"][-1]["result"]
    assert ssh["exitCode"] == 0 and ssh["stdout"].startswith("saved-job-run ")
    mail = runs["mail.send"][-1]["result"]
    assert mail["accepted"] == ["ops@example.com"] and mail["server"]["auth"] is True
    logged = await pool.fetchval("SELECT count(*) FROM audit_log WHERE category = 'saved'")
    assert logged >= 2
    stored = "\n".join(str(dict(r)) for r in await pool.fetch("SELECT * FROM jobs"))
    assert SMTP_PASSWORD not in stored and sshd.client_key.splitlines()[1] not in stored
