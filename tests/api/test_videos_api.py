"""The video routes against the real app, PostgreSQL, blob store, FFmpeg and a real worker.

Upload a 2 s testsrc clip -> an encode.video job with its input attached -> the worker
encodes it -> status -> download (whole, ranges, HEAD, If-Range). Bad uploads: not a video,
missing or bad fields, over the cap, not multipart, each a 4xx naming the field with nothing
stored. Idempotent repeats store no second file. Another owner sees nothing (404).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from jobserver.auth import create_token
from jobserver.config import Settings
from jobserver.registry import load_modules
from jobserver.worker.worker import Worker
from tests.api.conftest import Api
from tests.clips import describe, make_clip
from tests.scheduler.helpers import insert_job
from tests.waiting import wait_for

CAP = 2 * 1024 * 1024  # VIDEO_MAX_UPLOAD_BYTES in these tests
FAST_WORKER = {
    "lease_duration_seconds": 10.0,
    "heartbeat_interval_seconds": 0.5,
    "poll_interval_ms": 100,
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 2 s 320x240 H.264/AAC mp4."""
    return make_clip(tmp_path_factory.mktemp("clips") / "video.mp4", size="320x240").read_bytes()


@pytest.fixture(scope="module")
def other_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_clip(tmp_path_factory.mktemp("clips") / "other.mp4", size="160x120").read_bytes()


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    d = tmp_path / "spool"
    d.mkdir()
    return d


