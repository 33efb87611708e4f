"""Upload and download MB/s of a large video through the API on loopback (target >= 200 each).

Runs alone: `.venv/bin/python bench/video_io.py [--mb 220] [--rounds 3] [--blob-dir DIR]
[--out FILE]`. It starts a throwaway PostgreSQL cluster (fsync on), migrates it, registers the
definitions, starts `jobserver.cli.api` as a subprocess on a free port, and makes a video of
about `--mb` MB with FFmpeg (raw 1080p frames in Matroska: FFmpeg writes it at disk speed and
probes it as the video it is). Then, best of `--rounds` each:

- upload: `POST /v1/videos/encode` with the file as the multipart `video` part, streamed from
  disk by the client; timed from the first byte sent to the 201, so it covers the whole path
  (received and hashed into a spool file while the large object is written, or into the
  blob's temporary name under BLOB_DIR; probed by FFmpeg; committed; the job inserted with it
  attached). No worker runs: the job stays queued.
- receive: the same upload with a file of the same size that is no video (zeros): streamed
  to disk, hashed and refused by the probe (422), nothing stored. With BLOB_DIR that is the
  API's own part of an upload; with large objects it includes writing the zeros to the large
  object as they arrive (rolled back after the probe), so it is bound by that write too;
- raw large object write: the same video written with `lo_put` in one transaction (256 KiB,
  1 MiB and 4 MiB pieces) on the same cluster, no HTTP: the large object backend's ceiling
  here, which bounds an upload to it (the API writes about 1 MiB per `lo_put`);
- download: `GET /v1/videos/{jobId}/download` of a 200 MB+ output, read to the end and thrown
  away. Encoding a 200 MB video would take minutes and is not what is measured, so the bench
  marks the first upload's job succeeded with its stored input as its output (a result row,
  written here with SQL), which the route then serves like any encoded file.

Reported: MB/s (MB = 10^6 bytes) of each round and the best (upload, receive, download), the
API's peak RSS, and the blob backend (`large objects`, or the directory given with
--blob-dir). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/

from benchlib import wait_http

from jobserver.auth import create_token
from jobserver.db import migrate
from jobserver.db.definitions import definition_upsert
from jobserver.db.pool import connect
from jobserver.registry import load_modules
from jobserver.testing.cluster import LocalCluster, free_port

MB = 1_000_000
FRAME = 1920 * 1080 * 3 // 2  # one yuv420p 1080p frame
SETTINGS = {"shared_buffers": "256MB", "fsync": "on", "synchronous_commit": "on"}


def log(msg: str) -> None:
    print(f"[video_io {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ffmpeg() -> str:
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def make_video(path: Path, megabytes: int) -> Path:
    frames = max(2, -(-megabytes * MB // FRAME))
    subprocess.run(
        [
            ffmpeg(),
            "-v",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=25",
            "-frames:v",
            str(frames),
            "-c:v",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
        timeout=600,
    )
    return path


def rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def spawn_api(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "jobserver.cli.api", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(argv, env=env, cwd=ROOT)


async def upload(
    s: aiohttp.ClientSession, base: str, token: str, video: Path, expect: int = 201
) -> tuple[float, Any]:
    """One upload, timed to its answer; the job id (None when refused, as expected)."""
    with video.open("rb") as f:  # aiohttp reads it in a thread and sends its length, as curl
        form = aiohttp.FormData()
        form.add_field("quality", "720p")
        form.add_field("video", f, filename=video.name, content_type="video/x-matroska")
        t0 = time.perf_counter()
        async with s.post(
            f"{base}/v1/videos/encode", data=form, headers={"Authorization": f"Bearer {token}"}
        ) as r:
            body = await r.json()
            took = time.perf_counter() - t0
            if r.status != expect:
                raise RuntimeError(f"upload answered {r.status}: {body}")
    return took, body.get("jobId")


async def download(
    s: aiohttp.ClientSession, base: str, token: str, job_id: str
) -> tuple[float, int]:
    t0 = time.perf_counter()
    got = 0
    async with s.get(
        f"{base}/v1/videos/{job_id}/download", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        if r.status != 200:
            raise RuntimeError(f"download answered {r.status}: {await r.text()}")
        async for chunk in r.content.iter_chunked(1 << 20):
            got += len(chunk)
    return time.perf_counter() - t0, got


async def raw_lo_write(url: str, video: Path, piece: int) -> float:
    """The ceiling of the large object backend here: the video's bytes written with lo_put
    in pieces of `piece` bytes, one transaction (lz4 when the server has it), as the store
    does, with no HTTP and no hashing; seconds. The large object is rolled back."""
    conn = await asyncpg.connect(url)
    try:
        lz4 = await conn.fetchval(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        tx = conn.transaction()
        await tx.start()
        if lz4:
            await conn.execute("SET LOCAL default_toast_compression = 'lz4'")
        with video.open("rb") as f:  # in the page cache: read at memory speed
            t0 = time.perf_counter()
            oid = await conn.fetchval("SELECT lo_create(0)")
            offset = 0
            while block := f.read(piece):
                await conn.execute("SELECT lo_put($1, $2, $3)", oid, offset, block)
                offset += len(block)
            took = time.perf_counter() - t0
        await tx.rollback()
        return took
    finally:
        await conn.close()


async def mark_encoded(url: str, job_id: str) -> None:
    """The bench's shortcut: the job succeeded, its stored input standing in as its output."""
    conn = await asyncpg.connect(url)
    try:
        blob = await conn.fetchrow(
            "SELECT id, filename, size, content_type FROM blobs WHERE job_id = $1::uuid", job_id
        )
        assert blob is not None, "the upload stored no blob"
        output = {
            "blobId": str(blob["id"]),
            "filename": blob["filename"],
            "size": blob["size"],
            "contentType": blob["content_type"],
        }
        await conn.execute(
            "UPDATE jobs SET status = 'succeeded', started_at = now(), finished_at = now(),"
            " attempt = 1, result = $2::jsonb WHERE id = $1::uuid",
            job_id,
            json.dumps({"output": output}),
        )
    finally:
        await conn.close()


