"""Every API call the clients make, described once as data: method, path, query, body,
whether it is safe to repeat, and how to read the answer.

`Client` and `AsyncClient` differ only in how they send a `Call`; what each method asks of the
API (routes and shapes from jobserver/api/routes.py and schemas.py) lives here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from jobserver.client.models import (
    BatchResult,
    DlqEntry,
    Event,
    Job,
    Page,
    Queue,
    QueuePause,
    Redriven,
    Runner,
    RunnerCommand,
)

T = TypeVar("T")
Params = list[tuple[str, str | int | float | bool | None]]


def _none(_: Any) -> None:
    return None


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the reader of its answer (`body` None: no body is sent)."""

    method: str
    path: str
    read: Callable[[Any], T]
    params: Params = field(default_factory=list)
    body: Any = None
    idempotent: bool = False


@dataclass(frozen=True)
class Paged(Generic[T]):
    """A list route: `call(cursor)` is the request for the page after `cursor`."""

    call: Callable[[str | None], Call[Page[T]]]


def seg(value: str) -> str:
    """One path segment, escaped."""
    return quote(str(value), safe="")


def _query(**values: Any) -> Params:
    """Query parameters, skipping None; lists comma-joined, booleans as true/false."""
    out: Params = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out.append((name, "true" if value else "false"))
        elif isinstance(value, list | tuple | set | frozenset):
            if value:
                out.append((name, ",".join(str(v) for v in value)))
        elif isinstance(value, dt.datetime):
            out.append((name, value.isoformat()))
        else:
            out.append((name, str(value)))
    return out


def _paged(path: str, item: Callable[[dict[str, Any]], T], **filters: Any) -> Paged[T]:
    read = Page.reader(item)

    def call(cursor: str | None) -> Call[Page[T]]:
        return Call("GET", path, read, _query(**filters, cursor=cursor), idempotent=True)

    return Paged(call)


def _job(d: Any) -> Job:
    return Job.from_json(d)


# ------------------------------------------------------------------------------ jobs


