"""Scenario 7: hostile input against a live API process.

1. schemathesis over /openapi.json: every operation, every check, fixed seed, bounded examples
   (settings in tests/faults/schemathesis.toml). Zero 5xx and zero responses that contradict
   the document. Strings never carry NUL (`--generation-allow-x00 false`): the API refuses NUL
   in text on purpose (PostgreSQL text cannot store it).
2. By hand, over raw sockets: a declared 10 MB body is refused with 413 after 64 KB of it (the
   rest is never sent); a JSON bomb (deep nesting) is 400; invalid UTF-8 is 400;
   header floods are refused; slow clients (partial headers, partial bodies) are dropped after
   a bounded time and never stop the server from answering everybody else.
The API's own access log is the independent 5xx count for the whole scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.faults.conftest import Row
from tests.faults.helpers import ROOT, HttpStats, Procs, job_body, post_json, scaled

pytestmark = [pytest.mark.faults, pytest.mark.scenario("7. hostile input")]

MAX_EXAMPLES = scaled(25, 200)
SLOW_CLIENTS = 100
SLOW_CLIENT_LIMIT = 20.0  # seconds a stalled request may hold its connection


def st_command() -> list[str]:
    exe = Path(sys.executable).with_name("st")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("st")
    if found is None:
        pytest.fail("schemathesis is not installed (pip install -e '.[test]')")
    return [found]


def raw_request(port: int, data: bytes, *, read_timeout: float = 5.0) -> bytes:
    """Send `data` as is and return what the server answers (until it closes or times out)."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as s:
        with contextlib.suppress(OSError):
            s.sendall(data)
        return _read_reply(s)


def _read_reply(s: socket.socket) -> bytes:
    out = b""
    with contextlib.suppress(OSError):
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                length = _content_length(head)
                if length is not None and len(body) >= length:
                    break
    return out


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


def status_of(reply: bytes) -> int | None:
    if not reply.startswith(b"HTTP/1."):
        return None
    return int(reply.split(b" ", 2)[1])


def body_of(reply: bytes) -> dict[str, object]:
    return json.loads(reply.partition(b"\r\n\r\n")[2] or b"null")


def post(path: str, body: bytes, token: str, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}"
        "Connection: close\r\n\r\n"
    ).encode() + body


def too_large_declared(port: int, token: str) -> int | None:
    """Declare 10 MB, send 64 KB: the 413 must come back without the rest."""
    size = 10 * 1024 * 1024
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(head + b"[" * 65536)
        reply = _read_reply(s)
    return status_of(reply)


