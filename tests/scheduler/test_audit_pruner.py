"""Pruner and the audit log: rows older than LOG_RETENTION_DAYS go in bounded batches, newer
ones stay, 0 keeps every row; the daemon wires the setting."""

from __future__ import annotations

import asyncpg
import pytest

from jobserver.config import ConfigError, Settings
from jobserver.scheduler.daemon import SchedulerDaemon
from jobserver.scheduler.pruner import Pruner

DAY = 86400.0


async def _rows(pool: asyncpg.Pool, ages_in_days: list[float]) -> None:
    """Audit rows created that many days ago (message = the age, to tell them apart)."""
    await pool.execute(
        """
        INSERT INTO audit_log (created_at, level, category, message)
        SELECT now() - make_interval(secs => age * 86400), 'info', 'c', age::text
        FROM unnest($1::float8[]) AS age
        """,
        ages_in_days,
    )


async def _left(pool: asyncpg.Pool) -> list[float]:
    return sorted(float(r[0]) for r in await pool.fetch("SELECT message FROM audit_log"))


async def test_defaults_keep_thirty_days() -> None:
    assert Settings().log_retention_days == 30
    assert Settings.from_env({"LOG_RETENTION_DAYS": "0"}).log_retention_days == 0
    with pytest.raises(ConfigError, match="LOG_RETENTION_DAYS"):
        Settings.from_env({"LOG_RETENTION_DAYS": "-1"})


async def test_the_daemon_passes_the_retention(pool: asyncpg.Pool) -> None:
    daemon = SchedulerDaemon(Settings(log_retention_days=7), pool)
    [pruner] = [s for s in daemon.services if isinstance(s, Pruner)]
    assert pruner.audit_days == 7
    assert Pruner(pool).audit_days == 30


async def test_old_rows_go_new_rows_stay(pool: asyncpg.Pool) -> None:
    await _rows(pool, [45, 31, 30.01, 29.99, 1, 0])
    result = await Pruner(pool).run_once()
    assert result == {"pruned": 0, "audit_log": 3}
    assert await _left(pool) == [0, 1, 29.99]
    assert "audit_log" not in await Pruner(pool).run_once()  # nothing left to prune: no figure


async def test_audit_rows_go_in_bounded_batches(pool: asyncpg.Pool) -> None:
    await _rows(pool, [40.0 + i for i in range(5)] + [2])
    pruner = Pruner(pool, audit_days=10, batch=2, max_batches=2)
    assert (await pruner.run_once())["audit_log"] == 4  # two batches of two, then the run ends
    assert await _left(pool) == [2, 40]  # oldest first
    assert (await pruner.run_once())["audit_log"] == 1
    assert await _left(pool) == [2]


async def test_zero_keeps_every_row(pool: asyncpg.Pool) -> None:
    await _rows(pool, [3650, 400, 1])
    assert "audit_log" not in await Pruner(pool, audit_days=0).run_once()
    assert await _left(pool) == [1, 400, 3650]
