"""Typed views of the API's answers (dataclasses, snake_case), each keeping the JSON it was
read from in `raw`, so a field this version does not model is still at hand.

Reading is lenient: a field the answer lacks takes its empty value, so a client keeps working
against a server a version apart. Times are aware `datetime`s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "expired"})


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Job:
    """A job as GET /v1/jobs/{id} (or a list) answers it."""

    id: str
    status: str
    definition_key: str
    definition_version: int
    queue: str
    priority: int
    attempt: int
    max_attempts: int
    owner: str
    params: Any
    result: Any
    last_error: str | None
    progress: dict[str, Any] | None
    worker_id: str | None
    idempotency_key: str | None
    tags: list[str]
    event: str | None
    run_at: dt.datetime | None
    created_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    queue_position: int | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Job:
        progress = d.get("progress")
        return cls(
            id=str(d.get("id") or d.get("jobId") or ""),
            status=str(d.get("status") or ""),
            definition_key=str(d.get("definitionKey") or ""),
            definition_version=_int(d.get("definitionVersion")),
            queue=str(d.get("queue") or ""),
            priority=_int(d.get("priority")),
            attempt=_int(d.get("attempt")),
            max_attempts=_int(d.get("maxAttempts")),
            owner=str(d.get("owner") or ""),
            params=d.get("params"),
            result=d.get("result"),
            last_error=_str(d.get("lastError")),
            progress=progress if isinstance(progress, dict) else None,
            worker_id=_str(d.get("workerId")),
            idempotency_key=_str(d.get("idempotencyKey")),
            tags=list(d.get("tags") or []),
            event=_str(d.get("event")),
            run_at=_time(d.get("runAt")),
            created_at=_time(d.get("createdAt")),
            started_at=_time(d.get("startedAt")),
            finished_at=_time(d.get("finishedAt")),
            queue_position=d.get("queuePosition")
            if isinstance(d.get("queuePosition"), int)
            else None,
            raw=d,
        )

    @property
    def is_terminal(self) -> bool:
        """Succeeded, failed, cancelled or expired: the status is final."""
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def percent(self) -> float | None:
        """The latest progress report as a percentage, when the job gave a total."""
        p = (self.progress or {}).get("percent")
        return float(p) if isinstance(p, int | float) and not isinstance(p, bool) else None


@dataclass(frozen=True)
class Event:
    """One lifecycle event of a job (`created`, `claimed`, `progress`, `succeeded`...)."""

    id: int
    event: str
    at: dt.datetime | None
    worker_id: str | None
    attempt: int | None
    details: Any
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Event:
        attempt = d.get("attempt")
        return cls(
            id=_int(d.get("id")),
            event=str(d.get("event") or ""),
            at=_time(d.get("at")),
            worker_id=_str(d.get("workerId")),
            attempt=attempt if isinstance(attempt, int) else None,
            details=d.get("details"),
            raw=d,
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: its items and the cursor of the next page (None on the last)."""

    items: list[T]
    next_cursor: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def reader(cls, item: Callable[[dict[str, Any]], T]) -> Callable[[Any], Page[T]]:
        def read(d: Any) -> Page[T]:
            d = _obj(d)
            cursor = d.get("nextCursor")
            return cls([item(i) for i in d.get("items") or []], _str(cursor) or None, d)

        return read


@dataclass(frozen=True)
class BatchResult:
    """What POST /v1/jobs/batch answered: the ids in submission order, how many were new,
    and the indexes of the items that repeated a stored idempotency key."""

    job_ids: list[str]
    created: int
    existing: list[int]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BatchResult:
        return cls(
            [str(i) for i in d.get("jobIds") or []],
            _int(d.get("created")),
            list(d.get("existing") or []),
            d,
        )


@dataclass(frozen=True)
class DlqEntry:
    """A job that used up its attempts, with its attempt history."""

    id: str
    job_id: str
    definition_key: str
    definition_version: int
    queue: str
    owner: str
    params: Any
    attempts: int
    max_attempts: int
    last_error: str | None
    history: list[dict[str, Any]]
    failed_at: dt.datetime | None
    redriven_at: dt.datetime | None
    redriven_job_id: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DlqEntry:
        return cls(
            id=str(d.get("id") or ""),
            job_id=str(d.get("jobId") or ""),
            definition_key=str(d.get("definitionKey") or ""),
            definition_version=_int(d.get("definitionVersion")),
            queue=str(d.get("queue") or ""),
            owner=str(d.get("owner") or ""),
            params=d.get("params"),
            attempts=_int(d.get("attempts")),
            max_attempts=_int(d.get("maxAttempts")),
            last_error=_str(d.get("lastError")),
            history=list(d.get("history") or []),
            failed_at=_time(d.get("failedAt")),
            redriven_at=_time(d.get("redrivenAt")),
            redriven_job_id=_str(d.get("redrivenJobId")),
            raw=d,
        )


