"""Scenario: API-side safety against a live API process (issue 11, cases 3, 8, 10, 11, 14).

The attacks as they were made against main, on loopback:
3. the metrics query made slow for real (this test holds a lock on `dead_letter_jobs`, which
   the refresh reads), 25 concurrent `/metrics` scrapes, then a `POST /v1/jobs`: it answers
   201 at once (or 503 `database_busy`, never a hang) and the database sees one refresh;
8. `1e308` in params: a 422 naming `params.x`, nothing stored;
10. forged cursors (a real one decoded, altered, encoded again): 422 naming `cursor`;
11. `LOG_FORMAT=text` and a path with `%0A`: no forged line in the API's log;
14. `/metrics` on loopback stays public by default (`auto`), and a scrape carries no tenant
    queue label past METRICS_MAX_QUEUES.
The API's own access log is the independent 5xx count.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.faults.conftest import Row
from tests.faults.helpers import HttpStats, Procs, job_body, post_json
from tests.waiting import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.scenario("API safety")]

SCRAPERS = 25
HANG = 15.0  # a hang detector only: healthy answers take milliseconds
FAKE = "12:00:00 WARNING jobserver.auth: token revoked for admin"
LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: ")


async def _waiting_on(pool: asyncpg.Pool, text: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'",
            text,
        )
    )


async def _get(s: aiohttp.ClientSession, url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with s.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=HANG * 2)) as r:
        raw = await r.read()
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw


def _forge(cursor: str, value: Any) -> str:
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    data[1] = value
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def test_api_safety_against_a_live_api(
    db: asyncpg.Pool, procs: Procs, tokens: dict[str, str], database_url: str, report: Row
) -> None:
    api, base = await procs.api(env={"LOG_FORMAT": "text", "METRICS_MAX_QUEUES": "3"})
    token = tokens["alice"]
    stats = HttpStats()
    notes = []
    async with aiohttp.ClientSession() as s:
        for i in range(8):  # 8 tenant-chosen queues
            status, _ = await post_json(
                s, f"{base}/v1/jobs", job_body(i, queue=f"tenant-{i}"), token, stats
            )
            assert status == 201

        # -- 3. slow metrics, 25 scrapes, one submission --------------------------------------
        locker = await asyncpg.connect(database_url)
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE dead_letter_jobs IN ACCESS EXCLUSIVE MODE")
        try:
            scrapes = [asyncio.create_task(_get(s, f"{base}/metrics")) for _ in range(SCRAPERS)]
            assert await wait_for(lambda: _waiting_on(db, "dead_letter_jobs"), within=HANG)
            t0 = time.monotonic()
            status, body = await post_json(s, f"{base}/v1/jobs", job_body(99), token, stats)
            took = time.monotonic() - t0
            assert status == 201 or (status, body["code"]) == (503, "database_busy"), body
            assert took < HANG, took
            refreshes = await _waiting_on(db, "dead_letter_jobs")
            assert refreshes == 1, refreshes
            assert not any(t.done() for t in scrapes)
        finally:
            await locker.close()
        answers = await asyncio.wait_for(asyncio.gather(*scrapes), HANG)
        assert {a[0] for a in answers} == {200}
        notes.append(
            f"{SCRAPERS} scrapes on a locked table: {refreshes} refresh, POST {status} in"
            f" {took * 1000:.0f} ms"
        )

        # -- 14. loopback: public by default; queue labels bounded -----------------------------
        text = answers[0][1].decode()
        queues = set(re.findall(r'queue="([^"]*)"', text))
        assert len(queues) <= 4 and "other" in queues, queues
        notes.append(f"queue labels {len(queues)} of 9 queues")

        # -- 8. number amplification ----------------------------------------------------------
        before = await db.fetchval("SELECT count(*) FROM jobs")
        bad = job_body(1)
        bad["params"]["x"] = 1e308
        status, body = await post_json(s, f"{base}/v1/jobs", bad, token, stats)
        assert (status, body["field"]) == (422, "params.x"), body
        assert await db.fetchval("SELECT count(*) FROM jobs") == before

        # -- 10. forged cursors ---------------------------------------------------------------
        status, page = await _get(s, f"{base}/v1/jobs?limit=1&sortBy=priority", token)
        assert status == 200 and page["nextCursor"], page
        for value in (2**31, 2**63, -(2**70), 1.5, "x", None, "a\u0000b"):
            forged = _forge(page["nextCursor"], value)
            status, body = await _get(
                s, f"{base}/v1/jobs?limit=1&sortBy=priority&cursor={forged}", token
            )
            assert (status, body.get("field")) == (422, "cursor"), (value, body)

        # -- 11. log forging ------------------------------------------------------------------
        path = "/v1/jobs/x%0A" + FAKE.replace(" ", "%20")
        status, _ = await _get(s, f"{base}{path}", token)
        assert status in (404, 422)

    async def logged() -> bool:
        return "token%20revoked" in api.output() or "token revoked" in api.output()

    await wait_for(logged, within=5)
    lines = api.output().splitlines()
    forged = [ln for ln in lines if ln.startswith(FAKE)]
    assert not forged, forged
    access = [ln for ln in lines if LINE.match(ln) and "api.access" in ln]
    statuses = [int(m.group(1)) for ln in access if (m := re.search(r"status=(\d+)", ln))]
    assert statuses and all(x < 500 for x in statuses), [ln for ln in access if "status=5" in ln]
    notes.append("no forged log line")
    report.http_5xx = sum(1 for x in statuses if x >= 500) + stats.count_5xx
    report.accepted = len(stats.accepted)
    report.note = "; ".join(notes)
