"""`http.request` in a worker against real receivers on loopback (opened by the allowlist).

The receiver records what it gets (method, path, headers, body, arrival time) and answers as
each path is told: a list of answers played in order, the last one repeated. A raw asyncio
server stands in where aiohttp's own server would not do: a method its parser refuses, and a
connection cut before any answer (a network error).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from tests.worker.conftest import submit
from tests.worker.http_receiver import Answer, Receiver, attempt_count, exchanges, finished

SECRET = "Bearer s3cr3t-token-value"
OTHER_SECRET = "hush-hush-value"


@dataclass
class RawServer:
    """A bare HTTP/1.1 server: the first `cut` connections are closed before any answer;
    later requests get `200 ok`. Records each request line."""

    cut: int = 0
    lines: list[str] = field(default_factory=list)
    base: str = ""
    server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line = head.split(b"\r\n", 1)[0].decode()
        self.lines.append(line)
        length = 0
        for h in head.split(b"\r\n")[1:]:
            name, _, value = h.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await reader.readexactly(length)
        if len(self.lines) <= self.cut:
            writer.close()
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
            b"Connection: close\r\n\r\nok"
        )
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.base = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def _run(
    db: asyncpg.Pool, start_worker: Any, params: list[dict[str, Any]], **kw: Any
) -> list[uuid.UUID]:
    ids = await submit(db, "http.request", params, **kw)
    await start_worker()
    return ids


# -- success -----------------------------------------------------------------------------------


async def test_a_json_payload_and_a_text_body_are_sent_and_recorded(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver
) -> None:
    url = receiver.tell("/hook", Answer(201, '{"id": 7}', content_type="application/json"))
    payload = {"user": {"name": "Jöhn"}, "n": [1, 2.5, None]}
    a, b = await _run(
        db,
        start_worker,
        [
            {"url": url + "?token=abc", "method": "POST", "payload": payload},
            {"url": url, "method": "put", "body": "plain text", "headers": {"X-Trace": "t1"}},
        ],
    )
    ra, rb = await finished(db, a), await finished(db, b)
    assert ra["status"] == rb["status"] == "succeeded", (ra["last_error"], rb["last_error"])
    by_method = {s.method: s for s in receiver.at("/hook")}
    assert json.loads(by_method["POST"].body) == payload
    assert by_method["POST"].headers["Content-Type"] == "application/json"
    assert by_method["PUT"].body == b"plain text"
    assert by_method["PUT"].headers["X-Trace"] == "t1"
    assert by_method["PUT"].headers["Content-Type"].startswith("text/plain")

    result = ra["result"]
    assert result["request"]["method"] == "POST"
    assert result["request"]["url"] == url + "?***"  # the query is never recorded
    assert json.loads(result["request"]["body"]) == payload
    assert result["response"]["status"] == 201
    assert result["response"]["body"] == {"id": 7}  # JSON answers are parsed
    assert result["response"]["durationMs"] >= 0
    assert result["response"]["headers"]["Content-Type"].startswith("application/json")
    assert rb["result"]["request"]["method"] == "PUT"
    assert rb["result"]["request"]["body"] == "plain text"
    # the successful attempt's record is the result: no http_exchange event repeats it
    assert await exchanges(db, a) == []


@pytest.mark.parametrize(
    "method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PURGE"]
)
async def test_every_method_is_sent_as_given(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver, method: str
) -> None:
    [j] = await _run(db, start_worker, [{"url": receiver.tell("/m"), "method": method}])
    row = await finished(db, j)
    assert row["status"] == "succeeded", row["last_error"]
    assert [s.method for s in receiver.at("/m")] == [method]
    assert row["result"]["request"]["method"] == method


async def test_a_custom_token_method_reaches_the_server(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None
) -> None:
    async with RawServer() as raw:
        [j] = await _run(
            db, start_worker, [{"url": f"{raw.base}/x", "method": "frobnicate", "body": "b"}]
        )
        row = await finished(db, j)
    assert row["status"] == "succeeded", row["last_error"]
    assert raw.lines == ["FROBNICATE /x HTTP/1.1"]


@pytest.mark.parametrize(
    ("status", "expect", "ok"),
    [
        (201, 201, True),
        (204, [200, 204], True),
        (404, "4xx", True),
        (500, [500], True),
        (299, None, True),  # the default: 2xx
        (200, 201, False),  # unexpected, not retryable: fails for good
        (302, "2xx", False),  # a redirect without Location is an answer like any other
        (204, [200, 201], False),
    ],
)
async def test_expected_status_variants(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver, status: int, expect: Any, ok: bool
) -> None:
    params: dict[str, Any] = {"url": receiver.tell("/s", Answer(status, ""))}
    if expect is not None:
        params["expectedStatus"] = expect
    [j] = await _run(db, start_worker, [params])
    row = await finished(db, j)
    if ok:
        assert row["status"] == "succeeded", row["last_error"]
        assert row["result"]["response"]["status"] == status
    else:
        assert row["status"] == "failed" and row["attempt"] == 1
        assert f"http_status: HTTP {status} from GET" in row["last_error"]
        assert await attempt_count(db, j) == 1


# -- retries -----------------------------------------------------------------------------------


async def test_a_500_then_200_is_retried_and_succeeds(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver
) -> None:
    url = receiver.tell("/flaky", Answer(500, "down"), Answer(503, ""), Answer(200, "up"))
    [j] = await _run(db, start_worker, [{"url": url}])
    row = await finished(db, j)
    assert row["status"] == "succeeded" and row["attempt"] == 3, row["last_error"]
    assert row["result"]["response"]["body"] == "up"
    recorded = [(e["attempt"], e["response"]["status"]) for e in await exchanges(db, j)]
    assert recorded == [(1, 500), (2, 503)]  # the failed attempts; the third is the result
    errors = [
        r["error"]
        for r in await db.fetch(
            "SELECT error FROM job_attempts WHERE job_id = $1 ORDER BY attempt", j
        )
    ]
    assert errors[0] is not None and "HTTP 500 from GET" in errors[0] and "down" in errors[0]


async def test_429_with_retry_after_waits_that_long(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver
) -> None:
    """The test back-off is 0.2 s: only the Retry-After can make the retry wait ~1 s."""
    url = receiver.tell("/busy", Answer(429, "slow down", {"Retry-After": "1"}), Answer(200))
    [j] = await _run(db, start_worker, [{"url": url}])
    row = await finished(db, j)
    assert row["status"] == "succeeded" and row["attempt"] == 2, row["last_error"]
    first, second = receiver.at("/busy")
    assert second.at - first.at >= 0.9
    assert second.at - first.at < 5.0
    error = await db.fetchval("SELECT error FROM job_attempts WHERE job_id = $1 AND attempt = 1", j)
    assert "HTTP 429" in error and "retry after 1 s" in error


async def test_408_without_retry_after_uses_the_back_off(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver
) -> None:
    url = receiver.tell("/t", Answer(408, ""), Answer(200))
    [j] = await _run(db, start_worker, [{"url": url}])
    row = await finished(db, j)
    assert row["status"] == "succeeded" and row["attempt"] == 2


async def test_a_404_fails_at_once_without_retry(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver
) -> None:
    url = receiver.tell("/gone", Answer(404, "no such thing"))
    [j] = await _run(db, start_worker, [{"url": url}])
    row = await finished(db, j)
    assert row["status"] == "failed" and row["attempt"] == 1
    assert row["max_attempts"] == 5 and await attempt_count(db, j) == 1
    assert "http_status: HTTP 404 from GET" in row["last_error"]
    assert len(receiver.at("/gone")) == 1
    [ev] = await exchanges(db, j)
    assert ev["response"]["status"] == 404 and ev["response"]["body"] == "no such thing"


async def test_a_network_error_is_retried(
    db: asyncpg.Pool, start_worker: Any, allow_loopback: None
) -> None:
    """POST: aiohttp itself resends an idempotent request once on a dropped connection, so a
    GET would hide the first cut; this one is the worker's retry."""
    async with RawServer(cut=1) as raw:
        [j] = await _run(db, start_worker, [{"url": f"{raw.base}/n", "method": "POST"}])
        row = await finished(db, j)
    assert row["status"] == "succeeded" and row["attempt"] == 2, row["last_error"]
    assert len(raw.lines) == 2
    [first] = await exchanges(db, j)
    assert "error" in first and "response" not in first
    assert row["result"]["response"]["status"] == 200
    error = await db.fetchval("SELECT error FROM job_attempts WHERE job_id = $1 AND attempt = 1", j)
    assert error.startswith("RequestFailed: POST ") and "failed" in error


