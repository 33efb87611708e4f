"""Schedules declared in code: validated at declaration, synced idempotently."""

from __future__ import annotations

import asyncpg
import pytest

from jobserver.db.schedules import schedule_get, schedule_insert
from jobserver.scheduler.firetimes import TimingError
from jobserver.schedules import CodeSchedule, schedule, sync_code_schedules


def test_declaration_validates() -> None:
    target: list[CodeSchedule] = []
    schedule("a", definition="echo", every_seconds=5, target=target)
    schedule("a", definition="echo", every_seconds=5, target=target)  # same: no-op
    assert len(target) == 1
    with pytest.raises(ValueError):
        schedule("a", definition="echo", every_seconds=6, target=target)
    with pytest.raises(TimingError):
        schedule("b", definition="echo", cron="99 * * * *", target=target)


async def test_sync(pool: asyncpg.Pool) -> None:
    target: list[CodeSchedule] = []
    schedule("code-a", definition="echo", cron="*/5 * * * *", target=target, queue="q")
    schedule("taken", definition="echo", every_seconds=5, target=target)
    await schedule_insert(pool, "taken", every_seconds=9, definition_key="echo")
    async with pool.acquire() as conn:
        assert await sync_code_schedules(conn, target) == [
            ("code-a", "created"),
            ("taken", "conflict"),
        ]
        assert await sync_code_schedules(conn, target) == [
            ("code-a", "unchanged"),
            ("taken", "conflict"),
        ]
        row = await schedule_get(conn, "code-a")
        assert row["source"] == "code" and row["queue"] == "q" and row["next_fire_at"]
        changed: list[CodeSchedule] = []  # a new declaration list, as after a code change
        schedule("code-a", definition="echo", every_seconds=30, target=changed)
        assert await sync_code_schedules(conn, changed) == [("code-a", "updated")]
        row = await schedule_get(conn, "code-a")
        assert row["cron"] is None and row["every_seconds"] == 30
        assert (await schedule_get(conn, "taken"))["every_seconds"] == 9
