"""The context a job's templated params are rendered against, and its sources."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jobserver.sources.spec import SourceError, SourceSpec, parse_sources

RESERVED_ROOTS = frozenset({"params", "job", "schedule", "parents"})
USE_SOURCES = "useSources"
SOURCES = "sources"

# Every key `job` has, so that a path under it is checked at submission.
JOB_KEYS = ("id", "attempt", "maxAttempts", "queue", "event", "tags", "createdAt")


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class RunInfo:
    """What a run knows about its job (`job.*`) and the schedule that fired it (`schedule.*`)."""

    job_id: str | None = None
    attempt: int = 1
    max_attempts: int = 1
    queue: str = "default"
    event: str | None = None
    tags: tuple[str, ...] = ()
    created_at: dt.datetime | None = None
    schedule_name: str | None = None
    scheduled_for: dt.datetime | None = None
    # {name or id: {id, name, status, result}} of the job's parents (dependsOn)
    parents: Mapping[str, Any] | None = None

    def job(self) -> dict[str, Any]:
        return {
            "id": self.job_id,
            "attempt": self.attempt,
            "maxAttempts": self.max_attempts,
            "queue": self.queue,
            "event": self.event,
            "tags": list(self.tags),
            "createdAt": _iso(self.created_at),
        }

    def schedule(self) -> dict[str, Any] | None:
        if self.schedule_name is None:
            return None
        return {"name": self.schedule_name, "scheduledFor": _iso(self.scheduled_for)}


def source_specs(params: Mapping[str, Any]) -> dict[str, SourceSpec]:
    """The parsed sources of `params` ({} unless `useSources` is true); a `SourceError` naming
    the field for a bad one or one named like a reserved root."""
    if params.get(USE_SOURCES) is not True:
        return {}
    specs = parse_sources(params.get(SOURCES) or {}, SOURCES)
    for name in specs:
        if name in RESERVED_ROOTS:
            reserved = ", ".join(sorted(RESERVED_ROOTS))
            raise SourceError(f"{SOURCES}.{name}", f"{name!r} is a reserved name ({reserved})")
    return specs


def templated_part(params: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The params that are templated, keyed as in `params` (so error locations name them)."""
    return {k: params[k] for k in keys if k in params}


def context(params: Mapping[str, Any], run: RunInfo, sources: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **sources,
        "params": params,
        "job": run.job(),
        "schedule": run.schedule(),
        "parents": dict(run.parents or {}),
    }


_STEP = re.compile(r'\.?([^.\[\]"]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')
_ESCAPE = re.compile(r"\\(.)")


def path_tuple(path: str) -> tuple[str | int, ...]:
    """`sources.user.fields[2]` -> ("sources", "user", "fields", 2) and `headers["X-Id"]` ->
    ("headers", "X-Id"): a location as the renderer prints it, back into a field path."""
    out: list[str | int] = []
    for m in _STEP.finditer(path):
        if m.group(1) is not None:
            out.append(m.group(1))
        elif m.group(2) is not None:
            out.append(int(m.group(2)))
        else:
            out.append(_ESCAPE.sub(r"\1", m.group(3)))
    return tuple(out)
