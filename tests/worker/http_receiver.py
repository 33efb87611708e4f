"""A webhook receiver on loopback for worker tests: records every request and answers as
each path is told (a list of answers played in order, the last one repeated)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from jobserver import outbound
from jobserver.outbound.policy import Policy, parse_cidrs
from tests.waiting import wait_for


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


@dataclass
class Answer:
    status: int = 200
    body: str | bytes = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/plain"
    delay: float = 0.0  # seconds before answering (a slow receiver)


@dataclass
class Receiver:
    base: str
    seen: list[Seen]
    script: dict[str, list[Answer]]

    def tell(self, path: str, *answers: Answer) -> str:
        self.script[path] = list(answers)
        return f"{self.base}{path}"

    def at(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path.split("?")[0] == path]


async def serve_all(
    handle: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> tuple[web.AppRunner, str]:
    """A server on 127.0.0.1 answering every method and path with `handle`: (runner, base URL)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
def allow_loopback() -> Iterator[None]:
    outbound.configure(Policy(allow_cidrs=parse_cidrs("127.0.0.1/32")))
    yield
    outbound.configure(None)


@pytest.fixture
async def receiver(allow_loopback: None) -> AsyncIterator[Receiver]:
    seen: list[Seen] = []
    script: dict[str, list[Answer]] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append(
            Seen(request.method, request.path_qs, dict(request.headers), body, time.monotonic())
        )
        answers = script.get(request.path) or [Answer()]
        a = answers.pop(0) if len(answers) > 1 else answers[0]
        if a.delay:
            await asyncio.sleep(a.delay)  # the receiver is slow: the client's timeout decides
        if a.body == "ECHO":  # the request's headers back, as JSON (secrets included)
            return web.json_response(dict(request.headers), status=a.status, headers=a.headers)
        raw = a.body.encode() if isinstance(a.body, str) else a.body
        return web.Response(
            status=a.status, body=raw, headers=a.headers, content_type=a.content_type
        )

    runner, base = await serve_all(handle)
    yield Receiver(base, seen, script)
    await runner.cleanup()


async def finished(db: asyncpg.Pool, job_id: uuid.UUID) -> asyncpg.Record:
    async def settled() -> asyncpg.Record | None:
        row = await db.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
        return row if row is not None and row["status"] in ("succeeded", "failed") else None

    row: asyncpg.Record = await wait_for(settled)
    return row


async def exchanges(db: asyncpg.Pool, job_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT details FROM job_events WHERE job_id = $1 AND event = 'custom' ORDER BY id", job_id
    )
    return [r["details"]["data"] for r in rows if r["details"]["name"] == "http_exchange"]


async def attempt_count(db: asyncpg.Pool, job_id: uuid.UUID) -> int:
    return int(await db.fetchval("SELECT count(*) FROM job_attempts WHERE job_id = $1", job_id))
