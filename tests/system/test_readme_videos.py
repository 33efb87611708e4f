"""The README's video walkthrough runs as written against a real API and worker process.

The `video` block makes a clip with ffmpeg, uploads it (the core reference's request with a
token), checks its status and events and has a non-video refused; once the worker (real
FFmpeg) has encoded it, the `video-later` block reads the status and downloads the file, whole
and one byte range. The blocks `cd` into a `mktemp -d` directory: TMPDIR points into the
test's own directory, where the downloaded files are then checked (a 1280x720 H.264 video of
2 s; the range is those 100 bytes of it).
"""

from __future__ import annotations

import asyncio
import glob
from pathlib import Path

import asyncpg

from tests.clips import describe
from tests.faults.helpers import Procs
from tests.system.test_readme_examples import answer, block, expected_statuses, prepare, run_blocks
from tests.waiting import wait_for


async def test_the_video_walkthrough_runs_as_written(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    token = await prepare(pool)
    procs = Procs(database_url)
    try:
        _, base = await procs.api()
        worker = procs.start("jobserver.cli.worker", name="worker")
        env = {"B": base, "TOKEN": token, "TMPDIR": str(tmp_path)}
        out, ran = await asyncio.to_thread(run_blocks, ("video",), env, "")
        assert [c.status for c in ran] == expected_statuses(block("video")), out
        uploads = [c for c in ran if c.url.endswith("/v1/videos/encode")]
        created, refused = uploads[0].body, uploads[1].body
        assert (created["status"], created["message"]) == ("queued", "Video encoding job created")
        assert created["inputFile"].endswith("-clip.mp4")
        assert refused["field"] == "video" and "not a video" in refused["error"]
        job_id = created["jobId"]

        async def encoded() -> bool:
            assert worker.alive(), worker.output()[-3000:]
            status = await pool.fetchval("SELECT status FROM jobs WHERE id = $1::uuid", job_id)
            return status in ("succeeded", "failed")

        await wait_for(encoded, within=120, step=0.2)
        out, later = await asyncio.to_thread(run_blocks, ("video-later",), env, "")
        assert [c.status for c in later] == expected_statuses(block("video-later")), out
    finally:
        procs.close()
    status = answer(later, "/status")
    assert status["jobId"] == job_id and status["status"] == "succeeded", status
    stem = created["inputFile"].removesuffix(".mp4")
    assert status["outputFilename"] == f"{stem}-720p.mp4"
    assert status["downloadUrl"] == f"/v1/videos/{job_id}/download"
    [encoded_file] = glob.glob(f"{tmp_path}/*/encoded-video.mp4")
    [part] = glob.glob(f"{tmp_path}/*/part.bin")
    whole = await asyncio.to_thread(Path(encoded_file).read_bytes)
    piece = await asyncio.to_thread(Path(part).read_bytes)
    assert len(whole) == status["size"]
    assert piece == whole[100:200]
    seen = await asyncio.to_thread(describe, Path(encoded_file))
    assert (seen["width"], seen["height"], seen["codec"]) == (1280, 720, "h264"), seen
    assert abs(seen["duration"] - 2.0) < 0.2, seen
