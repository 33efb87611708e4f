"""`jobserver.client`: the Python client of the jobserver API (sync `Client`, asyncio
`AsyncClient`), its typed models and errors.

    from jobserver.client import Client, NotFound
    with Client() as c:                      # JOBSERVER_URL, JOBSERVER_TOKEN
        job = c.wait(c.submit("echo", {"message": "hi"}).id, timeout=30)

`enqueue` / `enqueue_many` (transactional enqueue on the caller's own database connection)
come from `jobserver.client.transactional`, imported only when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from jobserver.client.aio import AsyncClient
from jobserver.client.calls import job_spec
from jobserver.client.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    JobserverError,
    NetworkError,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
    ValidationError,
    WaitTimeout,
)
from jobserver.client.models import (
    BatchResult,
    DlqEntry,
    Event,
    Job,
    JobUpdate,
    Page,
    Queue,
    QueuePause,
    Redriven,
    Runner,
    RunnerCommand,
    StreamEvent,
)
from jobserver.client.retry import RetryPolicy
from jobserver.client.sync import Client

_TRANSACTIONAL = ("enqueue", "enqueue_many")


def __getattr__(name: str) -> Any:
    """`enqueue` and `enqueue_many`, from jobserver.client.transactional on first use (it
    pulls in database drivers a plain HTTP client does not need)."""
    if name in _TRANSACTIONAL:
        module = importlib.import_module("jobserver.client.transactional")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AsyncClient",
    "BadRequest",
    "BatchResult",
    "Client",
    "Conflict",
    "DlqEntry",
    "Event",
    "Forbidden",
    "Job",
    "JobUpdate",
    "JobserverError",
    "NetworkError",
    "NotFound",
    "Page",
    "Queue",
    "QueuePause",
    "RateLimited",
    "Redriven",
    "RetryPolicy",
    "Runner",
    "RunnerCommand",
    "ServerError",
    "StreamEvent",
    "Unauthorized",
    "Unavailable",
    "ValidationError",
    "WaitTimeout",
    "job_spec",
]
