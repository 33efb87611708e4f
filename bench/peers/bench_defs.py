"""Definitions the benchmarks run: `bench.noop@1` does nothing but record its start latency.

A job whose params carry "t" (epoch ms taken just before its enqueue call) appends
"tag seq latency_ms" to the file named by BENCH_LATENCY_FILE, as the peer adapters do.
"""

from __future__ import annotations

import os
from typing import Any

import peerlib

from jobserver.registry import definition

_sink = peerlib.LatencySink(os.environ.get("BENCH_LATENCY_FILE", ""))


@definition("bench.noop", 1, default_max_attempts=3, timeout_seconds=60)
async def noop(params: Any, ctx: Any) -> None:
    """Do nothing (record start latency when asked)."""
    if params:
        _sink.record(params)
