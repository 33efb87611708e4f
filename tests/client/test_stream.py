"""`stream` and the stream-driven `wait` against a small real aiohttp server speaking the
/v1/stream contract (text/event-stream: hello, job and resync messages, `: ping` comments,
ids resumed through Last-Event-ID), and the SSE decoder on its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from jobserver.client import AsyncClient, Client, StreamEvent, Unauthorized
from jobserver.client.sse import SSEDecoder
from tests.waiting import wait_for

JOB_ID = "0190d9b3-0000-7000-8000-0000000000aa"


def job_message(cursor: str, status: str, progress: float | None = None) -> str:
    data = {
        "id": JOB_ID,
        "status": status,
        "queue": "default",
        "definitionKey": "k",
        "definitionVersion": 1,
        "progress": progress,
        "attempt": 1,
        "updatedAt": "2026-01-01T00:00:00+00:00",
    }
    return f"id: {cursor}\nevent: job\ndata: {json.dumps(data)}\n\n"


HELLO = 'event: hello\ndata: {"serverTime": "2026-01-01T00:00:00+00:00"}\n\n'


class StreamServer:
    """Serves /v1/stream: connection n sends the chunks of `scripts[n]` and closes (or, past
    the scripts, holds the connection open until `release` is set, sending what `later`
    holds); GET /v1/jobs/{id} answers `job_status`. Records every request."""

    def __init__(self, scripts: list[list[str]]) -> None:
        self.scripts = scripts
        self.connections: list[dict[str, Any]] = []
        self.job_reads = 0
        self.job_status = "running"
        self.release = asyncio.Event()
        self.later: list[str] = []
        self.unavailable = 0  # answer this many connections 503 first

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer tok":
            return web.json_response({"error": "bad token", "code": "unauthorized"}, status=401)
        if self.unavailable:
            self.unavailable -= 1
            body = {"error": "database unavailable", "code": "database_unavailable"}
            return web.json_response(body, status=503, headers={"Retry-After": "0"})
        n = len(self.connections)
        self.connections.append(
            {"last": request.headers.get("Last-Event-ID"), "query": dict(request.query)}
        )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if n < len(self.scripts):
            for chunk in self.scripts[n]:
                await resp.write(chunk.encode())
            return resp
        await resp.write(HELLO.encode())
        await self.release.wait()
        for chunk in self.later:
            await resp.write(chunk.encode())
        await asyncio.Event().wait()  # held open until the client goes
        return resp

    async def job(self, request: web.Request) -> web.Response:
        self.job_reads += 1
        return web.json_response({"id": JOB_ID, "status": self.job_status, "attempt": 1})


async def serve(server: StreamServer) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/v1/stream", server.stream)
    app.router.add_get("/v1/jobs/{id}", server.job)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


SCRIPTS = [
    [
        "retry: 20\n\n: ping\n\n",
        HELLO,
        job_message("c1", "running"),
        job_message("c2", "running", 50.0)[:25],  # a message split across writes
        job_message("c2", "running", 50.0)[25:],
    ],
    ["event: resync\ndata: {}\n\n", job_message("c3", "succeeded", 100.0)],
]


@pytest.fixture
async def sse() -> AsyncIterator[tuple[StreamServer, str]]:
    server = StreamServer([list(s) for s in SCRIPTS])
    runner, base = await serve(server)
    yield server, base
    server.release.set()
    await runner.cleanup()


def _check(server: StreamServer, got: list[StreamEvent]) -> None:
    assert [(e.event, e.id) for e in got] == [
        ("hello", None),
        ("job", "c1"),
        ("job", "c2"),
        ("resync", "c2"),
        ("job", "c3"),
    ]
    assert got[0].data == {"serverTime": "2026-01-01T00:00:00+00:00"}
    assert got[2].job is not None and got[2].job.progress == 50.0 and got[2].job.id == JOB_ID
    assert got[4].job is not None and got[4].job.is_terminal and got[3].data == {}
    assert [c["last"] for c in server.connections] == [None, "c2"]  # resumed from its cursor
    assert server.connections[0]["query"] == {"jobId": JOB_ID, "status": "running,succeeded"}


async def test_async_stream_reconnects_with_last_event_id(sse: tuple[StreamServer, str]) -> None:
    server, base = sse
    async with AsyncClient(base, "tok") as c:
        stream = c.stream(job_id=JOB_ID, status=["running", "succeeded"], max_reconnects=1)
        got = [e async for e in stream]
    _check(server, got)


async def test_sync_stream_reconnects_with_last_event_id(sse: tuple[StreamServer, str]) -> None:
    server, base = sse

    def read() -> list[StreamEvent]:
        with Client(base, "tok") as c:
            stream = c.stream(job_id=JOB_ID, status=["running", "succeeded"], max_reconnects=1)
            return list(stream)

    _check(server, await asyncio.to_thread(read))


async def test_a_503_on_connect_is_retried(sse: tuple[StreamServer, str]) -> None:
    server, base = sse
    server.unavailable = 2
    async with AsyncClient(base, "tok") as c:
        got = [e.event async for e in c.stream(max_reconnects=3)]
    assert got == ["hello", "job", "job", "resync", "job"] and server.unavailable == 0


async def test_a_refused_stream_raises_the_typed_error(sse: tuple[StreamServer, str]) -> None:
    _, base = sse
    async with AsyncClient(base, "wrong") as c:
        with pytest.raises(Unauthorized) as err:
            [e async for e in c.stream()]
    assert err.value.code == "unauthorized"

    def read() -> None:
        with Client(base, "wrong") as c:
            list(c.stream())

    with pytest.raises(Unauthorized):
        await asyncio.to_thread(read)


async def test_wait_is_woken_by_the_stream_not_by_polling() -> None:
    server = StreamServer([])  # every connection: hello, then held open
    runner, base = await serve(server)
    try:
        async with AsyncClient(base, "tok", poll=(30.0, 30.0)) as c:  # polling would be slow
            waiting = asyncio.create_task(c.wait(JOB_ID, timeout=30))
            # the first read, then one on hello (a job that ended before the stream opened)
            await wait_for(lambda: _reads(server, 2))
            assert not waiting.done()
            server.job_status = "succeeded"
            server.later = [job_message("c9", "succeeded")]
            server.release.set()
            job = await asyncio.wait_for(waiting, 10)
        assert job.status == "succeeded" and server.job_reads == 3
        assert c._stream_known is True
        assert server.connections[0]["query"] == {"jobId": JOB_ID}
    finally:
        server.release.set()
        await runner.cleanup()


async def test_wait_polls_the_job_on_a_server_without_the_stream() -> None:
    server = StreamServer([])
    app = web.Application()
    app.router.add_get("/v1/jobs/{id}", server.job)  # no /v1/stream: a 404
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with AsyncClient(f"http://127.0.0.1:{port}", "tok", poll=(0.01, 0.05)) as c:
            waiting = asyncio.create_task(c.wait(JOB_ID, timeout=30))
            await wait_for(lambda: _reads(server, 3))
            server.job_status = "succeeded"
            job = await asyncio.wait_for(waiting, 10)
        assert job.status == "succeeded" and c._stream_known is False
        assert server.connections == []
    finally:
        await runner.cleanup()


async def _reads(server: StreamServer, n: int) -> bool:
    return server.job_reads >= n


def test_the_decoder_follows_the_event_stream_format() -> None:
    d = SSEDecoder(last_event_id="start")
    fed = [
        ": ping",
        "",  # a comment alone dispatches nothing
        "retry: 2500",
        "event: job",
        'data: {"id": "a",',
        'data: "status": "queued"}',
        "id: 7",
        "\r",
    ]
    out = [d.feed(line) for line in fed]
    assert out[:-1] == [None] * (len(fed) - 1)
    ev = out[-1]
    assert ev is not None and ev.event == "job" and ev.id == "7"
    assert ev.job is not None and (ev.job.id, ev.job.status) == ("a", "queued")
    assert d.retry_ms == 2500 and d.last_event_id == "7"
    assert d.feed("data:plain text") is None
    text = d.feed("")
    assert text is not None and (text.event, text.data, text.job) == ("message", "plain text", None)
    assert d.feed("id: 8") is None and d.feed("") is None  # an id alone: no message, new cursor
    assert d.last_event_id == "8"
