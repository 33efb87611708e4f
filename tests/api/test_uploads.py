"""Multipart uploads (jobserver.api.uploads) against a real aiohttp server and client: fields in
any order, the file on disk with its size and SHA-256, the cap, the idle limit, every bad form
refused with the field named, and the temp file gone afterwards whatever happened."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from jobserver.api.errors import error_middleware
from jobserver.api.schemas import VIDEO_ENCODE_FORM
from jobserver.api.uploads import MAX_FIELD_BYTES, FormSpec, receive_form
from jobserver.blobs.leftovers import SPOOL_PREFIX

SPEC = FormSpec(VIDEO_ENCODE_FORM, "video")
CAP = 3 * 1024 * 1024
IDLE = 1.0


class Server:
    def __init__(self, spool: Path) -> None:
        self.spool = spool
        self.seen: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        async with receive_form(
            request, SPEC, directory=str(self.spool), max_file_bytes=CAP, idle_timeout=IDLE
        ) as form:
            assert form.upload is not None
            data = form.upload.path.read_bytes()
            self.seen.append({"path": form.upload.path})
            return web.json_response(
                {
                    "fields": form.fields,
                    "filename": form.upload.filename,
                    "contentType": form.upload.content_type,
                    "size": form.upload.size,
                    "sha256": form.upload.sha256,
                    "actualSha256": hashlib.sha256(data).hexdigest(),
                    "inSpool": form.upload.path.parent == self.spool,
                    "spoolName": form.upload.path.name,
                }
            )


@pytest.fixture
async def upload(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Server]]:
    server = Server(tmp_path)
    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/up", server.handle)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, server
    finally:
        await client.close()
    assert not os.listdir(tmp_path), "a spooled upload was left behind"


def form(*parts: tuple[str, Any]) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    for name, value in parts:
        if isinstance(value, bytes):
            data.add_field(name, value, filename="clip.mp4", content_type="video/mp4")
        else:
            data.add_field(name, value)
    return data


async def post(client: TestClient, data: Any, **kw: Any) -> tuple[int, Any]:
    async with client.post("/up", data=data, **kw) as r:
        return r.status, await r.json()


async def test_fields_before_and_after_the_file_give_the_same_form(
    upload: tuple[TestClient, Server],
) -> None:
    client, server = upload
    video = os.urandom(2 * 1024 * 1024 + 17)  # several read and write batches, odd tail
    fields = [("format", "webm"), ("quality", "720p"), ("priority", "-7"), ("upscale", "true")]
    answers = []
    for parts in ([*fields, ("video", video)], [("video", video), *fields]):
        status, body = await post(client, form(*parts))
        assert status == 200, body
        answers.append(body)
    names = [a.pop("spoolName") for a in answers]  # a new name per upload
    assert answers[0] == answers[1] and names[0] != names[1]
    body = answers[0]
    assert body["fields"] == {"format": "webm", "quality": "720p", "priority": -7, "upscale": True}
    assert body["size"] == len(video)
    assert body["sha256"] == body["actualSha256"] == hashlib.sha256(video).hexdigest()
    assert (body["filename"], body["contentType"], body["inSpool"]) == (
        "clip.mp4",
        "video/mp4",
        True,
    )
    assert len(server.seen) == 2 and not any(s["path"].exists() for s in server.seen)
    # a name the pruner's leftover sweep knows as ours (jobserver.blobs.leftovers)
    assert all(n.startswith(SPOOL_PREFIX) for n in names)
    assert [uuid.UUID(n.removeprefix(SPOOL_PREFIX)) for n in names]


async def test_an_empty_file_and_no_fields(upload: tuple[TestClient, Server]) -> None:
    client, _ = upload
    status, body = await post(client, form(("video", b"")))
    assert status == 200, body
    assert (body["size"], body["fields"]) == (0, {})
    assert body["sha256"] == hashlib.sha256(b"").hexdigest()


async def test_a_file_part_sent_as_a_plain_field_is_the_file(
    upload: tuple[TestClient, Server],
) -> None:
    client, _ = upload
    data = aiohttp.FormData(default_to_multipart=True)
    data.add_field("video", "not a file part")  # curl -F 'video=<file' sends no filename
    data.add_field("format", "mkv")
    status, body = await post(client, data)
    assert status == 200, body
    assert (body["filename"], body["size"]) == ("", len("not a file part"))


@pytest.mark.parametrize(
    ("parts", "field", "says"),
    [
        ([("format", "avi")], "format", "must be one of"),
        ([("quality", "8k")], "quality", "must be one of"),
        ([("priority", "ten")], "priority", "must be an integer"),
        ([("priority", "5000")], "priority", "1000"),
        ([("priority", "1.5")], "priority", "must be an integer"),
        ([("upscale", "maybe")], "upscale", "true or false"),
        ([("idempotencyKey", "")], "idempotencyKey", ""),
        ([("idempotencyKey", "k" * 201)], "idempotencyKey", ""),
        ([("colour", "red")], "colour", "unknown field"),
        ([("format", "mp4"), ("format", "mp4")], "format", "more than once"),
        ([("format", "x" * (MAX_FIELD_BYTES + 1))], "format", f"longer than {MAX_FIELD_BYTES}"),
        ([("format", "mp4\x00")], "format", "NUL"),
    ],
)
async def test_bad_fields_are_422_naming_them(
    upload: tuple[TestClient, Server], parts: list[tuple[str, str]], field: str, says: str
) -> None:
    client, server = upload
    for order in ([*parts, ("video", b"x" * 1000)], [("video", b"x" * 1000), *parts]):
        status, body = await post(client, form(*order))
        assert (status, body["field"], body["code"]) == (422, field, "validation_error"), body
        assert says in body["error"], body
    assert server.seen == []


async def test_missing_or_repeated_file(upload: tuple[TestClient, Server]) -> None:
    client, _ = upload
    status, body = await post(client, form(("format", "mp4")))
    assert (status, body["field"]) == (422, "video"), body
    assert "missing" in body["error"]
    status, body = await post(client, form(("video", b"a"), ("video", b"b")))
    assert (status, body["field"]) == (422, "video"), body
    assert "more than once" in body["error"]


async def test_a_field_that_is_not_utf8(upload: tuple[TestClient, Server]) -> None:
    client, _ = upload
    data = aiohttp.MultipartWriter("form-data")
    data.append(b"\xff\xfe", {"Content-Type": "text/plain"}).set_content_disposition(
        "form-data", name="format"
    )
    data.append(b"x").set_content_disposition("form-data", name="video", filename="a.mp4")
    status, body = await post(client, data)
    assert (status, body["field"]) == (422, "format"), body
    assert "UTF-8" in body["error"]


async def test_not_multipart_is_415(upload: tuple[TestClient, Server]) -> None:
    client, _ = upload
    for kw in ({"json": {"video": "x"}}, {"data": b"video=x"}, {"data": "plain"}):
        async with client.post("/up", **kw) as r:
            body = await r.json()
            assert (r.status, body["code"]) == (415, "unsupported_media_type"), (kw, body)
            assert "multipart/form-data" in body["error"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n\r\n"),  # no boundary
        ("multipart/form-data; boundary=" + "b" * 71, b""),  # too long a boundary
        ("multipart/form-data; boundary=xyz", b"no boundary line here"),
        ("multipart/form-data; boundary=xyz", b""),
        (
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="video"; filename="a"\r\n\r\nabc',
        ),  # never closed
        (
            "multipart/form-data; boundary=xyz",
            b"--xyz\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--xyz--\r\n",
        ),  # a part without a name
    ],
)
async def test_malformed_bodies_are_400(
    upload: tuple[TestClient, Server], content_type: str, body: bytes
) -> None:
    client, _ = upload
    async with client.post("/up", data=body, headers={"Content-Type": content_type}) as r:
        answer = await r.json()
        assert (r.status, answer["code"]) == (400, "invalid_multipart"), answer


async def test_a_nested_multipart_part_is_400(upload: tuple[TestClient, Server]) -> None:
    client, _ = upload
    inner = aiohttp.MultipartWriter("mixed")
    inner.append(b"x")
    outer = aiohttp.MultipartWriter("form-data")
    part = outer.append(inner)
    part.set_content_disposition("form-data", name="video")
    async with client.post("/up", data=outer) as r:
        answer = await r.json()
        assert (r.status, answer["code"]) == (400, "invalid_multipart"), answer


async def test_a_file_past_the_cap_is_413_and_nothing_is_kept(
    upload: tuple[TestClient, Server],
) -> None:
    client, server = upload
    status, body = await post(client, form(("format", "mp4"), ("video", b"v" * CAP)))
    assert status == 200, body  # exactly the cap is fine
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: only counting can stop it
        nonlocal sent
        for _ in range(8):
            sent += 1024 * 1024
            yield b"v" * (1024 * 1024)

    data = aiohttp.FormData()
    data.add_field("video", chunks(), filename="big.mp4")
    status, body = await post(client, data)
    assert (status, body["code"], body["field"]) == (413, "body_too_large", "video"), body
    assert body["maxBytes"] == CAP and "VIDEO_MAX_UPLOAD_BYTES" in body["error"]
    assert len(server.seen) == 1


def _raw(port: int, head: bytes, body: bytes, read_for: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=read_for) as s:
        s.sendall(head + body)
        out = b""
        try:
            while b"\r\n\r\n" not in out or not out.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except TimeoutError:
            pass
        return out


async def test_a_declared_length_past_the_cap_is_413_before_reading(
    upload: tuple[TestClient, Server],
) -> None:
    client, server = upload
    port = client.port
    assert port is not None
    head = (
        "POST /up HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
        f"Content-Length: {10 * CAP}\r\n\r\n"
    ).encode()
    reply = await asyncio.to_thread(_raw, port, head, b"--xyz\r\n", 10)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:300]
    assert b'"field": "video"' in reply or b'"field":"video"' in reply
    assert server.seen == []


async def test_a_stalled_upload_is_408(upload: tuple[TestClient, Server]) -> None:
    client, server = upload
    port = client.port
    assert port is not None
    part = (
        b'--xyz\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\n\r\n'
        + b"v" * 5000
    )
    head = (
        b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = f"{len(part):x}\r\n".encode() + part + b"\r\n"  # then nothing more
    reply = await asyncio.to_thread(_raw, port, head, chunk, IDLE * 10)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:300]
    assert server.seen == []


async def test_a_client_gone_mid_upload_leaves_nothing_and_no_error(
    upload: tuple[TestClient, Server], caplog: pytest.LogCaptureFixture
) -> None:
    client, server = upload
    port = client.port
    assert port is not None
    part = (
        b'--xyz\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\n\r\n'
        + b"v" * 300_000
    )
    head = (
        b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
        b"Content-Length: 10000000\r\n\r\n"
    )

    def send_and_leave() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(head + part)

    with caplog.at_level("INFO", logger="jobserver.api"):
        await asyncio.to_thread(send_and_leave)
        status, body = await post(client, form(("video", b"after")))  # still serving
        assert status == 200, body
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    assert len(server.seen) == 1  # only the complete upload reached the handler's body


async def _raw_post(client: TestClient, body: bytes, boundary: str, piece: int) -> Any:
    """POST `body` over a plain socket `piece` bytes at a time (chunk edges everywhere)."""
    host, port = client.server.host, client.server.port
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST /up HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data;"
        f" boundary={boundary}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode())
    for i in range(0, len(body), piece):
        writer.write(body[i : i + piece])
        await writer.drain()
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("piece", [1, 3, 7, 64, 4099])
async def test_the_file_part_is_exact_whatever_the_chunk_edges(
    upload: tuple[TestClient, Server], piece: int
) -> None:
    """Bytes that look like the start of a boundary, at every split of the stream: the file
    is exactly what was sent and the field after it is read too."""
    client, _ = upload
    boundary = "b0und4ry"
    video = b"\r\n--b0und4rx" + os.urandom(5000) + b"\r\n--b0und" + b"\r\n" * 3 + b"\r"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=video; filename=a.mp4\r\n"
        f"Content-Type: video/mp4\r\n\r\n".encode()
        + video
        + f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=quality\r\n\r\n720p"
        f"\r\n--{boundary}--\r\n".encode()
    )
    status, raw = await _raw_post(client, body, boundary, piece)
    assert status == 200, raw
    answer = json.loads(raw)
    assert answer["size"] == len(video)
    assert answer["sha256"] == answer["actualSha256"] == hashlib.sha256(video).hexdigest()
    assert answer["fields"] == {"quality": "720p"}


@pytest.mark.parametrize("piece", [1, 5, 4096])
async def test_an_empty_file_part_and_a_body_cut_inside_the_file(
    upload: tuple[TestClient, Server], piece: int
) -> None:
    client, _ = upload
    boundary = "xyz"
    head = f"--{boundary}\r\nContent-Disposition: form-data; name=video; filename=a\r\n\r\n"
    empty = (head + f"\r\n--{boundary}--\r\n").encode()
    status, raw = await _raw_post(client, empty, boundary, piece)
    assert status == 200, raw
    assert json.loads(raw)["size"] == 0
    cut = head.encode() + b"some bytes and no closing boundary"
    status, raw = await _raw_post(client, cut, boundary, piece)
    assert status == 400 and b"invalid_multipart" in raw, raw