@pytest.fixture(params=["lo", "dir"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs with large objects and with BLOB_DIR."""
    return str(request.param)


@pytest.fixture
def blob_root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def settings(database_url: str, spool: Path, backend: str, blob_root: Path) -> Settings:
    """The api fixture's settings: a small upload cap, uploads spooled where the test looks."""
    return Settings(
        database_url=database_url,
        worker_id="test-worker",
        video_max_upload_bytes=CAP,
        video_upload_dir=str(spool),
        blob_dir=str(blob_root) if backend == "dir" else "",
    )


async def large_objects(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM pg_largeobject_metadata")
    return count


def files_under(root: Path) -> list[Path]:
    """Every file below root, temporary names included."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def nothing_kept(api: Api, spool: Path, blob_root: Path, los_before: int) -> None:
    """No row, no job, no spool file, no blob file (temporary or not), no large object."""
    assert await blob_rows(api.pool) == [] and await api.job_count() == 0
    assert os.listdir(spool) == []
    assert files_under(blob_root) == []
    assert await large_objects(api.pool) == los_before


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Worker]:
    w = Worker(replace(settings, **FAST_WORKER), load_modules())
    await w.start()
    try:
        yield w
    finally:
        await w.stop(grace=0)


def video_form(video: bytes | None, filename: str = "video.mp4", **fields: Any) -> aiohttp.FormData:
    # names as curl and browsers send them (aiohttp would percent-encode a space)
    form = aiohttp.FormData(default_to_multipart=True, quote_fields=False)
    for name, value in fields.items():
        form.add_field(name, str(value))
    if video is not None:
        form.add_field("video", video, filename=filename, content_type="video/mp4")
    return form


async def upload(
    api: Api, video: bytes | None, token: str = "plain", filename: str = "video.mp4", **fields: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {api.tokens.get(token, token)}"}
    form = video_form(video, filename, **fields)
    async with api.client.post("/v1/videos/encode", data=form, headers=headers) as r:
        body = await r.json()
        assert r.status != 500, body
        return r.status, body


async def get(
    api: Api, path: str, token: str = "plain", headers: dict[str, str] | None = None
) -> tuple[int, Any, bytes]:
    hdrs = {"Authorization": f"Bearer {api.tokens.get(token, token)}", **(headers or {})}
    async with api.client.get(path, headers=hdrs) as r:
        raw = await r.read()
        assert r.status != 500, raw[:500]
        return r.status, r.headers, raw


async def blob_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM blobs ORDER BY created_at")


async def finished(api: Api, job_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        r = await api.call("GET", f"/v1/videos/{job_id}/status", token="plain")
        assert r.status == 200, r.body
        return r.body if r.body["status"] in ("succeeded", "failed") else None

    status: dict[str, Any] = await wait_for(done, within=120, step=0.2)
    return status


async def test_upload_encode_status_and_download(
    api: Api, worker: Worker, clip: bytes, spool: Path, tmp_path: Path
) -> None:
    video = clip
    status, created = await upload(
        api, video, format="mp4", quality="720p", priority=5, filename="my clip.mp4"
    )
    assert status == 201, created
    assert set(created) == {"jobId", "status", "message", "inputFile"}
    assert (created["status"], created["message"]) == ("queued", "Video encoding job created")
    millis, _, name = created["inputFile"].partition("-")
    assert millis.isdigit() and len(millis) == 13 and name == "my clip.mp4", created
    job_id = created["jobId"]

    row = await api.pool.fetchrow("SELECT * FROM jobs WHERE id = $1", uuid.UUID(job_id))
    assert (row["definition_key"], row["owner"], row["priority"]) == ("encode.video", "alice", 5)
    [blob] = await blob_rows(api.pool)
    assert row["params"] == {
        "input": {"blobId": str(blob["id"]), "filename": created["inputFile"]},
        "format": "mp4",
        "quality": "720p",
        "upscale": False,
    }
    assert (blob["job_id"], blob["role"], blob["owner"]) == (row["id"], "input", "alice")
    assert (blob["size"], blob["sha256"]) == (len(video), hashlib.sha256(video).hexdigest())
    assert os.listdir(spool) == []  # the spooled upload is gone

    done = await finished(api, job_id)
    assert done["status"] == "succeeded", done
    assert done["outputFilename"] == created["inputFile"].removesuffix(".mp4") + "-720p.mp4"
    assert done["outputPath"] == f"outputs/{done['outputFilename']}"
    assert done["downloadUrl"] == f"/v1/videos/{job_id}/download"
    assert (done["progress"], done["error"], done["format"], done["quality"]) == (
        100.0,
        None,
        "mp4",
        "720p",
    )
    assert done["contentType"] == "video/mp4" and done["size"] > 1000
    assert done["startedAt"] and done["finishedAt"] and done["attempt"] == 1

    r = await api.call("GET", f"/v1/jobs/{job_id}/events", token="plain")
    assert r.status == 200
    events = [e["event"] for e in r.body["items"]]
    assert events[0] == "created" and "succeeded" in events, events

    status, headers, whole = await get(api, done["downloadUrl"])
    assert status == 200
    size = len(whole)
    assert size == done["size"] == int(headers["Content-Length"])
    assert headers["Content-Type"] == "video/mp4"
    assert headers["Accept-Ranges"] == "bytes"
    etag = headers["ETag"]
    assert etag == f'"{hashlib.sha256(whole).hexdigest()}"'
    assert headers["Content-Disposition"] == f'attachment; filename="{done["outputFilename"]}"'
    out = tmp_path / "out.mp4"
    out.write_bytes(whole)
    seen = describe(out)
    assert (seen["width"], seen["height"], seen["codec"]) == (320, 240, "h264")  # never upscaled
    assert abs(seen["duration"] - 2.0) < 0.2, seen

    # -- ranges ----------------------------------------------------------------------------
    url = done["downloadUrl"]
    status, headers, part = await get(api, url, headers={"Range": "bytes=100-199"})
    assert status == 206 and part == whole[100:200] and len(part) == 100
    assert headers["Content-Range"] == f"bytes 100-199/{size}"
    assert headers["Content-Length"] == "100"
    for header, expected in (
        (f"bytes={size - 10}-", whole[-10:]),
        ("bytes=-100", whole[-100:]),
        ("bytes=0-", whole),
        (f"bytes=0-{size * 2}", whole),
        ("bytes=0-0", whole[:1]),
    ):
        status, headers, part = await get(api, url, headers={"Range": header})
        assert (status, part) == (206, expected), header
    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 10}", "bytes=-0"):
        status, headers, raw = await get(api, url, headers={"Range": header})
        assert status == 416, header
        assert headers["Content-Range"] == f"bytes */{size}"
        assert b"range_not_satisfiable" in raw
    for header in ("bytes=0-1,5-6", "bytes=5-3", "lines=1-2", "bytes=abc"):
        status, headers, part = await get(api, url, headers={"Range": header})
        assert (status, part) == (200, whole), header  # several or invalid: the whole file
        assert "Content-Range" not in headers
    status, _, part = await get(api, url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert (status, part) == (206, whole[:10])
    for other in ('"0000"', f"W/{etag}", "Wed, 21 Oct 2015 07:28:00 GMT"):
        status, _, part = await get(api, url, headers={"Range": "bytes=0-9", "If-Range": other})
        assert (status, part) == (200, whole), other

    # -- HEAD: the headers alone --------------------------------------------------------------
    auth = {"Authorization": f"Bearer {api.tokens['plain']}"}
    async with api.client.head(url, headers=auth) as r:
        assert r.status == 200 and await r.read() == b""
        assert (r.headers["Content-Length"], r.headers["ETag"]) == (str(size), etag)
    async with api.client.head(url, headers={**auth, "Range": "bytes=10-19"}) as r:
        assert (r.status, r.headers["Content-Range"]) == (206, f"bytes 10-19/{size}")

    # -- who sees it ------------------------------------------------------------------------
    for path in (f"/v1/videos/{job_id}/status", url):
        status, _, raw = await get(api, path, token="other")
        assert status == 404 and b"not_found" in raw, path
        status, _, _ = await get(api, path, token="view")
        assert status == 200, path
    async with api.client.head(
        url, headers={"Authorization": f"Bearer {api.tokens['other']}"}
    ) as r:
        assert r.status == 404
    status, _, _ = await get(api, url, token="nope")
    assert status == 401


async def test_a_video_job_not_finished_is_409_on_download(api: Api, clip: bytes) -> None:
    status, created = await upload(api, clip)
    assert status == 201, created
    r = await api.call("GET", f"/v1/videos/{created['jobId']}/download", token="plain")
    assert r.status == 409, r.body
    assert (r.body["code"], r.body["status"]) == ("invalid_state", "queued")
    assert "queued" in r.body["error"]
    r = await api.call("GET", f"/v1/videos/{created['jobId']}/status", token="plain")
    assert r.status == 200
    body = r.body
    assert (body["status"], body["progress"], body["outputFilename"], body["downloadUrl"]) == (
        "queued",
        None,
        None,
        None,
    )
    assert (body["format"], body["quality"], body["inputFile"]) == (
        "mp4",
        "1080p",
        created["inputFile"],
    )


async def test_a_failed_video_job_shows_its_error(api: Api) -> None:
    job_id = await insert_job(api.pool, status="failed", definition_key="encode.video")
    await api.pool.execute(
        "UPDATE jobs SET last_error = 'boom', owner = 'alice' WHERE id = $1", job_id
    )
    r = await api.call("GET", f"/v1/videos/{job_id}/status", token="plain")
    assert r.status == 200, r.body
    assert (r.body["status"], r.body["error"], r.body["downloadUrl"]) == ("failed", "boom", None)
    r = await api.call("GET", f"/v1/videos/{job_id}/download", token="plain")
    assert (r.status, r.body["status"]) == (409, "failed")


async def test_other_jobs_are_not_videos(api: Api) -> None:
    job = await api.submit(token="plain")
    for suffix in ("status", "download"):
        r = await api.call("GET", f"/v1/videos/{job['id']}/{suffix}", token="plain")
        assert (r.status, r.body["code"]) == (404, "not_found"), r.body
        r = await api.call("GET", f"/v1/videos/{uuid.uuid4()}/{suffix}", token="plain")
        assert r.status == 404
        r = await api.call("GET", f"/v1/videos/not-a-uuid/{suffix}", token="plain")
        assert (r.status, r.body["field"]) == (422, "jobId")


async def test_a_non_video_is_422_naming_video_with_the_reason(
    api: Api, spool: Path, blob_root: Path
) -> None:
    los = await large_objects(api.pool)
    for junk in (b"just some text, not a video\n" * 100, os.urandom(50_000)):
        status, body = await upload(api, junk, filename="notes.mp4")
        assert (status, body["field"], body["code"]) == (422, "video", "validation_error"), body
        assert body["error"].startswith("video: not a video FFmpeg can encode: "), body
    # the large object written while it arrived was rolled back; the spool file is gone
    await nothing_kept(api, spool, blob_root, los)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"format": "avi"}, "format"),
        ({"quality": "480p"}, "quality"),
        ({"priority": "high"}, "priority"),
        ({"priority": "1001"}, "priority"),
        ({"upscale": "sometimes"}, "upscale"),
        ({"idempotencyKey": ""}, "idempotencyKey"),
        ({"definitionKey": "echo"}, "definitionKey"),
    ],
)
async def test_bad_fields_are_422_naming_them(
    api: Api, clip: bytes, fields: dict[str, str], field: str
) -> None:
    status, body = await upload(api, clip, **fields)
    assert (status, body["field"]) == (422, field), body
    assert await blob_rows(api.pool) == [] and await api.job_count() == 0


async def test_missing_video_and_not_multipart(api: Api) -> None:
    status, body = await upload(api, None, format="mp4")
    assert (status, body["field"]) == (422, "video"), body
    r = await api.call(
        "POST", "/v1/videos/encode", token="plain", json={"video": "x", "format": "mp4"}
    )
    assert (r.status, r.body["code"]) == (415, "unsupported_media_type"), r.body
    r = await api.call(
        "POST",
        "/v1/videos/encode",
        token="plain",
        data=b"--x\r\n",
        headers={"Content-Type": "multipart/form-data"},
    )
    assert (r.status, r.body["code"]) == (400, "invalid_multipart"), r.body
    r = await api.call("POST", "/v1/videos/encode", token=None)
    assert r.status == 401
    assert await blob_rows(api.pool) == [] and await api.job_count() == 0


async def test_a_priority_above_the_plain_bound_is_403(api: Api, clip: bytes) -> None:
    status, body = await upload(api, clip, priority=1000)
    assert (status, body["field"]) == (403, "priority"), body
    assert await blob_rows(api.pool) == []
    status, body = await upload(api, clip, token="manage", priority=1000)
    assert status == 201, body


async def test_over_the_cap_is_413_and_nothing_is_stored(
    api: Api, spool: Path, blob_root: Path, clip: bytes
) -> None:
    los = await large_objects(api.pool)
    status, body = await upload(api, b"\0" * (CAP + 1))
    assert (status, body["code"], body["field"]) == (413, "body_too_large", "video"), body
    assert body["maxBytes"] == CAP
    await nothing_kept(api, spool, blob_root, los)
    status, body = await upload(api, clip)  # the API still takes the next one
    assert status == 201, body


async def test_the_same_key_answers_the_first_job_and_stores_no_second_file(
    api: Api, clip: bytes, other_clip: bytes, spool: Path, blob_root: Path, backend: str
) -> None:
    video = clip
    status, first = await upload(api, video, idempotencyKey="k-1", quality="720p")
    assert status == 201, first
    los = await large_objects(api.pool)
    status, again = await upload(api, video, idempotencyKey="k-1", quality="720p")
    assert status == 200, again
    assert again["jobId"] == first["jobId"] and again["inputFile"] == first["inputFile"]
    assert len(await blob_rows(api.pool)) == 1 and await api.job_count() == 1
    # the repeat's spool (and, with large objects, what it wrote while arriving) is gone
    assert os.listdir(spool) == [] and await large_objects(api.pool) == los
    assert len(files_under(blob_root)) == (1 if backend == "dir" else 0)

    for changed, fields in (
        (video, {"quality": "1080p"}),  # another field
        (other_clip, {"quality": "720p"}),  # another file
    ):
        status, body = await upload(api, changed, idempotencyKey="k-1", **fields)
        assert (status, body["code"], body["field"]) == (
            409,
            "idempotency_conflict",
            "idempotencyKey",
        ), body
    # keys are per owner: bob's k-1 is his own job
    status, bobs = await upload(api, video, token="other", idempotencyKey="k-1", quality="720p")
    assert status == 201 and bobs["jobId"] != first["jobId"]
    assert len(await blob_rows(api.pool)) == 2 and await api.job_count() == 2


async def test_an_owner_past_its_queued_quota_is_429_and_its_file_is_gone(
    api: Api, clip: bytes
) -> None:
    api.tokens["quota"] = await create_token(api.pool, "quota", [], "carol", max_queued=1)
    status, body = await upload(api, clip, token="quota")
    assert status == 201, body
    status, body = await upload(api, clip, token="quota")
    assert (status, body["code"]) == (429, "quota_exceeded"), body
    assert len(await blob_rows(api.pool)) == 1 and await api.job_count() == 1


async def test_the_routes_are_documented(api: Api) -> None:
    r = await api.call("GET", "/openapi.json", token=None)
    paths = r.body["paths"]
    upload_op = paths["/v1/videos/encode"]["post"]
    content = upload_op["requestBody"]["content"]
    assert list(content) == ["multipart/form-data"]
    form = content["multipart/form-data"]["schema"]
    assert form["properties"]["video"] == {**form["properties"]["video"], "format": "binary"}
    assert form["required"] == ["video"]
    assert {"201", "200", "413", "415", "422", "429"} <= set(upload_op["responses"])
    download = paths["/v1/videos/{jobId}/download"]["get"]
    assert {"200", "206", "404", "409", "416"} <= set(download["responses"])
    assert list(download["responses"]["200"]["content"]) == ["video/*"]
    status_op = paths["/v1/videos/{jobId}/status"]["get"]
    assert (
        "outputFilename"
        in status_op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    )
    # the other routes keep their JSON bodies
    assert list(paths["/v1/jobs"]["post"]["requestBody"]["content"]) == ["application/json"]


async def test_a_client_gone_mid_upload_keeps_nothing(
    api: Api, spool: Path, blob_root: Path
) -> None:
    """Half a file part, then the connection closes: the spool file (under BLOB_DIR, or in
    VIDEO_UPLOAD_DIR beside the large object being written) goes, the large object rolls
    back, no row."""
    los = await large_objects(api.pool)
    host, port = api.client.server.host, api.client.server.port
    head = "--xyz\r\nContent-Disposition: form-data; name=video; filename=a.mp4\r\n\r\n"
    _, writer = await asyncio.open_connection(host, port)
    writer.write(
        (
            f"POST /v1/videos/encode HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {api.tokens['plain']}\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\n"
            f"Content-Length: {CAP}\r\n\r\n{head}"
        ).encode()
        + os.urandom(CAP // 2)
    )
    await writer.drain()

    async def spooling() -> bool | None:
        return True if os.listdir(spool) or files_under(blob_root) else None

    await wait_for(spooling, within=30, step=0.05)  # the upload was being received
    writer.close()

    async def gone() -> bool | None:
        clean = not os.listdir(spool) and not files_under(blob_root)
        return True if clean and await large_objects(api.pool) == los else None

    await wait_for(gone, within=30, step=0.05)
    await nothing_kept(api, spool, blob_root, los)
