"""A 200 MB upload to a real API process streams to disk: the process' RSS stays flat.

The API runs as `jobserver.cli.api` (a subprocess, as in production) with a 300 MB
VIDEO_MAX_UPLOAD_BYTES and its own VIDEO_UPLOAD_DIR. The client sends 200 MB of zeros as the
`video` part (generated as it goes, never whole in this process either) while a sampler reads
the API's VmRSS (psutil) and the size of the spooled file. The zeros are no video: once on
disk, FFmpeg's probe refuses them (422 naming `video`), so nothing is stored. What is checked:
the RSS growth during the upload stays under a bound far below the upload's size, the file
grew on disk while it arrived, and the spool directory is empty afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import psutil

from tests.faults.helpers import Procs
from tests.system.test_readme_examples import prepare

MB = 1024 * 1024
UPLOAD = 200 * MB
GROWTH_BOUND = 48 * MB  # buffers of a few MiB; 200 MB held in memory would blow far past it


async def zeros(total: int, chunk: int = MB) -> AsyncIterator[bytes]:
    block = b"\0" * chunk
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        sent += n
        yield block[:n]


def spooled_bytes(spool: Path) -> int:
    total = 0
    for name in os.listdir(spool):
        with contextlib.suppress(FileNotFoundError):  # removed between listing and stat
            total += (spool / name).stat().st_size
    return total


async def test_a_200_mb_upload_keeps_the_api_rss_flat(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    token = await prepare(pool)
    spool = tmp_path / "spool"
    spool.mkdir()
    procs = Procs(database_url)
    try:
        api, base = await procs.api(
            env={"VIDEO_MAX_UPLOAD_BYTES": str(300 * MB), "VIDEO_UPLOAD_DIR": str(spool)}
        )
        process = psutil.Process(api.pid)
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as session:
            # warm up: one small upload through the whole path (imports, pools, FFmpeg)
            form = aiohttp.FormData()
            form.add_field("video", b"warm-up, not a video", filename="w.mp4")
            async with session.post(f"{base}/v1/videos/encode", data=form, headers=headers) as r:
                assert r.status == 422, await r.text()
            baseline = process.memory_info().rss
            peak_rss, peak_spool, samples = baseline, 0, 0
            stop = asyncio.Event()

            async def sample() -> None:
                nonlocal peak_rss, peak_spool, samples
                while not stop.is_set():
                    peak_rss = max(peak_rss, process.memory_info().rss)
                    peak_spool = max(peak_spool, await asyncio.to_thread(spooled_bytes, spool))
                    samples += 1
                    await asyncio.sleep(0.01)

            sampler = asyncio.create_task(sample())
            form = aiohttp.FormData()
            form.add_field("format", "mp4")
            form.add_field("video", zeros(UPLOAD), filename="big.mp4", content_type="video/mp4")
            try:
                async with session.post(
                    f"{base}/v1/videos/encode",
                    data=form,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=600),
                ) as r:
                    body = await r.json()
            finally:
                stop.set()
                await sampler
        assert (r.status, body["field"]) == (422, "video"), body
        assert "not a video" in body["error"]
    finally:
        procs.close()
    growth = peak_rss - baseline
    assert samples >= 10, samples  # the sampler watched the upload, not just its end
    # the upload went to disk as it arrived (the sampler may miss the last few MiB)
    assert peak_spool > UPLOAD // 2, (peak_spool, UPLOAD)
    assert growth < GROWTH_BOUND, f"RSS grew {growth / MB:.1f} MB during a 200 MB upload"
    assert os.listdir(spool) == []
    assert await pool.fetchval("SELECT count(*) FROM blobs") == 0
