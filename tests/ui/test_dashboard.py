"""The dashboard end to end: Debian's Chromium (Playwright) against a real API, worker,
scheduler and PostgreSQL. Each case asserts what the page shows, and the database where the
page claims an action happened. Screenshots of every page land in docs/screenshots/.

Waits are Playwright's bounded `expect` (the page re-reads on stream events, or every 5 s
where the stream route is missing) and `wait_for` on database rows, never a sleep.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import expect
from yarl import URL

from jobserver.ui import CSP
from tests.clips import make_clip
from tests.ui.conftest import SCREENSHOTS
from tests.ui.stack import Stack
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

LIVE = 20_000  # ms: a page must show a change within one 5 s poll, with room to spare


async def sign_in(page: Any, stack: Stack, who: str = "admin") -> None:
    await page.goto(f"{stack.base}/ui/")
    await page.get_by_test_id("token").fill(stack.tokens[who])
    await page.get_by_test_id("sign-in").click()
    await expect(page.get_by_test_id("who")).to_contain_text(f"ui-{who}")


async def api(stack: Stack, method: str, path: str, body: Any = None, who: str = "admin") -> Any:
    headers = {"Authorization": f"Bearer {stack.tokens[who]}"}
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, f"{stack.base}{path}", json=body, headers=headers) as r,
    ):
        assert r.status < 300, (r.status, await r.text())
        return await r.json()


async def job_status(db: asyncpg.Pool, job_id: str) -> str:
    return str(await db.fetchval("SELECT status FROM jobs WHERE id = $1", uuid.UUID(job_id)))


async def open_gate(db: asyncpg.Pool, job_id: str, step: int) -> None:
    await db.execute("UPDATE ui_gate SET opened = $2 WHERE job_id = $1", uuid.UUID(job_id), step)


async def running_at_gate(db: asyncpg.Pool, job_id: str) -> None:
    async def ready() -> bool:
        row = await db.fetchval("SELECT 1 FROM ui_gate WHERE job_id = $1", uuid.UUID(job_id))
        return row is not None and await job_status(db, job_id) == "running"

    await wait_for(ready, within=20)


async def test_ui_files_carry_the_security_headers(stack: Stack) -> None:
    async with aiohttp.ClientSession() as s:
        for path, status in (
            ("/ui", 200),
            ("/ui/", 200),
            ("/ui/js/app.js", 200),
            ("/ui/vendor/preact-htm-standalone.module.js", 200),
            ("/ui/nope.js", 404),
            ("/ui/%2e%2e/%2e%2e/__init__.py", 404),
            ("/ui/js/", 404),
        ):
            async with s.get(URL(f"{stack.base}{path}", encoded=True)) as r:
                assert r.status == status, path
                assert r.headers["Content-Security-Policy"] == CSP, path
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert r.headers["Referrer-Policy"] == "no-referrer"
                if status == 404:
                    assert (await r.json())["code"] == "not_found"
        async with s.get(f"{stack.base}/ui/") as r:
            page = await r.text()
        assert "<script>" not in page and "style=" not in page  # nothing inline
        assert "frame-ancestors 'none'" in CSP and "script-src 'self';" in CSP


async def test_a_bad_token_shows_the_sign_in_error(page: Any, stack: Stack) -> None:
    await page.goto(f"{stack.base}/ui/")
    await page.get_by_test_id("token").fill("js_not_a_real_token")
    await page.get_by_test_id("sign-in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not accepted")
    assert await page.evaluate("sessionStorage.length") == 0
    await expect(page.get_by_test_id("who")).to_have_count(0)


async def test_sign_in_keeps_the_token_in_the_session_only(page: Any, stack: Stack) -> None:
    await sign_in(page, stack)
    assert await page.evaluate("Object.values(sessionStorage)") == [stack.tokens["admin"]]
    assert await page.evaluate("localStorage.length") == 0
    assert stack.tokens["admin"] not in page.url
    await page.reload()  # the same tab keeps it
    await expect(page.get_by_test_id("who")).to_contain_text("ui-admin")
    await page.get_by_test_id("sign-out").click()
    await expect(page.get_by_test_id("signin")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0


async def test_a_reload_of_the_jobs_page_reads_each_first_answer_once(
    page: Any, stack: Stack
) -> None:
    """js/early.js starts GET /v1/me and the list's first reads before the other modules load;
    the page takes those answers instead of asking again."""
    await sign_in(page, stack)
    await api(stack, "POST", "/v1/jobs", {"definitionKey": "echo", "queue": "ui-early"})
    await page.goto(f"{stack.base}/ui/#/jobs?queue=ui-early")
    await expect(page.get_by_test_id("jobs-table")).to_contain_text("ui-early")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/v1/" in r.url else None)
    await page.reload()
    await expect(page.get_by_test_id("jobs-table")).to_contain_text("ui-early")
    await expect(page.get_by_test_id("job-count")).to_contain_text("1 jobs")
    paths = [URL(u).path_qs for u in asked if "/v1/stream" not in u]
    assert sorted(paths) == [
        "/v1/jobs/count?queue=ui-early",
        "/v1/jobs?limit=25&queue=ui-early",
        "/v1/me",
    ], paths
    started = await page.evaluate("window.__jobserverEarly.size")
    assert started == 0  # every early read was taken by the page


async def test_submit_and_watch_progress_to_done(page: Any, stack: Stack, db: asyncpg.Pool) -> None:
    await sign_in(page, stack)
    await page.goto(f"{stack.base}/ui/#/jobs")
    await page.get_by_test_id("submit-panel").locator("summary").click()
    await page.get_by_test_id("submit-definition").fill("ui.steps")
    await page.get_by_test_id("submit-params").fill('{"steps": 3}')
    await page.get_by_test_id("submit-job").click()
    await expect(page).to_have_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"), timeout=LIVE)
    job_id = page.url.rsplit("/", 1)[1]
    head = page.get_by_test_id("job-head")
    # live from GET /v1/stream where the API has it, else a re-read every 5 s
    paths = (await api(stack, "GET", "/openapi.json"))["paths"]
    badge = "live" if "/v1/stream" in paths else "refreshing every 5 s"
    await expect(page.get_by_test_id("live")).to_have_text(badge, timeout=LIVE)
    await expect(head.get_by_test_id("job-definition")).to_have_text("ui.steps@1")
    await running_at_gate(db, job_id)
    await expect(head.locator("[data-status=running]")).to_be_visible(timeout=LIVE)
    for step, shown in ((1, "33%"), (2, "67%")):
        await open_gate(db, job_id, step)
        await expect(head.get_by_test_id("progress-pct")).to_have_text(shown, timeout=LIVE)
        assert await job_status(db, job_id) == "running"  # it waits for the next gate
    await open_gate(db, job_id, 3)
    await expect(head.locator("[data-status=succeeded]")).to_be_visible(timeout=LIVE)
    await expect(head.get_by_test_id("progress-pct")).to_have_text("100%")
    await expect(page.get_by_test_id("job-result")).to_contain_text('"steps": 3')
    await expect(page.locator("[data-event=succeeded]")).to_have_count(1)
    assert await job_status(db, job_id) == "succeeded"
    await page.screenshot(path=SCREENSHOTS / "job.png", full_page=True)


async def test_cancel_a_running_job(page: Any, stack: Stack, db: asyncpg.Pool) -> None:
    job = await api(stack, "POST", "/v1/jobs", {"definitionKey": "ui.steps", "params": {}})
    await running_at_gate(db, job["id"])
    await sign_in(page, stack)
    await page.goto(f"{stack.base}/ui/#/jobs/{job['id']}")
    head = page.get_by_test_id("job-head")
    await expect(head.locator("[data-status=running]")).to_be_visible()
    await page.get_by_test_id("cancel").click()
    await expect(head.locator("[data-status=cancelled]")).to_be_visible(timeout=LIVE)
    await expect(page.get_by_test_id("cancel")).to_have_count(0)
    await expect(page.get_by_test_id("retry")).to_be_visible()
    assert await job_status(db, job["id"]) == "cancelled"


async def test_redrive_from_the_dlq(page: Any, stack: Stack, db: asyncpg.Pool) -> None:
    job = await api(stack, "POST", "/v1/jobs", {"definitionKey": "ui.fail"})
    dead = "SELECT id FROM dead_letter_jobs WHERE id = $1"
    await wait_for(lambda: db.fetchval(dead, uuid.UUID(job["id"])), within=20)
    await sign_in(page, stack)
    await page.goto(f"{stack.base}/ui/#/dlq")
    row = page.get_by_test_id("dlq-table").locator("tr", has_text=job["id"][-8:])
    await expect(row).to_contain_text("ui.fail failed on purpose")
    await row.get_by_test_id("redrive").click()
    await expect(page.get_by_test_id("dlq-note")).to_contain_text("Redriven as")
    await expect(row.get_by_test_id("redriven-link")).to_be_visible(timeout=LIVE)
    redriven = await db.fetchval(
        "SELECT redriven_job_id FROM dead_letter_jobs WHERE id = $1", uuid.UUID(job["id"])
    )
    assert redriven is not None
    await expect(row.get_by_test_id("redriven-link")).to_have_text(f"…{str(redriven)[-8:]}")


async def test_pause_and_resume_a_queue(page: Any, stack: Stack, db: asyncpg.Pool) -> None:
    await api(stack, "POST", "/v1/jobs", {"definitionKey": "echo", "queue": "ui-pause"})
    await sign_in(page, stack)
    await page.goto(f"{stack.base}/ui/#/queues")
    row = page.get_by_test_id("queues-table").locator("tr", has_text="ui-pause")
    await expect(row.get_by_test_id("queue-state")).to_have_text("active", timeout=LIVE)
    await row.get_by_test_id("pause").click()
    await expect(row.get_by_test_id("queue-state")).to_have_text("paused")
    paused = await api(stack, "GET", "/v1/queues/paused")
    assert [q["queue"] for q in paused["items"]] == ["ui-pause"]
    await row.get_by_test_id("resume").click()
    await expect(row.get_by_test_id("queue-state")).to_have_text("active")
    assert (await api(stack, "GET", "/v1/queues/paused"))["items"] == []


async def test_actions_follow_the_token_scopes(page: Any, stack: Stack, db: asyncpg.Pool) -> None:
    job = await api(stack, "POST", "/v1/jobs", {"definitionKey": "ui.steps", "params": {}})
    await running_at_gate(db, job["id"])
    await sign_in(page, stack, "viewer")  # view_jobs: sees the job, may not act on it
    await page.goto(f"{stack.base}/ui/#/jobs/{job['id']}")
    await expect(page.get_by_test_id("job-head").locator("[data-status=running]")).to_be_visible()
    await expect(page.get_by_test_id("job-actions")).to_have_count(0)
    await expect(page.get_by_test_id("nav-dlq")).to_have_count(0)
    await expect(page.get_by_test_id("nav-overview")).to_have_count(1)
    await page.get_by_test_id("sign-out").click()
    await sign_in(page, stack, "plain")  # a plain token: its own jobs only
    await expect(page.get_by_test_id("nav-overview")).to_have_count(0)
    await expect(page.get_by_test_id("jobs-table-empty")).to_be_visible()
    await open_gate(db, job["id"], 4)


async def test_screenshots_of_every_page(page: Any, stack: Stack, db: asyncpg.Pool) -> None:
    """Each page renders its data (and the run leaves its picture in docs/screenshots)."""
    flow = await api(
        stack,
        "POST",
        "/v1/workflows",
        {
            "name": "ui-flow",
            "steps": [
                {"name": "fetch", "jobType": "echo"},
                {"name": "resize", "jobType": "echo", "dependsOn": ["fetch"]},
                {"name": "index", "jobType": "echo", "dependsOn": ["fetch"]},
                {"name": "publish", "jobType": "echo", "dependsOn": ["resize", "index"]},
            ],
        },
    )
    run = await api(stack, "POST", f"/v1/workflows/{flow['id']}/runs", {})
    body = {"name": "nightly-report", "definitionKey": "echo", "cron": "0 3 * * *"}
    await api(stack, "POST", "/v1/schedules", body)
    await api(stack, "POST", "/v1/saved-jobs", {"name": "say-hello", "definitionKey": "echo"})
    await api(stack, "POST", "/v1/jobs", {"definitionKey": "ui.fail"})
    for n in range(3):
        await api(stack, "POST", "/v1/jobs", {"definitionKey": "echo", "params": {"n": n}})
    await sign_in(page, stack)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shows = {
        "overview": ("chart-week", "Last week"),
        "jobs": ("jobs-table", "echo@1"),
        "dlq": ("dlq-table", "ui.fail@1"),
        "schedules": ("schedules-table", "nightly-report"),
        "saved": ("saved-table", "say-hello"),
        f"workflows/{flow['id']}/{run['runId']}": ("step-graph", "publish"),
        "runners": ("runners-table", "ui-worker-1"),
        "queues": ("queues-table", "default"),
        "definitions": ("definitions-table", "ui.steps@1"),
        "videos": ("video-upload", "Upload"),
    }
    for where, (testid, text) in shows.items():
        await page.goto(f"{stack.base}/ui/#/{where}")
        await expect(page.get_by_test_id(testid)).to_contain_text(text, timeout=LIVE)
        if where == "overview":  # its charts drawn (uPlot is loaded when one first draws)
            await expect(page.locator("[data-testid=chart-week] canvas")).to_have_count(1)
        name = where.split("/", 1)[0]
        await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    await page.get_by_test_id("sign-out").click()
    await expect(page.get_by_test_id("signin")).to_be_visible()
    await page.screenshot(path=SCREENSHOTS / "signin.png")


async def test_upload_a_video_and_play_it(
    page: Any, stack: Stack, db: asyncpg.Pool, tmp_path: Path
) -> None:
    clip = await asyncio.to_thread(make_clip, tmp_path / "clip.mp4", seconds=1.0)
    await sign_in(page, stack)
    await page.goto(f"{stack.base}/ui/#/videos")
    await page.get_by_test_id("video-file").set_input_files(str(clip))
    await page.get_by_test_id("video-submit").click()
    row = page.get_by_test_id("videos-table").locator("tbody tr").first
    await expect(row.locator("[data-status=succeeded]")).to_be_visible(timeout=60_000)
    await row.get_by_test_id("video-play").click()
    player = row.get_by_test_id("video-player")
    await expect(player).to_have_attribute("src", re.compile(r"^blob:"))
    # the browser decoded the encoded bytes: it knows the clip's length
    await page.wait_for_function(
        "() => document.querySelector('[data-testid=video-player]').duration > 0",
        timeout=LIVE,
    )
    done = "SELECT count(*) FROM jobs WHERE definition_key = 'encode.video' AND status = $1"
    assert await db.fetchval(done, "succeeded") >= 1


async def test_the_jobs_list_follows_status_changes(
    page: Any, stack: Stack, db: asyncpg.Pool
) -> None:
    job = await api(
        stack, "POST", "/v1/jobs", {"definitionKey": "ui.steps", "params": {"steps": 1}}
    )
    await running_at_gate(db, job["id"])
    await sign_in(page, stack)
    await page.goto(f"{stack.base}/ui/#/jobs?definitionKey=ui.steps")
    row = page.get_by_test_id("jobs-table").locator(f"tr[data-key='{job['id']}']")
    await expect(row.locator("[data-status=running]")).to_be_visible(timeout=LIVE)
    await open_gate(db, job["id"], 1)
    await expect(row.locator("[data-status=succeeded]")).to_be_visible(timeout=LIVE)
    await page.get_by_test_id("filter-status-running").check()
    await page.get_by_test_id("apply-filters").click()
    await expect(page).to_have_url(re.compile(r"status=running"))
    await expect(row).to_have_count(0)


async def test_redrive_many_and_discard(page: Any, stack: Stack, db: asyncpg.Pool) -> None:
    ids = [
        (await api(stack, "POST", "/v1/jobs", {"definitionKey": "ui.fail"}))["id"] for _ in "abc"
    ]
    waiting = "SELECT count(*) FROM dead_letter_jobs WHERE id = ANY($1) AND redriven_at IS NULL"
    as_uuids = [uuid.UUID(i) for i in ids]
    await wait_for(lambda: _equals(db.fetchval(waiting, as_uuids), 3), within=20)
    await sign_in(page, stack)
    await page.goto(f"{stack.base}/ui/#/dlq")
    table = page.get_by_test_id("dlq-table")
    for i in ids[:2]:
        await table.locator(f"tr[data-key='{i}']").get_by_test_id("dlq-pick").check()
    await page.get_by_test_id("redrive-selected").click()
    await expect(page.get_by_test_id("dlq-note")).to_contain_text("Redriven 2")
    assert await db.fetchval(waiting, as_uuids) == 1
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await table.locator(f"tr[data-key='{ids[2]}']").get_by_test_id("discard").click()
    await expect(table.locator(f"tr[data-key='{ids[2]}']")).to_have_count(0)
    assert (
        await db.fetchval("SELECT count(*) FROM dead_letter_jobs WHERE id = $1", as_uuids[2]) == 0
    )


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
