"""Every curl example of the README's webhook section runs, as written, against real processes.

The README marks a runnable block with `<!-- run: NAME -->` before its ```sh fence. This test
starts an API, a worker and a scheduler on a per-test database, a webhook receiver on loopback
(allowed through OUTBOUND_ALLOW_CIDRS) and a source table, then runs the block with bash. Each
`curl` in the block is followed by a `# -> STATUS ...` comment: the test checks every call
answered that status, in order, and then what the receiver got.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from jobserver.auth import create_token
from jobserver.db.definitions import definition_upsert
from jobserver.registry import load_modules
from tests.faults.helpers import Procs
from tests.waiting import wait_for
from tests.worker.http_receiver import serve_all

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()

# Runs a block: `curl` answers its body as usual and logs its status code, one line per call.
PRELUDE = r"""
set -euo pipefail
curl() {
  local out
  out=$(command curl -sS -w $'\n%{http_code}' "$@")
  printf '%s\n' "${out##*$'\n'}" >> "$STATUS_LOG"
  printf '%s\n' "${out%$'\n'*}"
}
"""


def block(name: str) -> str:
    found = re.search(rf"<!-- run: {name} -->\n```sh\n(.*?)```", README, re.S)
    assert found is not None, f"README has no runnable block {name!r}"
    return found.group(1)


def expected_statuses(text: str) -> list[int]:
    """The `# -> STATUS` comment after each curl call, in order (one per call)."""
    calls = [m.group(0) for m in re.finditer(r"\bcurl\b|# -> \d{3}", text)]
    out: list[int] = []
    for i, token in enumerate(calls):
        if token == "curl":
            follow = calls[i + 1] if i + 1 < len(calls) else ""
            assert follow.startswith("# ->"), f"a curl call without its `# -> STATUS`: {text}"
            out.append(int(follow[5:]))
    return out


class Receiver:
    """A webhook receiver: records every request, answers 200 with a small JSON body."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        return web.json_response({"received": True})


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    runner, base = await serve_all(rec.handle)
    yield rec, base
    await runner.cleanup()


async def prepare(pool: asyncpg.Pool) -> str:
    for d in load_modules().all():
        await definition_upsert(pool, d.metadata())
    await pool.execute(
        """
        CREATE TABLE users (name text, email text, contact jsonb);
        INSERT INTO users VALUES
          ('John', 'john@example.com', '{"phone": "555-0100", "address": "1 Main St"}');
        """
    )
    return await create_token(pool, "readme", ["manage_jobs"], "readme")


PLACEHOLDER_URL = "https://webhook.site/your-endpoint"


def run_block(name: str, env: dict[str, str], sink: str) -> tuple[str, list[int]]:
    text = block(name).replace(PLACEHOLDER_URL, sink)
    with tempfile.NamedTemporaryFile("r", suffix=".status") as log:
        done = subprocess.run(
            ["bash", "-c", PRELUDE + text],
            env={**os.environ, **env, "STATUS_LOG": log.name},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        statuses = [int(line) for line in Path(log.name).read_text().split()]
    return done.stdout, statuses


async def test_the_webhook_examples_run_as_written(
    pool: asyncpg.Pool, database_url: str, receiver: tuple[Receiver, str]
) -> None:
    rec, sink = receiver
    token = await prepare(pool)
    procs = Procs(database_url)
    extra = {
        "OUTBOUND_ALLOW_CIDRS": "127.0.0.1/32",
        "SOURCES_DATABASE_URL": database_url,
        "MIN_EVERY": "1",
    }
    try:
        _, base = await procs.api(env=extra)
        procs.start("jobserver.cli.worker", name="worker", env=extra)
        procs.scheduler("scheduler", env=extra)
        env = {"B": base, "TOKEN": token}
        out, statuses = await asyncio.to_thread(run_block, "webhooks", env, f"{sink}/hook")
        assert statuses == expected_statuses(block("webhooks")), out

        async def greeted() -> bool:
            return any("Hello John" in r["body"] for r in rec.requests)

        await wait_for(greeted, within=30)
    finally:
        procs.close()
    sent = next(r for r in rec.requests if "Hello John" in r["body"])
    assert sent["method"] == "POST" and sent["headers"]["Authorization"] == "Bearer s3cret"
    payload = json.loads(sent["body"])
    assert payload["message"] == "Hello John!" and payload["at"].endswith("Z")
    assert payload["user"] == {
        "name": "John",
        "email": "john@example.com",
        "contact": {"phone": "555-0100", "address": "1 Main St"},
    }
