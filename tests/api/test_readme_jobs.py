"""The README's "Labels, expiry and page numbers" examples run: each curl line of that
section is replayed against the real app (method, path and query, JSON body) and must succeed."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from tests.api.conftest import Api
from tests.scheduler.helpers import insert_job

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
SECTION = "### Labels, expiry and page numbers"


def _curl_lines() -> list[str]:
    start = README.index(SECTION)
    end = README.find("\n## ", start)
    block = README[start : end if end != -1 else None]
    # blocks marked `<!-- run: NAME -->` are run as shell scripts by their own tests
    block = re.sub(r"<!-- run: [^>]*-->\n```sh\n.*?```", "", block, flags=re.S)
    return [line for line in block.splitlines() if line.startswith("curl ")]


def _parse(line: str) -> tuple[str, str, list[tuple[str, str]], object]:
    words = shlex.split(line.replace("$B", "http://x").replace('"$H"', "H").replace('"$J"', "J"))
    method, url, body = "GET", "", None
    i = 1
    while i < len(words):
        w = words[i]
        if w == "-X":
            method, i = words[i + 1], i + 2
        elif w == "-d":
            body, i = json.loads(words[i + 1]), i + 2
        elif w == "-H":
            i += 2
        elif w.startswith("http://x"):
            url, i = w, i + 1
        else:
            i += 1
    parts = urlsplit(url)
    return method, parts.path, parse_qsl(parts.query), body


def test_the_section_has_examples() -> None:
    lines = _curl_lines()
    assert len(lines) >= 6
    text = "\n".join(lines)
    for word in ("event", "tags", "tag=", "scheduleName", "sortBy=event", "expiresIn", "page="):
        assert word in text, word


async def test_readme_examples_run(api: Api) -> None:
    await insert_job(api.pool, schedule_name="nightly")
    for line in _curl_lines():
        method, path, query, body = _parse(line)
        r = await api.call(method, path, json=body, params=query)
        assert r.status in (200, 201), (line, r.body)
        if "page=" in line:
            assert {"page", "total", "totalPages", "totalAtLeast"} <= set(r.body), line
        if "event=user.signup" in line:
            assert [j["event"] for j in r.body["items"]] == ["user.signup"], line
        if "scheduleName=nightly" in line:
            assert len(r.body["items"]) == 1 and r.body["items"][0]["isRecurring"], line
        if "expiresIn" in line:
            assert r.body["expiresAt"] is not None and r.body["isScheduled"], line
    assert re.search(r"enqueue\(conn, \"echo\"", README)
