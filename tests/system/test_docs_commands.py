"""Every command block of docs/ runs, or is marked illustrative (docs/README.md says how).

`sh` blocks are runnable: the blocks of one page run in order in one bash (the README tests'
`run_script`, whose `curl` records each call) against a real API, worker and scheduler, and
every call answers the status of its `# -> STATUS` comment. `sh illustrative` blocks are
skipped. `console` blocks follow the same rule with their `$ ` lines as the commands; `bash`
and `shell` fences are refused so that nothing escapes the rule. The quickstart's outcomes are
then read from the database and the webhook receiver.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.faults.helpers import Procs
from tests.system.test_readme_examples import (
    PLACEHOLDER_URL,
    Receiver,
    expected_statuses,
    prepare,
    receiver,  # noqa: F401 - the fixture
    run_script,
)
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.M | re.S)
COMMANDS = {"sh", "console"}
REFUSED = {"bash", "shell", "zsh", "shell-session"}
ILLUSTRATIVE = "illustrative"


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def command_blocks(text: str) -> list[tuple[bool, str]]:
    """(runnable, commands) of every sh/console block of a page, in order."""
    out = []
    for m in FENCE.finditer(text):
        words = m.group(1).split()
        if not words or words[0] not in COMMANDS:
            continue
        body = m.group(2)
        if words[0] == "console":
            body = "".join(line[2:] + "\n" for line in body.splitlines() if line.startswith("$ "))
        out.append((words[1:] != [ILLUSTRATIVE], body))
    return out


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def runnable(page: Path) -> str:
    return "".join(body for run, body in command_blocks(page.read_text()) if run)


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_every_command_block_is_runnable_or_illustrative(page: Path) -> None:
    for m in FENCE.finditer(page.read_text()):
        words = m.group(1).split()
        assert not words or words[0] not in REFUSED, f"{page.name}: fence {m.group(1)!r}: use sh"
        if words and words[0] in COMMANDS:
            assert words[1:] in ([], [ILLUSTRATIVE]), f"{page.name}: fence {m.group(1)!r}"
    expected_statuses(runnable(page))  # every curl has its `# -> STATUS`


def test_the_marker_is_documented() -> None:
    assert "```sh illustrative" in (DOCS / "README.md").read_text()


def test_a_block_without_the_marker_is_run() -> None:
    text = (
        "```sh\necho run\n```\n```sh illustrative\necho skip\n```\n```console\n$ echo c\nout\n```"
    )
    assert [(r, b) for r, b in command_blocks(text)] == [
        (True, "echo run\n"),
        (False, "echo skip\n"),
        (True, "echo c\n"),
    ]


async def test_the_runnable_blocks_of_every_page_run(
    pool: asyncpg.Pool,
    database_url: str,
    receiver: tuple[Receiver, str],  # noqa: F811 - the fixture
) -> None:
    rec, sink = receiver
    token = await prepare(pool)
    extra = {"OUTBOUND_ALLOW_CIDRS": "127.0.0.1/32"}
    procs = Procs(database_url)
    ran_pages = []
    try:
        _, base = await procs.api(env=extra)
        worker = procs.start("jobserver.cli.worker", name="worker", env=extra)
        procs.scheduler("scheduler", env=extra)

        async def listening() -> bool:
            """Registered and its LISTEN session up: the runner pages ping and broadcast to it."""
            assert worker.alive(), worker.output()[-3000:]
            active = await pool.fetchval("SELECT count(*) FROM workers WHERE status = 'active'")
            return bool(active) and '"worker started"' in worker.output()

        await wait_for(listening, within=30)
        env = {
            "B": base,
            "TOKEN": token,
            "DATABASE_URL": database_url,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        for page in pages():
            text = runnable(page).replace(PLACEHOLDER_URL, f"{sink}/hook")
            if not text:
                continue
            out, calls = await asyncio.to_thread(run_script, text, env)
            assert [c.status for c in calls] == expected_statuses(text), (page.name, out)
            ran_pages.append(page.name)

        def signups() -> list[dict[str, Any]]:
            """What the quickstart's webhook sent (other pages' schedules post there too)."""
            return [r for r in rec.requests if _json_object(r["body"]).get("event") == "signup"]

        async def quickstart_done() -> bool:
            assert worker.alive(), worker.output()[-3000:]
            echoed = await pool.fetchval(
                "SELECT count(*) FROM jobs WHERE definition_key = 'echo'"
                " AND status = 'succeeded' AND result->>'message' = 'hello'"
            )
            fired = await pool.fetchval(
                "SELECT count(*) FROM jobs WHERE schedule_name = 'hello-every-5s'"
            )
            return bool(echoed == 1 and fired >= 1 and signups())

        await wait_for(quickstart_done, within=60, step=0.2)
    finally:
        procs.close()
    assert "quickstart.md" in ran_pages
    # once, or again if a loaded machine let its lease expire (delivery is at least once)
    for hook in signups():
        assert hook["method"] == "POST" and hook["path"] == "/hook"
        assert hook["headers"]["Authorization"] == "Bearer s3cret"
        body = json.loads(hook["body"])
        assert body["at"].endswith("Z") and len(body["id"]) == 36, body