@dataclass(frozen=True)
class Redriven:
    """A redrive: the new job's id and the dead-letter entry it came from."""

    job_id: str
    redriven_from: str
    dlq: DlqEntry
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Redriven:
        return cls(
            str(d.get("jobId") or ""),
            str(d.get("redrivenFrom") or ""),
            DlqEntry.from_json(_obj(d.get("dlq"))),
            d,
        )


@dataclass(frozen=True)
class Queue:
    """A queue's health summary (GET /v1/queues, /v1/queues/{name}/health)."""

    name: str
    status: str
    counts: dict[str, int]
    paused: dict[str, Any] | None
    alerts: list[dict[str, Any]]
    runners: dict[str, int]
    metrics: dict[str, Any]
    oldest_waiting_since: dt.datetime | None
    stuck_jobs: list[dict[str, Any]]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Queue:
        paused = d.get("paused")
        return cls(
            name=str(d.get("name") or d.get("queue") or ""),
            status=str(d.get("status") or ""),
            counts=dict(_obj(d.get("counts"))),
            paused=paused if isinstance(paused, dict) else None,
            alerts=list(d.get("alerts") or []),
            runners=dict(_obj(d.get("runners"))),
            metrics=dict(_obj(d.get("metrics"))),
            oldest_waiting_since=_time(d.get("oldestWaitingSince")),
            stuck_jobs=list(d.get("stuckJobs") or []),
            raw=d,
        )


@dataclass(frozen=True)
class QueuePause:
    """The answer to a pause or resume: the queue's state and which live runners applied it."""

    queue: str
    paused: bool
    changed: bool
    reason: str | None
    acknowledged: list[str]
    not_answered: list[str]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> QueuePause:
        return cls(
            str(d.get("queue") or ""),
            bool(d.get("paused")),
            bool(d.get("changed")),
            _str(d.get("reason")),
            list(d.get("acknowledged") or []),
            list(d.get("notAnswered") or []),
            d,
        )


@dataclass(frozen=True)
class Runner:
    """A worker process as the runners table knows it."""

    id: str
    host: str
    pid: int
    status: str
    queues: list[str] | None
    definitions: list[str]
    max_concurrency: int
    running: int
    last_seen_at: dt.datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Runner:
        queues = d.get("queues")
        return cls(
            id=str(d.get("id") or ""),
            host=str(d.get("host") or ""),
            pid=_int(d.get("pid")),
            status=str(d.get("status") or ""),
            queues=list(queues) if isinstance(queues, list) else None,
            definitions=list(d.get("definitions") or []),
            max_concurrency=_int(d.get("maxConcurrency")),
            running=_int(d.get("running")),
            last_seen_at=_time(d.get("lastSeenAt")),
            raw=d,
        )


@dataclass(frozen=True)
class RunnerCommand:
    """A command's round trip to one runner (ping, shutdown): `answered` and the time `ms`."""

    runner_id: str
    command_id: str
    command: str
    answered: bool
    ms: float | None
    reply: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunnerCommand:
        ms = d.get("ms")
        reply = d.get("reply")
        return cls(
            str(d.get("runnerId") or ""),
            str(d.get("commandId") or ""),
            str(d.get("command") or ""),
            bool(d.get("answered")),
            float(ms) if isinstance(ms, int | float) else None,
            reply if isinstance(reply, dict) else None,
            d,
        )


@dataclass(frozen=True)
class JobUpdate:
    """The `data` of a `job` message of /v1/stream: a job's new status (and progress)."""

    id: str
    status: str
    queue: str | None
    definition_key: str | None
    definition_version: int | None
    progress: float | None
    attempt: int | None
    updated_at: dt.datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> JobUpdate:
        progress = d.get("progress")
        version = d.get("definitionVersion")
        attempt = d.get("attempt")
        return cls(
            id=str(d.get("id") or ""),
            status=str(d.get("status") or ""),
            queue=_str(d.get("queue")),
            definition_key=_str(d.get("definitionKey")),
            definition_version=version if isinstance(version, int) else None,
            progress=float(progress) if isinstance(progress, int | float) else None,
            attempt=attempt if isinstance(attempt, int) else None,
            updated_at=_time(d.get("updatedAt")),
            raw=d,
        )

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class StreamEvent:
    """One message of /v1/stream: `event` is `hello`, `job` (then `job` is set) or `resync`
    (the server lost notifications: re-read what you show); `id` is its resume cursor."""

    event: str
    data: Any
    id: str | None
    job: JobUpdate | None = None
