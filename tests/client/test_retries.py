"""Retries against real servers on loopback: a 503 answered twice then a 200 (Retry-After
honoured), 503s that never stop (Unavailable after the attempts), and connections dropped
before an answer (repeated only for calls that are safe to repeat)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from jobserver.client import AsyncClient, Client, NetworkError, RetryPolicy, Unavailable
from tests.worker.http_receiver import serve_all

JOB = {"id": "0190d9b3-0000-7000-8000-000000000001", "status": "queued", "queue": "default"}
FAST = RetryPolicy(attempts=3, base=0.01, cap=0.05)


class Flaky:
    """Answers 503 (database_unavailable) `failures` times, then the job."""

    def __init__(self, failures: int, retry_after: str | None = None) -> None:
        self.failures = failures
        self.retry_after = retry_after
        self.seen: list[tuple[float, str, str | None]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((time.monotonic(), request.path, request.headers.get("Authorization")))
        if len(self.seen) <= self.failures:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            body = {"error": "database unavailable", "code": "database_unavailable"}
            return web.json_response(body, status=503, headers=headers)
        return web.json_response(JOB)


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[Flaky, str]]:
    server = Flaky(2, retry_after="1")
    runner, base = await serve_all(server.handle)
    yield server, base
    await runner.cleanup()


async def test_async_client_retries_503_honouring_retry_after(flaky: tuple[Flaky, str]) -> None:
    server, base = flaky
    async with AsyncClient(base, "tok") as c:
        job = await c.get(JOB["id"])
    assert job.id == JOB["id"] and job.status == "queued"
    assert len(server.seen) == 3 and {s[2] for s in server.seen} == {"Bearer tok"}
    assert server.seen[1][0] - server.seen[0][0] >= 1.0  # Retry-After: 1


async def test_sync_client_retries_503_honouring_retry_after(flaky: tuple[Flaky, str]) -> None:
    server, base = flaky

    def call() -> str:
        with Client(base, "tok") as c:
            return c.get(JOB["id"]).id

    assert await asyncio.to_thread(call) == JOB["id"]
    assert [s[1] for s in server.seen] == [f"/v1/jobs/{JOB['id']}"] * 3
    assert server.seen[1][0] - server.seen[0][0] >= 1.0


async def test_503_past_the_attempts_is_unavailable_with_its_code() -> None:
    server = Flaky(failures=100)
    runner, base = await serve_all(server.handle)
    try:
        async with AsyncClient(base, retry=FAST) as c:
            with pytest.raises(Unavailable) as err:
                await c.submit("echo")  # a 503 wrote nothing: even a plain submission retries
        assert (err.value.status, err.value.code) == (503, "database_unavailable")
        assert len(server.seen) == 3
    finally:
        await runner.cleanup()


class Dropper:
    """A bare HTTP/1.1 server that closes the first `drops` connections once it has read the
    request, without answering, then answers the job."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.seen: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if length:
                await reader.readexactly(int(length.group(1)))
            self.seen.append(head.split(b"\r\n", 1)[0].decode())
            if len(self.seen) > self.drops:
                body = json.dumps(JOB).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


async def _dropper(drops: int) -> tuple[Dropper, asyncio.Server, str]:
    d = Dropper(drops)
    server = await asyncio.start_server(d.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return d, server, f"http://127.0.0.1:{port}"


async def test_a_dropped_connection_is_retried_only_when_repeating_is_safe() -> None:
    d, server, base = await _dropper(drops=1)
    try:
        async with AsyncClient(base, retry=FAST) as c:
            assert (await c.get(JOB["id"])).id == JOB["id"]  # a read: sent again
        assert len(d.seen) == 2

        d.seen.clear()
        async with AsyncClient(base, retry=FAST) as c:
            with pytest.raises(NetworkError) as err:
                await c.submit("echo")  # no idempotencyKey: the server may have stored it
        assert err.value.status is None and err.value.code == "network_error"
        assert d.seen == ["POST /v1/jobs HTTP/1.1"]

        d.seen.clear()

        def keyed() -> str:
            with Client(base, retry=FAST) as c:
                return c.submit("echo", idempotency_key="k").id  # a repeat is answered as-is

        assert await asyncio.to_thread(keyed) == JOB["id"]
        assert d.seen == ["POST /v1/jobs HTTP/1.1"] * 2
    finally:
        server.close()
        await server.wait_closed()
