"""Schedules declared in code, next to their definitions, and synced by `register-definitions`.

    from jobserver.schedules import schedule

    schedule("nightly-report", cron="0 3 * * *", timezone="Europe/Paris",
             definition="report", params={"kind": "daily"})
    schedule("heartbeat", every_seconds=60, definition="echo", version=1)

Each call validates the name, definition key and queue (`jobserver.core.names`) and the
timing at import (a bad cron or timezone fails loudly there) and
appends to the module-level `SCHEDULES`. `sync_code_schedules(conn)` upserts them with
`source = 'code'`: new ones are created, changed ones updated (a timing change re-plans the next
fire), identical ones left alone; a same-named schedule created over the API is never
overwritten (reported as "conflict"). Schedules removed from code are not deleted.
Their runs are not retried unless `max_attempts` is given (see `jobserver.scheduler.cron`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg

from jobserver.core.names import DEFINITION_KEY, QUEUE, SCHEDULE_NAME
from jobserver.db.schedules import schedule_upsert_code
from jobserver.scheduler.firetimes import Timing, first_fire_at, validate_timing


@dataclass(frozen=True)
class CodeSchedule:
    name: str
    definition: str
    cron: str | None = None
    every_seconds: int | None = None
    timezone: str = "UTC"
    version: int | None = None
    params: Any = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    max_attempts: int | None = None
    enabled: bool = True
    overlap_policy: Literal["allow", "skip"] = "allow"
    catchup_policy: Literal["none", "latest", "all"] = "latest"
    catchup_limit: int = 10

    def timing(self) -> Timing:
        return Timing(self.cron, self.every_seconds, self.timezone)

    def columns(self, now: dt.datetime) -> dict[str, Any]:
        return {
            "cron": self.cron,
            "every_seconds": self.every_seconds,
            "timezone": self.timezone,
            "definition_key": self.definition,
            "definition_version": self.version,
            "params": self.params,
            "queue": self.queue,
            "priority": self.priority,
            "max_attempts": self.max_attempts,
            "enabled": self.enabled,
            "overlap_policy": self.overlap_policy,
            "catchup_policy": self.catchup_policy,
            "catchup_limit": self.catchup_limit,
            "next_fire_at": first_fire_at(self.timing(), now) if self.enabled else None,
        }


SCHEDULES: list[CodeSchedule] = []


def schedule(
    name: str,
    *,
    definition: str,
    cron: str | None = None,
    every_seconds: int | None = None,
    target: list[CodeSchedule] | None = None,
    **options: Any,
) -> CodeSchedule:
    """Declare a schedule (see module doc); returns it. Raises ValueError on bad input."""
    s = CodeSchedule(
        name=name, definition=definition, cron=cron, every_seconds=every_seconds, **options
    )
    SCHEDULE_NAME.check(s.name)
    DEFINITION_KEY.check(s.definition)
    QUEUE.check(s.queue)
    validate_timing(s.timing())
    registry = SCHEDULES if target is None else target
    if any(existing.name == name and existing != s for existing in registry):
        raise ValueError(f"schedule {name!r} is declared twice")
    if s not in registry:
        registry.append(s)
    return s


async def sync_code_schedules(
    conn: asyncpg.Connection, schedules: list[CodeSchedule] | None = None
) -> list[tuple[str, str]]:
    """Upsert the declared schedules in one transaction; returns (name, outcome) pairs."""
    now = dt.datetime.now(dt.UTC)
    out: list[tuple[str, str]] = []
    async with conn.transaction():
        for s in SCHEDULES if schedules is None else schedules:
            out.append((s.name, await schedule_upsert_code(conn, s.name, **s.columns(now))))
    return out
