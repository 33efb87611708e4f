"""Fixtures of the dashboard tests: one real system per module (a database of its own, an API,
a worker and a scheduler as processes; see stack.py) and one Debian Chromium driven by
Playwright. Each test opens its own browser context (its own sessionStorage), signs in through
the page, and fails if the page logged a Content-Security-Policy violation."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from jobserver.config import Settings
from jobserver.db.pool import create_pool
from tests.conftest import PgServer, create_test_database, drop_test_database
from tests.ui.stack import Stack, start

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
# Debian's Chromium, as the developers' guide launches it (`playwright install` cannot
# download here, and none of these features is wanted in a test)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Records every CSP violation the page sees (an init script runs outside the page's CSP).
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture(scope="module")
async def ui_pool(
    pg_server: PgServer, template_url: str
) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    url = await create_test_database(pg_server)
    pool = await create_pool(url, Settings(), max_size=4)
    try:
        yield url, pool
    finally:
        await pool.close()
        await drop_test_database(pg_server, url)


@pytest.fixture(scope="module")
async def stack(ui_pool: tuple[str, asyncpg.Pool]) -> AsyncIterator[Stack]:
    url, pool = ui_pool
    s = await start(url, pool)
    try:
        yield s
    finally:
        s.procs.close()


@pytest.fixture(scope="module")
def db(ui_pool: tuple[str, asyncpg.Pool]) -> asyncpg.Pool:
    return ui_pool[1]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.async_api")
    pw = await playwright_api.async_playwright().start()
    try:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()
    finally:
        await pw.stop()


class Console:
    """What the page logged: every message, and the CSP violations among them."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def csp_violations(self) -> list[str]:
        return [m for m in self.messages if "Content Security Policy" in m]


@pytest.fixture
async def page(browser: Any, stack: Stack) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    await context.add_init_script(CSP_WATCH)
    p = await context.new_page()
    console = Console()
    p.on("console", lambda m: console.messages.append(f"{m.type}: {m.text}"))
    p.on("pageerror", lambda e: console.messages.append(f"pageerror: {e}"))
    p.console = console  # type: ignore[attr-defined]
    try:
        yield p
        assert console.csp_violations() == []
        assert await p.evaluate("window.__cspViolations || []") == []
        assert [m for m in console.messages if m.startswith("pageerror")] == []
    finally:
        await context.close()
