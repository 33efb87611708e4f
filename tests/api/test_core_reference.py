"""Every request of the core reference (`shared/reference/job-server.md`, our own `/v1` API) as
written there, with only a token added, its example ids replaced by real ones and a real clip
in place of `/path/to/video.mp4`; each answer carries the fields the reference documents, with
their documented meaning (rates as fractions)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from jobserver.config import Settings
from jobserver.registry import load_modules
from jobserver.scheduler.rescuer import Rescuer
from jobserver.worker.worker import Worker
from tests.api.conftest import Api
from tests.clips import make_clip
from tests.scheduler.helpers import insert_job
from tests.waiting import wait_for

# The video uploads, as written (`curl -F`): "Video Encoding Endpoints", the `encode.video@1`
# definition, and the "Complete Video Encoding Workflow" (the same fields as the definition's).
VIDEO_UPLOADS: list[dict[str, str]] = [
    {"format": "mp4", "quality": "1080p", "priority": "10"},
    {"quality": "1080p", "priority": "10"},
    {"quality": "1080p", "priority": "10"},
]

# The "Available Job Definitions" examples, verbatim (encode.video is uploaded: VIDEO_UPLOADS).
SUBMISSIONS: list[dict[str, Any]] = [
    {"definitionKey": "echo", "definitionVersion": 1, "params": {"message": "Hello World"}},
    {
        "definitionKey": "compute.math",
        "definitionVersion": 1,
        "params": {"operation": "fibonacci", "numbers": [35]},
    },
    {
        "definitionKey": "process.data",
        "definitionVersion": 1,
        "params": {"dataset": "sales-2024", "operation": "aggregate"},
    },
    {
        "definitionKey": "call.api",
        "definitionVersion": 1,
        "params": {"endpoint": "https://api.example.com/users", "method": "GET"},
    },
    {
        "definitionKey": "process.batch",
        "definitionVersion": 1,
        "params": {"items": ["item1", "item2", "item3"], "batchSize": 5},
    },
    {"definitionKey": "failing", "definitionVersion": 1, "params": {}},
    {  # "Start and Monitor a Job"
        "definitionKey": "compute.math",
        "definitionVersion": 1,
        "params": {"operation": "fibonacci", "numbers": [35]},
        "priority": 10,
    },
]

STATUSES = {"queued", "running", "succeeded", "failed", "cancelling", "cancelled"}
PERFORMANCE = {"successRate", "avgProcessingTime", "avgQueueTime", "retryRate"}


def _is_fraction(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and 0 <= value <= 1)


async def test_jobs_and_definitions_requests(api: Api) -> None:
    r = await api.call(
        "POST",
        "/v1/jobs",
        json={
            "definitionKey": "echo",
            "definitionVersion": 1,
            "params": {"message": "Hello"},
            "priority": 5,
            "maxAttempts": 3,
            "idempotencyKey": "unique-key-123",
        },
    )
    assert r.status == 201, r.body
    job_id = r.body["jobId"]
    for body in SUBMISSIONS:
        r = await api.call("POST", "/v1/jobs", json=body)
        assert r.status == 201, (body, r.body)
        assert r.body["jobId"]

    r = await api.call("GET", f"/v1/jobs/{job_id}")
    assert r.status == 200, r.body
    assert r.body["definitionKey"] == "echo" and r.body["status"] == "queued"

    for params in [
        None,
        {"status": "running", "definitionKey": "encode.video"},
        {"status": "running"},
        {"definitionKey": "encode.video"},
    ]:
        r = await api.call("GET", "/v1/jobs", params=params)
        assert r.status == 200, (params, r.body)
    r = await api.call("GET", "/v1/jobs", params={"definitionKey": "process.data"})
    assert [j["definitionKey"] for j in r.body["items"]] == ["process.data"]

    r = await api.call("GET", f"/v1/jobs/{job_id}/events")
    assert r.status == 200, r.body

    r = await api.call("POST", f"/v1/jobs/{job_id}/cancel")
    assert r.status in (200, 202), r.body
    r = await api.call("GET", f"/v1/jobs/{job_id}")
    assert r.body["status"] in ("cancelling", "cancelled")

    r = await api.call("GET", "/v1/definitions")
    assert r.status == 200, r.body
    # the reference shows {"definitions": [...]}; every list route here answers one envelope,
    # {"items", "nextCursor"} (tests/api/test_lists.py), so the list is under `items`
    keys = {d["key"] for d in r.body["items"]}
    assert {"echo", "failing", "compute.math", "process.data", "call.api", "process.batch"} <= keys
    for d in r.body["items"]:
        assert {
            "key",
            "version",
            "defaultMaxAttempts",
            "timeoutSeconds",
            "concurrencyLimit",
        } <= set(d)


async def test_dlq_requests(api: Api) -> None:
    dead = await insert_job(api.pool, status="running", attempt=2, max_attempts=2, lease_offset=-1)
    assert (await Rescuer(api.pool).run_once())["failed"] == 1
    r = await api.call("GET", "/v1/dlq", params={"limit": 50})
    assert r.status == 200 and [i["id"] for i in r.body["items"]] == [str(dead)], r.body
    r = await api.call("GET", f"/v1/dlq/{dead}")
    assert r.status == 200 and r.body["jobId"] == str(dead)
    r = await api.call(
        "POST",
        f"/v1/dlq/{dead}/retry",
        headers={"Content-Type": "application/json"},
        data='{"maxAttempts": 5}',
    )
    assert r.status == 201, r.body
    assert r.body["jobId"] != str(dead)


async def test_metrics_requests(api: Api) -> None:
    await insert_job(
        api.pool, status="succeeded", created_ago=700, started_ago=640, finished_ago=600
    )
    await insert_job(
        api.pool, status="failed", definition_key="failing", started_ago=300, finished_ago=200
    )
    await insert_job(api.pool, status="queued")

    r = await api.call("GET", "/v1/metrics")
    assert r.status == 200, r.body
    assert r.body["summary"]["total"] == 3
    assert set(r.body["summary"]["byStatus"]) >= STATUSES
    assert set(r.body["performance"]) >= PERFORMANCE
    assert r.body["performance"]["successRate"] == 0.5
    assert _is_fraction(r.body["performance"]["retryRate"])
    assert {"lastHour", "lastDay", "lastWeek"} <= set(r.body["throughput"])
    assert r.body["throughput"]["lastHour"] == 2

    r = await api.call("GET", "/v1/metrics/definitions")
    assert r.status == 200, r.body
    by_key = {d["definitionKey"]: d for d in r.body["definitions"]}
    echo = by_key["echo"]
    assert echo["definitionVersion"] == 1 and echo["total"] == 2
    assert set(echo["byStatus"]) >= STATUSES and echo["byStatus"]["succeeded"] == 1
    assert echo["successRate"] == 1.0 and by_key["failing"]["successRate"] == 0.0
    assert echo["avgProcessingTime"] is not None and echo["avgQueueTime"] is not None

    for params in [None, {"hours": 24}]:
        r = await api.call("GET", "/v1/metrics/throughput", params=params)
        assert r.status == 200, r.body
        data = r.body["data"]
        assert len(data) == 24 and all({"period", "completed", "failed"} <= set(d) for d in data)
        assert sum(d["completed"] for d in data) == 1 and sum(d["failed"] for d in data) == 1

    r = await api.call("GET", "/v1/metrics/performance")
    assert r.status == 200, r.body
    assert set(r.body) >= PERFORMANCE and r.body["successRate"] == 0.5
    assert _is_fraction(r.body["retryRate"])


async def test_video_requests(api: Api, settings: Settings, tmp_path: Path) -> None:
    path = await asyncio.to_thread(make_clip, tmp_path / "video.mp4")  # /path/to/video.mp4
    clip = await asyncio.to_thread(path.read_bytes)
    auth = {"Authorization": f"Bearer {api.tokens['manage']}"}
    created = []
    for fields in VIDEO_UPLOADS:
        form = aiohttp.FormData()
        form.add_field("video", clip, filename="video.mp4")
        for name, value in fields.items():
            form.add_field(name, value)
        async with api.client.post("/v1/videos/encode", data=form, headers=auth) as r:
            body = await r.json()
            assert r.status == 201, (fields, body)
        assert (body["status"], body["message"]) == ("queued", "Video encoding job created")
        assert re.fullmatch(r"\d+-video\.mp4", body["inputFile"]), body
        created.append(body)
    job_id = created[-1]["jobId"]

    r = await api.call("GET", f"/v1/videos/{job_id}/status")
    assert r.status == 200, r.body
    assert (r.body["jobId"], r.body["definitionKey"]) == (job_id, "encode.video")
    assert r.body["status"] in ("queued", "running", "succeeded")
    r = await api.call("GET", f"/v1/jobs/{job_id}/events")
    assert r.status == 200, r.body
    r = await api.call("GET", "/v1/jobs", params={"definitionKey": "encode.video"})
    assert {j["jobId"] for j in r.body["items"]} == {c["jobId"] for c in created}

    worker = Worker(replace(settings, poll_interval_ms=100), load_modules())
    await worker.start()
    try:

        async def done() -> dict[str, Any] | None:
            r = await api.call("GET", f"/v1/videos/{job_id}/status")
            return r.body if r.body["status"] in ("succeeded", "failed") else None

        status = await wait_for(done, within=120, step=0.2)
    finally:
        await worker.stop(grace=0)
    # "Response (when completed)"
    assert status["status"] == "succeeded", status
    name = created[-1]["inputFile"].removesuffix(".mp4") + "-1080p.mp4"
    assert (status["outputPath"], status["outputFilename"]) == (f"outputs/{name}", name)
    assert status["downloadUrl"] == f"/v1/videos/{job_id}/download"
    # curl -o encoded-video.mp4 http://localhost:3000/v1/videos/{jobId}/download
    async with api.client.get(status["downloadUrl"], headers=auth) as r:
        data = await r.read()
        assert r.status == 200 and r.headers["Content-Type"] == "video/mp4"
    assert len(data) == status["size"] and data[4:8] == b"ftyp"