async def run(a: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="jobserver-video-io-"))
    cluster = LocalCluster(fast=False, settings=SETTINGS).start()
    api: subprocess.Popen[bytes] | None = None
    try:
        video = make_video(work / "big.mkv", a.mb)
        size = video.stat().st_size
        log(f"video: {size / MB:.0f} MB")
        junk = work / "junk.mkv"
        with junk.open("wb") as f:
            f.truncate(size)  # zeros: no video
        url = cluster.url()
        await migrate.upgrade_async(url)
        conn = await connect(url)
        try:
            for d in load_modules().all():
                await definition_upsert(conn, d.metadata())
            token = await create_token(conn, "bench", ["manage_jobs"], "bench")
        finally:
            await conn.close()
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "LOG_LEVEL": "WARNING",
            "VIDEO_MAX_UPLOAD_BYTES": str(4 * size),
            "VIDEO_UPLOAD_DIR": str(work),
            "BLOB_MAX_BYTES": str(4 * size),
        }
        if a.blob_dir:
            env["BLOB_DIR"] = a.blob_dir
        api = spawn_api(env, port)
        base = f"http://127.0.0.1:{port}"
        await wait_http(f"{base}/healthz")
        raw: dict[str, float] = {}
        for piece in (256 * 1024, 1 << 20, 4 << 20):
            took = await raw_lo_write(url, video, piece)
            raw[f"{piece // 1024} KiB"] = round(size / MB / took, 1)
            log(f"raw lo_put loop, {piece // 1024} KiB pieces: {raw[f'{piece // 1024} KiB']} MB/s")
        ups: list[float] = []
        receives: list[float] = []
        downs: list[float] = []
        peak = 0
        timeout = aiohttp.ClientTimeout(total=900)
        async with aiohttp.ClientSession(timeout=timeout) as s:
            first = None
            for i in range(a.rounds):
                took, job_id = await upload(s, base, token, video)
                first = first or job_id
                peak = max(peak, rss(api.pid))
                ups.append(size / MB / took)
                log(f"upload {i + 1}: {ups[-1]:.0f} MB/s ({took:.2f} s)")
            for i in range(a.rounds):
                took, _ = await upload(s, base, token, junk, expect=422)
                peak = max(peak, rss(api.pid))
                receives.append(size / MB / took)
                log(f"receive {i + 1}: {receives[-1]:.0f} MB/s ({took:.2f} s)")
            assert first is not None
            await mark_encoded(url, first)
            for i in range(a.rounds):
                took, got = await download(s, base, token, first)
                if got != size:
                    raise RuntimeError(f"downloaded {got} bytes of {size}")
                peak = max(peak, rss(api.pid))
                downs.append(size / MB / took)
                log(f"download {i + 1}: {downs[-1]:.0f} MB/s ({took:.2f} s)")
        return {
            "file_mb": round(size / MB, 1),
            "blob_backend": f"directory {a.blob_dir}" if a.blob_dir else "large objects",
            "upload_mb_s": [round(x, 1) for x in ups],
            "receive_mb_s": [round(x, 1) for x in receives],
            "download_mb_s": [round(x, 1) for x in downs],
            "best_upload_mb_s": round(max(ups), 1),
            "best_receive_mb_s": round(max(receives), 1),
            "best_download_mb_s": round(max(downs), 1),
            "target_mb_s": 200,
            "raw_lo_write_mb_s": raw,
            "api_peak_rss_mb": round(peak / 1024 / 1024, 1),
        }
    finally:
        if api is not None and api.poll() is None:
            api.send_signal(signal.SIGTERM)
            try:
                api.wait(30)
            except subprocess.TimeoutExpired:
                api.kill()
                api.wait(10)
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=220, help="size of the video (MB)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--blob-dir", default="", help="store blobs in this directory (BLOB_DIR)")
    ap.add_argument("--out", default="", help="also write the JSON here")
    a = ap.parse_args()
    res = asyncio.run(run(a))
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