# -- secrets and sizes -------------------------------------------------------------------------


async def test_secret_headers_are_sent_but_never_shown(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver
) -> None:
    headers = {
        "Authorization": SECRET,
        "X-Api-Key": "key-123456",
        "X-Custom-Secret": OTHER_SECRET,
        "X-Plain": "visible",
    }
    ok_url = receiver.tell("/echo", Answer(200, "ECHO", {"Set-Cookie": "session=cookie-secret-1"}))
    bad_url = receiver.tell("/echo-bad", Answer(400, "ECHO"))
    common = {"headers": headers, "secretHeaders": ["x-custom-secret"]}
    ok, bad = await _run(db, start_worker, [{"url": ok_url, **common}, {"url": bad_url, **common}])
    rok, rbad = await finished(db, ok), await finished(db, bad)
    assert rok["status"] == "succeeded" and rbad["status"] == "failed"
    # the server did receive them
    [got] = receiver.at("/echo")
    assert got.headers["Authorization"] == SECRET
    assert got.headers["X-Custom-Secret"] == OTHER_SECRET
    assert got.headers["X-Api-Key"] == "key-123456"
    # ... and nothing recorded shows them
    shown = rok["result"]["request"]["headers"]
    assert shown["Authorization"] == shown["X-Custom-Secret"] == shown["X-Api-Key"] == "***"
    assert shown["X-Plain"] == "visible"
    assert rok["result"]["response"]["headers"]["Set-Cookie"] == "***"
    stored = json.dumps(
        [rok["result"], rbad["last_error"], await exchanges(db, ok), await exchanges(db, bad)]
    )
    stored += " ".join(
        str(r["error"]) + str(r["traceback"])
        for r in await db.fetch("SELECT error, traceback FROM job_attempts")
    )
    for secret in (SECRET, "s3cr3t-token-value", OTHER_SECRET, "key-123456", "cookie-secret-1"):
        assert secret not in stored, secret
    assert "HTTP 400" in rbad["last_error"]


