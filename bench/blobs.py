"""Blob store throughput: write and read MB/s of one big blob through `BlobStore`, per backend.

Runs on its own throwaway cluster with the peers' settings (fsync and synchronous_commit on,
shared_buffers 256MB) and prints one line per case, best of `--repeat` (3) runs:

- lo write/read at the shipped piece sizes (WRITE_PIECE, READ_PIECE and READ_BATCH pieces
  per round trip, in jobserver/blobs/backends.py), with lz4 compression of large object
  pages when the server has it
- `--sweep`: also other piece sizes, and pglz (the server default) instead of lz4
- dir write/read (BLOB_DIR on a temp directory of this machine, fsync'd)

Usage: `python bench/blobs.py [--mb 200] [--repeat 3] [--sweep] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jobserver.blobs import BlobStore, backends
from jobserver.config import Settings
from jobserver.db import migrate
from jobserver.db.pool import create_pool
from jobserver.testing.cluster import LocalCluster

MiB = 1024 * 1024
SETTINGS = {"shared_buffers": "256MB", "fsync": "on", "synchronous_commit": "on"}


async def _source(total: int, chunk: int = MiB) -> AsyncIterator[bytes]:
    """`total` bytes of incompressible data, one fresh 1 MiB object per chunk (as a network
    read would hand them over)."""
    block = os.urandom(chunk)
    for i in range(total // chunk):
        yield block[i % 251 :] + block[: i % 251]


async def _case(store: BlobStore, total: int, repeat: int) -> dict[str, float]:
    best_w = best_r = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        blob = await store.put_stream(_source(total), owner="bench", filename="big.bin")
        best_w = max(best_w, total / (time.perf_counter() - started) / 1e6)
        started = time.perf_counter()
        n = 0
        async for chunk in store.read(blob):
            n += len(chunk)
        assert n == total
        best_r = max(best_r, total / (time.perf_counter() - started) / 1e6)
        await store.delete(blob.id)
    return {"write_mb_s": round(best_w, 1), "read_mb_s": round(best_r, 1)}


async def run(mb: int, repeat: int, sweep: bool) -> list[dict[str, Any]]:
    total = mb * MiB
    cluster = LocalCluster(fast=False, settings=SETTINGS).start()
    results: list[dict[str, Any]] = []
    try:
        url = cluster.url()
        await migrate.upgrade_async(url)
        pool = await create_pool(url, Settings(), max_size=4)
        try:
            shipped = (backends.WRITE_PIECE, backends.READ_PIECE)
            cases: list[tuple[str, int, int, bool | None]] = [("lo", *shipped, None)]
            if sweep:
                for piece in (128 * 1024, 512 * 1024, MiB, 4 * MiB):
                    cases.append(("lo", piece, piece, None))
                cases.append(("lo", *shipped, False))  # pglz, the server default
            for name, write_piece, read_piece, lz4 in cases:
                backends.WRITE_PIECE, backends.READ_PIECE = write_piece, read_piece
                store = BlobStore(pool)
                if lz4 is not None:
                    store._lo._lz4 = lz4
                figures = await _case(store, total, repeat)
                results.append(
                    {
                        "backend": name,
                        "write_piece_kib": write_piece // 1024,
                        "read_piece_kib": read_piece // 1024,
                        "read_batch": backends.READ_BATCH,
                        "lz4": store._lo._lz4,
                        **figures,
                    }
                )
                print(json.dumps(results[-1]), flush=True)
            backends.WRITE_PIECE, backends.READ_PIECE = shipped
            with tempfile.TemporaryDirectory(prefix="blob-bench-") as d:
                figures = await _case(BlobStore(pool, directory=d), total, repeat)
                results.append({"backend": "dir", **figures})
                print(json.dumps(results[-1]), flush=True)
        finally:
            await pool.close()
    finally:
        cluster.stop()
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=200, help="blob size in MiB (200)")
    p.add_argument("--repeat", type=int, default=3, help="runs per case, best kept (3)")
    p.add_argument("--sweep", action="store_true", help="also other piece sizes and pglz")
    p.add_argument("--out", help="write the results as JSON to this file")
    args = p.parse_args()
    results = asyncio.run(run(args.mb, args.repeat, args.sweep))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"blobs": results, "mb": args.mb}, f, indent=2)


if __name__ == "__main__":
    main()
