"""`FinishedTally` against real rows: sliding windows of whole minutes, reading only what settled.

The tally is refreshed at chosen moments (`now`), so a window can be moved by minutes without
waiting for them.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from jobserver.api.finished_tally import FinishedTally
from tests.scheduler.helpers import insert_job


async def finished(pool: asyncpg.Pool, status: str, minutes_ago: float, ran: float) -> None:
    ago = minutes_ago * 60
    await insert_job(
        pool,
        status=status,
        queue="q",
        created_ago=ago + ran,
        started_ago=ago + ran,
        finished_ago=ago,
    )


def counts(window: dict[tuple[str, str], object]) -> dict[str, int]:
    return {status: c.n for (_, status), c in window.items()}  # type: ignore[attr-defined]


async def test_windows_slide_and_each_minute_is_read_once(pool: asyncpg.Pool) -> None:
    for minutes_ago in (0.5, 10, 50, 70, 1000, 1500):
        await finished(pool, "succeeded", minutes_ago, 1.0)
    await finished(pool, "failed", 5, 2.0)
    await finished(pool, "cancelled", 5, 0.0)
    tally = FinishedTally((15, 60, 1440))
    async with pool.acquire() as conn:
        now = await conn.fetchval("SELECT now()")
        view = await tally.refresh(conn, now)
        # the day up to the last settled minute (1438 minutes) ten minutes at a time, then the
        # unsettled tail
        assert tally.statements == 144 + 1
        assert counts(view.window(15)) == {"succeeded": 2, "failed": 1, "cancelled": 1}
        assert counts(view.window(60)) == {"succeeded": 3, "failed": 1, "cancelled": 1}
        assert counts(view.window(1440)) == {"succeeded": 5, "failed": 1, "cancelled": 1}
        assert view.last_minute() == {("q", "succeeded"): 1}
        failed = view.window(15)[("q", "failed")]
        assert (failed.timed, round(failed.duration_ms)) == (1, 2000)

        # a job written later into a minute already read is not counted (see the module doc)
        await finished(pool, "succeeded", 8, 1.0)
        later = now + dt.timedelta(minutes=20)
        before = tally.statements
        view = await tally.refresh(conn, later)
        assert tally.statements - before == 2 + 1  # the 20 minutes that settled, the tail
        assert counts(view.window(15)) == {}
        # the job of 30 s ago moved from the tail to a settled minute: counted once
        assert counts(view.window(60)) == {"succeeded": 2, "failed": 1, "cancelled": 1}
        assert counts(view.window(1440)) == {"succeeded": 5, "failed": 1, "cancelled": 1}

        # a day later the day has gone by; the tally reads the new day again
        view = await tally.refresh(conn, now + dt.timedelta(days=1, minutes=30))
        assert counts(view.window(1440)) == {}
        assert tally.statements - before > 100


async def test_a_refresh_returns_copies(pool: asyncpg.Pool) -> None:
    await finished(pool, "succeeded", 10, 1.0)
    tally = FinishedTally((15,))
    async with pool.acquire() as conn:
        now = await conn.fetchval("SELECT now()")
        first = await tally.refresh(conn, now)
        await tally.refresh(conn, now + dt.timedelta(minutes=30))
    assert counts(first.window(15)) == {"succeeded": 1}  # not moved by the later refresh