async def test_a_large_answer_is_truncated_in_the_record_and_one_over_the_cap_fails(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver
) -> None:
    big = receiver.tell("/big", Answer(200, "a" * 100_000))
    huge = receiver.tell("/huge", Answer(200, "b" * (2 * 1024 * 1024)))  # over the 1 MiB cap
    a, b = await _run(db, start_worker, [{"url": big}, {"url": huge}])
    ra, rb = await finished(db, a), await finished(db, b)
    assert ra["status"] == "succeeded", ra["last_error"]
    response = ra["result"]["response"]
    assert response["body"] == "a" * 65536
    assert response["bodyBytes"] == 100_000 and response["bodyTruncated"] is True
    assert rb["status"] == "failed" and rb["attempt"] == 1
    assert "response_too_large" in rb["last_error"]
    [ev] = await exchanges(db, b)
    assert "response_too_large" in ev["error"]


async def test_call_api_old_example_still_works(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver
) -> None:
    url = receiver.tell("/legacy", Answer(200, '{"a": 1}', content_type="application/json"))
    [j] = await submit(db, "call.api", [{"endpoint": url, "method": "GET"}])
    await start_worker()
    row = await finished(db, j)
    assert row["status"] == "succeeded", row["last_error"]
    assert row["result"] == {"status": 200, "contentType": "application/json", "body": {"a": 1}}


async def test_a_slow_answer_times_out_and_is_retried(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver
) -> None:
    url = receiver.tell("/slow", Answer(200, "late", delay=30), Answer(200, "in time"))
    [j] = await submit(db, "http.request", [{"url": url, "timeout": 0.3}], max_attempts=2)
    await start_worker()
    row = await finished(db, j)
    assert row["status"] == "succeeded", row["last_error"]
    assert row["attempt"] == 2 and len(receiver.at("/slow")) == 2
    [first] = await exchanges(db, j)
    assert first["attempt"] == 1 and "Timeout" in first["error"]
    assert row["result"]["response"]["body"] == "in time"
