"""The operator CLI as a user runs it: `python -m jobserver.cli.main jobs|dlq|queues|runners
...` in a child process against the real API on loopback (JOBSERVER_URL, JOBSERVER_TOKEN),
with an in-process worker. `--json` output is parsed; tables are checked for their headers and
rows; `watch` exits 0 for a job that succeeded and 1 otherwise; errors are one line."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api
from tests.client.conftest import StartWorker, base_url

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)


class Cli:
    def __init__(self, api: Api, cwd: Path) -> None:
        self.api = api
        self.cwd = cwd

    async def __call__(self, *args: str, token: str = "manage") -> Ran:
        env = {
            **os.environ,
            "JOBSERVER_URL": base_url(self.api),
            "JOBSERVER_TOKEN": self.api.tokens[token],
            "PYTHONPATH": str(ROOT),
        }
        env.pop("COLUMNS", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jobserver.cli.main",
            *args,
            env=env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode is not None
        return Ran(proc.returncode, out.decode(), err.decode())


@pytest.fixture
def cli(api: Api, tmp_path: Path) -> Cli:
    return Cli(api, tmp_path)


def one_line_error(ran: Ran, code: str) -> None:
    assert ran.code == 1, ran
    lines = ran.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and code in lines[0], ran.err
    assert "Traceback" not in ran.err


async def test_jobs_commands(cli: Cli, start_worker: StartWorker) -> None:
    await start_worker()
    params = json.dumps({"message": "from the cli"})
    job = (
        await cli("jobs", "submit", "echo", "--version", "1", "--params", params, "--json")
    ).json()
    assert job["status"] == "queued" and job["params"] == {"message": "from the cli"}

    watched = await cli("jobs", "watch", job["id"])
    assert watched.code == 0, watched
    assert f"job {job['id']} succeeded" in watched.out

    failed = await cli(
        "jobs", "submit", "failing", "--params", '{"reason": "no luck"}', "--max-attempts", "1",
        "--watch",
    )  # fmt: skip
    assert failed.code == 1, failed
    assert "failed: " in failed.out and "no luck" in failed.out
    failed_id = failed.out.split()[1]

    listed = (await cli("jobs", "list", "--json")).json()
    assert {j["id"] for j in listed} == {job["id"], failed_id}
    only = (await cli("jobs", "list", "--status", "failed", "--json")).json()
    assert [j["id"] for j in only] == [failed_id]
    assert len((await cli("jobs", "list", "--limit", "1", "--json")).json()) == 1

    shown = await cli("jobs", "list")
    assert shown.code == 0, shown
    header = next(line for line in shown.out.splitlines() if "STATUS" in line)
    assert all(col in header for col in ("ID", "DEFINITION", "QUEUE", "ATTEMPT", "CREATED"))
    row = next(line for line in shown.out.splitlines() if job["id"] in line)
    assert "succeeded" in row and "echo@1" in row

    detail = (await cli("jobs", "show", job["id"], "--events", "--json")).json()
    assert detail["result"] == {"message": "from the cli"}
    assert detail["events"][0]["event"] == "created"
    assert detail["events"][-1]["event"] == "succeeded"
    table = await cli("jobs", "show", job["id"], "--events")
    assert table.code == 0 and "from the cli" in table.out and "EVENT" in table.out

    again = (await cli("jobs", "retry", failed_id, "--json")).json()
    assert again["retriedFrom"] == failed_id and again["id"] != failed_id
    one_line_error(await cli("jobs", "retry", failed_id), "invalid_state")

    later = (
        await cli("jobs", "submit", "echo", "--version", "1", "--delay", "3600", "--json")
    ).json()
    timed_out = await cli("jobs", "watch", later["id"], "--timeout", "0.5")
    assert timed_out.code == 1 and "still queued" in timed_out.err, timed_out
    cancelled = (await cli("jobs", "cancel", later["id"], "--json")).json()
    assert cancelled["status"] == "cancelled"
    watched = await cli("jobs", "watch", later["id"], "--json")
    assert watched.code == 1 and json.loads(watched.out)["status"] == "cancelled"

    one_line_error(await cli("jobs", "show", str(uuid.uuid4())), "not_found")
    one_line_error(await cli("jobs", "submit", "strict", "--params", "{}"), "validation_error")
    bad = await cli("jobs", "submit", "echo", "--params", "{nope")
    assert bad.code == 2 and bad.err.startswith("error: --params: not JSON")


async def test_dlq_queues_and_runners_commands(
    cli: Cli, api: Api, start_worker: StartWorker
) -> None:
    await start_worker("w-client")
    await start_worker("w-stop")
    dead = await cli(
        "jobs", "submit", "failing", "--params", '{"reason": "to the dlq"}', "--max-attempts",
        "1", "--watch", "--json",
    )  # fmt: skip
    assert dead.code == 1
    dead_id = json.loads(dead.out)["id"]

    entries = (await cli("dlq", "list", "--json")).json()
    assert [e["jobId"] for e in entries] == [dead_id]
    assert (await cli("dlq", "list", "--redriven", "--json")).json() == []
    shown = await cli("dlq", "show", dead_id)
    assert shown.code == 0 and "to the dlq" in shown.out and "OUTCOME" in shown.out
    listed = await cli("dlq", "list")
    assert dead_id in listed.out and "failing@1" in listed.out
    redriven = (await cli("dlq", "redrive", dead_id, "--max-attempts", "2", "--json")).json()
    assert redriven["redrivenFrom"] == dead_id and redriven["jobId"] != dead_id
    one_line_error(await cli("dlq", "list", token="plain"), "forbidden")

    await api.submit(queue="q-cli", delaySeconds=3600)
    paused = (await cli("queues", "pause", "q-cli", "--reason", "deploy", "--json")).json()
    assert paused["paused"] and paused["changed"] and paused["reason"] == "deploy"
    assert set(paused["acknowledged"]) == {"w-client", "w-stop"}
    table = await cli("queues", "list")
    row = next(line for line in table.out.splitlines() if "q-cli" in line)
    assert "yes" in row and "PAUSED" in table.out
    health = (await cli("queues", "health", "q-cli", "--json")).json()
    assert health["paused"]["reason"] == "deploy" and health["counts"]["scheduled"] == 1
    assert "q-cli" in (await cli("queues", "health", "q-cli")).out
    resumed = await cli("queues", "resume", "q-cli")
    assert resumed.code == 0 and "queue q-cli resumed" in resumed.out
    assert [q["name"] for q in (await cli("queues", "list", "--json")).json()].count("q-cli") == 1

    runners = (await cli("runners", "list", "--json")).json()
    assert {"w-client", "w-stop"} <= {r["id"] for r in runners}
    table = await cli("runners", "list")
    assert "LAST SEEN" in table.out and "w-client" in table.out
    pong = await cli("runners", "ping", "w-client")
    assert pong.code == 0 and "runner w-client answered ping in" in pong.out
    stop = (await cli("runners", "shutdown", "w-stop", "--mode", "immediate", "--json")).json()
    assert stop["answered"] and stop["command"] == "shutdown"
    one_line_error(await cli("runners", "ping", "nobody"), "not_found")
