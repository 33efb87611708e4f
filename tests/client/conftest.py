"""Client tests: the real API app (tests/api/conftest.py) on loopback with real PostgreSQL,
and in-process workers running the shipped definitions. The async client talks to it from the
test's event loop; the sync client and the CLI run in a thread or a child process while the
loop serves them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from jobserver.config import Settings
from jobserver.registry import Registry, load_modules
from jobserver.worker.worker import Worker
from tests.api.conftest import TEST_DEFS, Api, api  # noqa: F401 (the fixture, for the tests here)
from tests.waiting import wait_for

FAST = {
    "lease_duration_seconds": 5.0,
    "heartbeat_interval_seconds": 0.5,
    "poll_interval_ms": 100,
    "cancel_check_interval_ms": 100,
    "shutdown_grace_seconds": 1.0,
}
StartWorker = Callable[..., Awaitable[Worker]]


def base_url(api: Api) -> str:  # noqa: F811
    return str(api.client.make_url("")).rstrip("/")


def registry() -> Registry:
    """The shipped definitions and the API tests' own (echo@2, the latest echo, among them)."""
    out = Registry()
    for d in [*load_modules().all(), *TEST_DEFS.all()]:
        out.add(d)
    return out


@pytest.fixture
async def start_worker(settings: Settings) -> AsyncIterator[StartWorker]:
    started: list[Worker] = []

    async def start(worker_id: str = "w-client", **kw: Any) -> Worker:
        w = Worker(replace(settings, worker_id=worker_id, **FAST), registry(), **kw)
        started.append(w)
        await w.start()
        await wait_for(lambda: _listening(w), within=10)
        return w

    yield start
    for w in started:
        await w.stop(grace=0)


async def _listening(w: Worker) -> bool:
    return w._listener is not None and w._listener.connected.is_set()


# A job that runs for a while, reporting progress after each item and stopping when cancelled.
SLOW = {"items": list(range(40)), "batchSize": 1, "delayMs": 100}