def job_spec(
    definition_key: str,
    params: Any = None,
    *,
    version: int | None = None,
    queue: str | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    idempotency_key: str | None = None,
    run_at: dt.datetime | str | None = None,
    delay_seconds: float | None = None,
    expires_in: float | str | None = None,
    timeout_seconds: float | None = None,
    tags: Sequence[str] | None = None,
    event: str | None = None,
    name: str | None = None,
    depends_on: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A submission body (POST /v1/jobs, or one item of `submit_many`); `extra` adds fields
    by their API name (`retryDelays`, `rateLimit`, `onParentFailure`...)."""
    body: dict[str, Any] = {"definitionKey": definition_key}
    fields = {
        "params": params,
        "definitionVersion": version,
        "queue": queue,
        "priority": priority,
        "maxAttempts": max_attempts,
        "idempotencyKey": idempotency_key,
        "runAt": run_at.isoformat() if isinstance(run_at, dt.datetime) else run_at,
        "delaySeconds": delay_seconds,
        "expiresIn": expires_in,
        "timeoutSeconds": timeout_seconds,
        "tags": list(tags) if tags is not None else None,
        "event": event,
        "name": name,
        "dependsOn": list(depends_on) if depends_on is not None else None,
    }
    body.update({k: v for k, v in fields.items() if v is not None})
    body.update(extra or {})
    return body


def submit(spec: dict[str, Any]) -> Call[Job]:
    # a repeat with the same idempotencyKey answers the stored job: safe to send again
    return Call("POST", "/v1/jobs", _job, body=spec, idempotent="idempotencyKey" in spec)


def submit_many(specs: Iterable[Mapping[str, Any]]) -> Call[BatchResult]:
    items = [dict(s) for s in specs]
    keyed = bool(items) and all("idempotencyKey" in s for s in items)
    return Call(
        "POST", "/v1/jobs/batch", BatchResult.from_json, body={"jobs": items}, idempotent=keyed
    )


def get_job(job_id: str) -> Call[Job]:
    return Call("GET", f"/v1/jobs/{seg(job_id)}", _job, idempotent=True)


def cancel(job_id: str) -> Call[Job]:
    # cancelling twice is harmless (a cancelling job answers as it is)
    return Call("POST", f"/v1/jobs/{seg(job_id)}/cancel", _job, idempotent=True)


def retry(job_id: str, delay_seconds: float | None = None) -> Call[Job]:
    body = {} if delay_seconds is None else {"delaySeconds": delay_seconds}
    return Call("POST", f"/v1/jobs/{seg(job_id)}/retry", _job, body=body)


def list_jobs(
    *,
    status: str | Sequence[str] | None = None,
    queue: str | None = None,
    definition_key: str | None = None,
    tag: Sequence[str] | None = None,
    event: str | None = None,
    created_after: dt.datetime | str | None = None,
    created_before: dt.datetime | str | None = None,
    sort_by: str | None = None,
    sort_order: str | None = None,
    page_size: int | None = None,
) -> Paged[Job]:
    return _paged(
        "/v1/jobs",
        Job.from_json,
        status=[status] if isinstance(status, str) else status,
        queue=queue,
        definitionKey=definition_key,
        tag=tag,
        event=event,
        createdAfter=created_after,
        createdBefore=created_before,
        sortBy=sort_by,
        sortOrder=sort_order,
        limit=page_size,
    )


def events(job_id: str, page_size: int | None = None) -> Paged[Event]:
    return _paged(f"/v1/jobs/{seg(job_id)}/events", Event.from_json, limit=page_size)


# ------------------------------------------------------------------------------ DLQ


def list_dlq(
    *,
    definition_key: str | None = None,
    redriven: bool | None = None,
    page_size: int | None = None,
) -> Paged[DlqEntry]:
    return _paged(
        "/v1/dlq",
        DlqEntry.from_json,
        definitionKey=definition_key,
        redriven=redriven,
        limit=page_size,
    )


def get_dlq(entry_id: str) -> Call[DlqEntry]:
    return Call("GET", f"/v1/dlq/{seg(entry_id)}", DlqEntry.from_json, idempotent=True)


def redrive(entry_id: str, max_attempts: int | None = None) -> Call[Redriven]:
    body = {} if max_attempts is None else {"maxAttempts": max_attempts}
    return Call("POST", f"/v1/dlq/{seg(entry_id)}/retry", Redriven.from_json, body=body)


def discard_dlq(entry_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/dlq/{seg(entry_id)}", _none, idempotent=True)


# ------------------------------------------------------------------------------ queues


def list_queues(page_size: int | None = None) -> Paged[Queue]:
    return _paged("/v1/queues", Queue.from_json, limit=page_size)


def queue_health(name: str) -> Call[Queue]:
    return Call("GET", f"/v1/queues/{seg(name)}/health", Queue.from_json, idempotent=True)


def pause_queue(name: str, reason: str | None = None) -> Call[QueuePause]:
    body = {} if reason is None else {"reason": reason}
    path = f"/v1/queues/{seg(name)}/pause"
    return Call("POST", path, QueuePause.from_json, body=body, idempotent=True)


def resume_queue(name: str) -> Call[QueuePause]:
    path = f"/v1/queues/{seg(name)}/resume"
    return Call("POST", path, QueuePause.from_json, body={}, idempotent=True)


# ------------------------------------------------------------------------------ runners


def list_runners(
    *,
    status: str | Sequence[str] | None = None,
    queue: str | None = None,
    page_size: int | None = None,
) -> Paged[Runner]:
    return _paged(
        "/v1/runners",
        Runner.from_json,
        status=[status] if isinstance(status, str) else status,
        queue=queue,
        limit=page_size,
    )


def ping_runner(runner_id: str, timeout_ms: int | None = None) -> Call[RunnerCommand]:
    body = {} if timeout_ms is None else {"timeoutMs": timeout_ms}
    path = f"/v1/runners/{seg(runner_id)}/ping"
    return Call("POST", path, RunnerCommand.from_json, body=body, idempotent=True)


def shutdown_runner(
    runner_id: str, mode: str | None = None, timeout_ms: int | None = None
) -> Call[RunnerCommand]:
    body: dict[str, Any] = {}
    if mode is not None:
        body["mode"] = mode
    if timeout_ms is not None:
        body["timeoutMs"] = timeout_ms
    path = f"/v1/runners/{seg(runner_id)}/shutdown"
    return Call("POST", path, RunnerCommand.from_json, body=body, idempotent=True)


# ------------------------------------------------------------------------------ stream


def stream_params(
    *, queue: str | None = None, job_id: str | None = None, status: Sequence[str] | None = None
) -> Params:
    """The filters of GET /v1/stream."""
    return _query(queue=queue, jobId=job_id, status=status)
