"""Every curl example of the README runs, as written, against real processes.

The README marks a runnable block with `<!-- run: NAME -->` before its ```sh fence. The tests
start an API (for the webhook block also a worker, a scheduler, a webhook receiver on loopback
allowed through OUTBOUND_ALLOW_CIDRS, and a source table) on a per-test database, then run the
blocks with bash. Each
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
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from jobserver.auth import create_token
from jobserver.db.definitions import definition_upsert
from jobserver.registry import load_modules
from tests.faults.helpers import Procs
from tests.scheduler.helpers import insert_job
from tests.waiting import wait_for
from tests.worker.http_receiver import serve_all

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()

# Runs a block: `curl` answers its body as usual and also keeps its arguments, status and body
# in a numbered directory under $CALLS, one per call.
PRELUDE = r"""
set -euo pipefail
curl() {
  local out dir
  dir="$CALLS/$(find "$CALLS" -mindepth 1 -maxdepth 1 | wc -l)"
  mkdir "$dir"
  printf '%s\n' "$@" > "$dir/args"
  out=$(command curl -sS -w $'\n%{http_code}' "$@")
  printf '%s' "${out##*$'\n'}" > "$dir/status"
  printf '%s\n' "${out%$'\n'*}" | tee "$dir/body"
}
"""


@dataclass(frozen=True)
class Call:
    """One curl call of a block as it ran."""

    url: str
    status: int
    body: Any  # the JSON answer, or None when it is not JSON


def block(name: str, language: str = "sh") -> str:
    found = re.search(rf"<!-- run: {name} -->\n```{language}\n(.*?)```", README, re.S)
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


def run_blocks(names: tuple[str, ...], env: dict[str, str], sink: str) -> tuple[str, list[Call]]:
    """Runs the named blocks one after the other in one bash, as a reader pasting them would."""
    return run_script("".join(block(n) for n in names).replace(PLACEHOLDER_URL, sink), env)


def run_script(text: str, env: dict[str, str]) -> tuple[str, list[Call]]:
    """Runs `text` in one bash under PRELUDE: its output and every curl call it made."""
    with tempfile.TemporaryDirectory() as calls:
        done = subprocess.run(
            ["bash", "-c", PRELUDE + text],
            env={**os.environ, **env, "CALLS": calls},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        ran = [_call(d) for d in sorted(Path(calls).iterdir(), key=lambda d: int(d.name))]
    return done.stdout, ran


def _call(d: Path) -> Call:
    url = next(a for a in (d / "args").read_text().splitlines() if a.startswith("http"))
    try:
        body = json.loads((d / "body").read_text())
    except ValueError:
        body = None
    return Call(url=url, status=int((d / "status").read_text()), body=body)


def answer(ran: list[Call], fragment: str) -> Any:
    """The body of the one call whose URL holds `fragment`."""
    found = [c.body for c in ran if fragment in c.url]
    assert len(found) == 1, (fragment, [c.url for c in ran])
    return found[0]


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
        out, ran = await asyncio.to_thread(run_blocks, ("webhooks",), env, f"{sink}/hook")
        assert [c.status for c in ran] == expected_statuses(block("webhooks")), out

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


async def test_the_api_label_and_schedule_examples_run_as_written(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """The API block, then the labels and schedules blocks in the same shell, as a reader would.

    No worker runs, so the jobs the examples submit stay queued and every answer is fixed.
    """
    token = await prepare(pool)
    await insert_job(pool, status="succeeded", schedule_name="nightly", finished_ago=60)
    procs = Procs(database_url)
    try:
        _, base = await procs.api()
        env = {"B": base, "TOKEN": token}
        names = ("api", "labels", "schedules")
        out, ran = await asyncio.to_thread(run_blocks, names, env, "")
        assert [c.status for c in ran] == [s for n in names for s in expected_statuses(block(n))], (
            out
        )
    finally:
        procs.close()
    assert answer(ran, "event=user.signup")["items"][0]["event"] == "user.signup"
    (fired,) = answer(ran, "scheduleName=nightly")["items"]
    assert fired["isRecurring"] and fired["scheduleName"] == "nightly"
    numbered = answer(ran, "/v1/jobs?page=2")
    assert {"page", "total", "totalPages", "totalAtLeast", "nextCursor"} <= set(numbered)
    assert answer(ran, "schedules/ping-crm/runs") == {"items": [], "nextCursor": None}
    enabled = [c.body for c in ran if c.url.endswith("/v1/schedules/ping-crm")][-1]
    assert enabled["enabled"] is True and enabled["disabledReason"] is None
    labelled = await pool.fetchval(
        "SELECT count(*) FROM jobs WHERE event = 'user.signup' AND tags @> ARRAY['eu', 'vip']"
    )
    assert labelled == 1
    expiring = await pool.fetchval(
        "SELECT expires_at - run_at FROM jobs WHERE expires_at IS NOT NULL AND event IS NULL"
    )
    assert expiring == timedelta(hours=1, minutes=30)
    cancelled = await pool.fetchval("SELECT count(*) FROM jobs WHERE status = 'cancelled'")
    assert cancelled == 1
    ping = await pool.fetchrow(
        "SELECT enabled, event, tags, max_consecutive_failures FROM schedules"
        " WHERE name = 'ping-crm'"
    )
    assert dict(ping) == {
        "enabled": True,
        "event": "crm.ping",
        "tags": ["crm", "hourly"],
        "max_consecutive_failures": 5,
    }
    assert await pool.fetchval("SELECT count(*) FROM schedules WHERE name = 'nightly'") == 1


async def test_the_python_enqueue_example_runs_as_written(pool: asyncpg.Pool) -> None:
    """The snippet runs as the body of a coroutine given `conn`; the job it made is stored."""
    await prepare(pool)
    source = "async def example(conn):\n" + textwrap.indent(block("enqueue", "python"), "    ")
    source += "    return job\n"
    scope: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), scope)
    async with pool.acquire() as conn:
        job = await scope["example"](conn)
    row = await pool.fetchrow(
        "SELECT definition_key, event, tags, expires_at - created_at AS ttl"
        " FROM jobs WHERE id = $1",
        job.id,
    )
    assert (row["definition_key"], row["event"], row["tags"]) == ("echo", "user.signup", ["eu"])
    # the expiry is 15 minutes from the submission (the clocks of client and server may differ
    # by the time the insert takes)
    assert abs(row["ttl"] - timedelta(minutes=15)) < timedelta(seconds=5), row["ttl"]