async def test_schemathesis_and_hand_written_abuse(
    db: asyncpg.Pool, procs: Procs, tokens: dict[str, str], report: Row
) -> None:
    # a JOBSERVER_SECRET_KEY: without one, storing a credential is a 503 by design
    secret_key = "A" * 43 + "="
    api, base = await procs.api(env={"LOG_LEVEL": "INFO", "JOBSERVER_SECRET_KEY": secret_key})
    port = int(base.rsplit(":", 1)[1])
    token = tokens["manage"]
    notes = []

    # -- 1. schemathesis ---------------------------------------------------------------------
    t0 = time.monotonic()
    st = await asyncio.to_thread(
        subprocess.run,
        [
            *st_command(),
            "--config-file",
            str(ROOT / "tests/faults/schemathesis.toml"),
            "run",
            f"{base}/openapi.json",
            "--checks",
            "all",
            "--seed",
            "6",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--generation-allow-x00",
            "false",
            "--header",
            f"Authorization: Bearer {token}",
            "--workers",
            "1",  # several workers trip a CPython 3.11 ast recursion bug inside hypothesis
            "--no-color",
            "--request-timeout",
            "10",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(480, 1200),  # every compatibility system is fuzzed too
    )
    summary = [ln for ln in st.stdout.splitlines() if re.search(r"\d+ generated", ln)]
    notes.append(f"schemathesis {time.monotonic() - t0:.0f} s: {' '.join(summary).strip()}")
    assert st.returncode == 0, st.stdout[-6000:] + st.stderr[-2000:]

    # -- 2. by hand ------------------------------------------------------------------------
    status = await asyncio.to_thread(too_large_declared, port, token)
    assert status == 413, status

    for bomb in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
        reply = await asyncio.to_thread(raw_request, port, post("/v1/jobs", bomb, token))
        assert status_of(reply) == 400, reply[:300]
        assert body_of(reply)["code"] == "invalid_json"
    nested_params = (
        json.dumps(job_body(1))
        .replace('{"ms": 20', '{"ms": 20, "x": ' + "[" * 5000 + "]" * 5000)
        .encode()
    )
    reply = await asyncio.to_thread(raw_request, port, post("/v1/jobs", nested_params, token))
    assert status_of(reply) in (400, 422), reply[:300]

    for bad in (
        b'{"definitionKey": "\xff\xfe"}',
        b'{"definitionKey": "faults.work", "params": {"s": "\xc3\x28"}}',
    ):
        reply = await asyncio.to_thread(raw_request, port, post("/v1/jobs", bad, token))
        assert status_of(reply) == 400, reply[:300]
    reply = await asyncio.to_thread(
        raw_request,
        port,
        f"GET /v1/jobs?queue=%ff%fe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    # a read-only filter: refusing it or matching nothing (decoded with U+FFFD) are both fine
    assert status_of(reply) in (200, 400, 422), reply[:300]

    flood = "".join(f"X-Flood-{i}: {'v' * 100}\r\n" for i in range(20_000))
    reply = await asyncio.to_thread(
        raw_request, port, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{flood}\r\n".encode()
    )
    assert status_of(reply) in (None, 400, 431), reply[:300]
    huge = f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {'v' * 200_000}\r\n\r\n".encode()
    reply = await asyncio.to_thread(raw_request, port, huge)
    assert status_of(reply) in (None, 400, 431), reply[:300]
    big_token = f"GET /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {'t' * 8000}\r\n\r\n"
    reply = await asyncio.to_thread(raw_request, port, big_token.encode())
    assert status_of(reply) in (400, 401, 431), reply[:300]

    # -- slow clients: partial headers and partial bodies, held open -------------------------
    loop = asyncio.get_running_loop()
    slow: list[socket.socket] = []
    try:
        for i in range(SLOW_CLIENTS):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i % 2:
                s.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            else:
                s.sendall(post("/v1/jobs", b'{"definitionKey": "faults.work"}', token)[:-10])
            s.setblocking(False)
            slow.append(s)
        stats = HttpStats()
        async with aiohttp.ClientSession() as session:
            t0 = time.monotonic()
            await asyncio.gather(
                *(
                    post_json(session, f"{base}/v1/jobs", job_body(i), token, stats, timeout=5)
                    for i in range(50)
                )
            )
            took = time.monotonic() - t0
        assert stats.statuses == {201: 50}, (dict(stats.statuses), dict(stats.errors))
        assert took < 5, f"50 normal requests took {took:.1f} s beside {SLOW_CLIENTS} slow ones"
        # every stalled connection is dropped (closed, or answered 408) within the limit
        t0 = time.monotonic()

        async def dropped(s: socket.socket) -> float:
            while True:
                try:
                    data = await loop.sock_recv(s, 4096)
                except OSError:
                    return time.monotonic() - t0
                if not data or data.startswith(b"HTTP/1.1 408"):
                    return time.monotonic() - t0

        waits = await asyncio.wait_for(
            asyncio.gather(*(dropped(s) for s in slow)), SLOW_CLIENT_LIMIT + 5
        )
        notes.append(f"{SLOW_CLIENTS} stalled clients dropped after <= {max(waits):.1f} s")
    finally:
        for s in slow:
            s.close()

    async with aiohttp.ClientSession() as session, session.get(f"{base}/readyz") as r:
        assert r.status == 200  # still serving
    api.signal(15)
    api.wait(15)
    statuses = [r.get("status") for r in api.log_records() if r.get("msg") == "request"]
    server_errors = sum(1 for s in statuses if isinstance(s, int) and s >= 500)
    report.http_5xx = server_errors
    report.note = "; ".join(notes) + f"; {len(statuses)} requests logged"
    assert server_errors == 0
