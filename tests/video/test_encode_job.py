"""`encode.video@1` end to end in a real worker: an input in the blob store (PostgreSQL large
objects), real FFmpeg, the output stored and read back; a non-video or missing input fails for
good; a cancel and a timeout stop FFmpeg; the temporary directory never outlives the run."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from jobserver.blobs import BlobStore
from jobserver.video.binaries import Binaries
from jobserver.video.probe import probe
from tests.video.conftest import Clips, ffmpeg_children, streams
from tests.worker.conftest import attempts, job, status_is, submit, wait_for
from tests.worker.test_cancel import cancel

OWNER = "system:anonymous"  # the owner of jobs `submit` inserts


def _work_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("jobserver-encode-*"))


@pytest.fixture
def no_leftovers() -> Any:
    """No encode's temporary directory and no FFmpeg is left once the test is done."""
    before = _work_dirs()
    yield
    assert _work_dirs() <= before
    assert ffmpeg_children() == []


async def _input(db: asyncpg.Pool, path: Path, name: str = "1234567890-video.mp4") -> str:
    blob = await BlobStore(db).put_file(path, owner=OWNER, filename=name, content_type="video/mp4")
    return str(blob.id)


async def _finished(db: asyncpg.Pool, jid: uuid.UUID, within: float = 60) -> asyncpg.Record:
    await wait_for(lambda: status_is(db, jid, "succeeded", "failed", "cancelled"), within=within)
    return await job(db, jid)


async def test_encodes_an_upload_into_an_output_file(
    db: asyncpg.Pool, start_worker, clips: Clips, system: Binaries, tmp_path: Path, no_leftovers
) -> None:
    blob_id = await _input(db, clips.landscape)
    [jid] = await submit(
        db,
        "encode.video",
        [{"input": {"blobId": blob_id, "filename": "1234567890-video.mp4"}, "quality": "720p"}],
    )
    await start_worker()
    row = await _finished(db, jid)
    assert row["status"] == "succeeded", row["last_error"]
    result = row["result"]
    out = result["output"]
    assert out["filename"] == "1234567890-video-720p.mp4"
    assert out["contentType"] == "video/mp4" and out["size"] > 0
    assert (result["width"], result["height"]) == (1280, 720)
    assert result["format"] == "mp4" and result["quality"] == "720p"
    assert result["durationSeconds"] == pytest.approx(2.0, abs=0.15)
    assert result["encodeSeconds"] > 0
    assert result["input"]["width"] == 1920 and result["input"]["hasAudio"] is True
    # the stored output is the file FFmpeg wrote: read it back and decode it elsewhere
    store = BlobStore(db)
    saved = await store.get(uuid.UUID(out["blobId"]))
    assert saved is not None and saved.job_id == jid and saved.role == "output"
    assert saved.size == out["size"]
    copy = await store.to_file(saved, tmp_path / "copy.mp4")
    found = streams(system, copy)
    assert (found["video"]["width"], found["video"]["height"]) == (1280, 720)
    assert found["video"]["codec_name"] == "h264" and found["audio"]["codec_name"] == "aac"
    assert (await probe(copy, binaries=system)).duration_seconds == pytest.approx(2.0, abs=0.15)
    # progress as percent of the input's duration, up to 100
    assert row["progress"]["percent"] == 100.0 and row["progress"]["total"] == 100
    percents = [
        r["details"]["percent"]
        for r in await db.fetch(
            "SELECT details FROM job_events WHERE job_id = $1 AND event = 'progress' ORDER BY id",
            jid,
        )
    ]
    assert percents and percents[-1] == 100.0 and percents == sorted(percents)


@pytest.mark.parametrize(
    ("clip", "code"),
    [("text", "not_a_video: "), ("truncated", "not_a_video: not a media file FFmpeg can read")],
)
async def test_a_non_video_fails_without_a_retry(
    db: asyncpg.Pool, start_worker, clips: Clips, clip: str, code: str, no_leftovers
) -> None:
    blob_id = await _input(db, getattr(clips, clip), "notes.mp4")
    [jid] = await submit(db, "encode.video", [{"input": {"blobId": blob_id}}])
    assert (await job(db, jid))["max_attempts"] == 2
    await start_worker()
    row = await _finished(db, jid)
    assert row["status"] == "failed" and code in row["last_error"], row["last_error"]
    assert len(await attempts(db, jid)) == 1  # a PermanentError: the second attempt is not used


async def test_a_missing_input_fails_without_a_retry(
    db: asyncpg.Pool, start_worker, no_leftovers
) -> None:
    [jid] = await submit(db, "encode.video", [{"input": {"blobId": str(uuid.uuid4())}}])
    await start_worker()
    row = await _finished(db, jid)
    assert row["status"] == "failed" and "input_not_found: input.blobId" in row["last_error"]
    assert len(await attempts(db, jid)) == 1


async def _encoding(db: asyncpg.Pool, jid: uuid.UUID) -> bool:
    """FFmpeg runs for the job (its first progress report after 0 is stored)."""
    progress = (await job(db, jid))["progress"]
    return bool(progress and progress.get("percent", 0) > 0 and ffmpeg_children())


SLOW = {"quality": "1080p", "upscale": True}  # 30 s of 320x240 made 1080p: seconds of work


async def test_cancel_stops_ffmpeg(
    db: asyncpg.Pool, start_worker, clips: Clips, no_leftovers
) -> None:
    blob_id = await _input(db, clips.long)
    [jid] = await submit(db, "encode.video", [{"input": {"blobId": blob_id}, **SLOW}])
    await start_worker()
    await wait_for(lambda: _encoding(db, jid), within=60)
    pids = [p.pid for p in ffmpeg_children()]
    assert await cancel(db, jid) == "cancelling"
    row = await _finished(db, jid, within=30)
    assert row["status"] == "cancelled"
    await wait_for(lambda: _none_of(pids), within=10)


async def test_the_jobs_timeout_stops_ffmpeg(
    db: asyncpg.Pool, start_worker, clips: Clips, no_leftovers
) -> None:
    blob_id = await _input(db, clips.long)
    [jid] = await submit(
        db,
        "encode.video",
        [{"input": {"blobId": blob_id}, **SLOW}],
        timeout_seconds=5,
        max_attempts=1,
    )
    await start_worker()
    row = await _finished(db, jid)
    assert row["status"] == "failed"
    [run] = await attempts(db, jid)
    assert run["outcome"] == "timed_out"
    # FFmpeg was encoding when the time was up (a report past 0 %, not the end) ...
    percents = [
        r["details"]["percent"]
        for r in await db.fetch(
            "SELECT details FROM job_events WHERE job_id = $1 AND event = 'progress'", jid
        )
    ]
    assert percents and 0 < max(percents) < 100, percents
    # ... and it is gone: killed and reaped before the attempt ended
    assert ffmpeg_children() == []


async def _none_of(pids: list[int]) -> bool:
    import psutil

    return not any(psutil.pid_exists(p) for p in pids)
