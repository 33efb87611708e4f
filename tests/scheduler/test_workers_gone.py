"""Workers-gone: a worker silent for three heartbeats is marked gone."""

from __future__ import annotations

import asyncpg

from jobserver.scheduler.workers_gone import WorkersGone


async def test_defaults(pool: asyncpg.Pool) -> None:
    w = WorkersGone(pool)
    assert w.interval == 5.0 and w.silent_seconds == 30.0


async def test_start_stop_twice(pool: asyncpg.Pool) -> None:
    w = WorkersGone(pool, interval=0.05)
    w.start()
    await w.wait_runs(2)
    await w.stop()
    await w.stop()
    assert not w.running


async def test_marks_only_silent_workers(pool: asyncpg.Pool) -> None:
    for wid, status, ago in [
        ("fresh", "active", 5),
        ("silent", "active", 40),
        ("stopping", "stopping", 40),
        ("stopped", "stopped", 400),
    ]:
        await pool.execute(
            "INSERT INTO workers (id, host, pid, status, last_seen_at)"
            " VALUES ($1, 'h', 1, $2, now() - make_interval(secs => $3))",
            wid,
            status,
            float(ago),
        )
    result = await WorkersGone(pool, heartbeat_seconds=10).run_once()
    assert result == {"gone": 2}
    rows = dict(await pool.fetch("SELECT id, status FROM workers"))  # type: ignore[arg-type]
    assert rows == {"fresh": "active", "silent": "gone", "stopping": "gone", "stopped": "stopped"}
