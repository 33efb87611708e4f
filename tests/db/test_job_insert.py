"""`job_insert_*`: the column shapes the insert statement adapts to (same value for all jobs,
all NULL, varying), time-ordered ids, and the optional stored `created` event."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import pytest

from jobserver.db.events import job_events_list
from jobserver.db.jobs import (
    NewJob,
    job_insert_many,
    job_insert_returning,
    job_insert_times,
    new_job_id,
    new_job_ids,
)

UTC = dt.UTC


def test_ids_are_version_7_unique_and_in_creation_order() -> None:
    ids = [*new_job_ids(5000), new_job_id(), *new_job_ids(3)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # 5000 in one millisecond roll over into the next
    assert {(u.version, u.variant) for u in ids} == {(7, uuid.RFC_4122)}
    ms = ids[0].int >> 80
    assert abs(ms / 1000 - dt.datetime.now(UTC).timestamp()) < 60


async def test_mixed_columns_round_trip(pool: asyncpg.Pool) -> None:
    later = dt.datetime.now(UTC) + dt.timedelta(hours=1)
    jobs = [
        NewJob("echo", 1, 3, {"i": 0}),  # run_at None -> now(), in an array with a value
        NewJob("echo", 1, 5, {"i": 1}, run_at=later, priority=7, queue="q2", timeout_seconds=2),
        NewJob("other", 2, 3, [1, 2], owner="o", idempotency_key="k", request_fingerprint="f"),
    ]
    async with pool.acquire() as conn:
        rows = await job_insert_returning(conn, jobs)
    assert [r["id"] for r in rows] == [j.id for j in jobs]
    got = [
        (r["definition_key"], r["definition_version"], r["max_attempts"], r["params"]) for r in rows
    ]
    assert got == [("echo", 1, 3, {"i": 0}), ("echo", 1, 5, {"i": 1}), ("other", 2, 3, [1, 2])]
    assert rows[0]["run_at"] == rows[0]["created_at"] and rows[1]["run_at"] == later
    assert [r["queue"] for r in rows] == ["default", "q2", "default"]
    assert [r["priority"] for r in rows] == [0, 7, 0]
    assert [r["timeout_seconds"] for r in rows] == [None, 2.0, None]
    assert [r["owner"] for r in rows] == ["system:anonymous", "system:anonymous", "o"]
    assert [r["idempotency_key"] for r in rows] == [None, None, "k"]
    assert all(r["status"] == "queued" and r["attempt"] == 0 for r in rows)


async def test_same_values_and_single_jobs(pool: asyncpg.Pool) -> None:
    run_at = dt.datetime(2031, 1, 1, tzinfo=UTC)
    same = [NewJob("echo", 1, 3, {"m": "x"}, run_at=run_at, owner="o") for _ in range(50)]
    async with pool.acquire() as conn:
        ids = await job_insert_many(conn, same)
        [(created, run)] = await job_insert_times(conn, [NewJob("echo", 1, 3)])
    assert ids == [j.id for j in same]
    stored = await pool.fetch("SELECT params, run_at, owner FROM jobs WHERE id = ANY($1)", ids)
    assert len(stored) == 50
    assert {(r["params"]["m"], r["run_at"], r["owner"]) for r in stored} == {("x", run_at, "o")}
    assert run == created


async def test_created_event_is_derived_not_stored(pool: asyncpg.Pool) -> None:
    derived, other = NewJob("echo", 1, 3), NewJob("echo", 1, 3)
    async with pool.acquire() as conn:
        await job_insert_many(conn, [derived])
        await job_insert_many(conn, [other])
    rows = await pool.fetch("SELECT job_id FROM job_events WHERE event = 'created'")
    assert [r["job_id"] for r in rows] == []
    for job in (derived, other):
        assert [e["event"] for e in await job_events_list(pool, job.id)] == ["created"]


async def test_params_keep_their_values_and_nan_is_refused_before_writing(
    pool: asyncpg.Pool,
) -> None:
    values = [{}, {"n": None, "big": 2**70, "s": "é\u2028"}, {1: "int key"}, [1.5, True, "x"]]
    jobs = [NewJob("echo", 1, 3, v) for v in values]
    async with pool.acquire() as conn:
        rows = await job_insert_returning(conn, jobs)
        assert [r["params"] for r in rows] == [
            {},
            {"n": None, "big": 2**70, "s": "é\u2028"},
            {"1": "int key"},
            [1.5, True, "x"],
        ]
        for bad in (float("nan"), float("inf")):
            with pytest.raises(ValueError, match="JSON compliant"):
                await job_insert_many(conn, [NewJob("echo", 1, 3, {"x": [bad]})])
        assert await conn.fetchval("SELECT count(*) FROM jobs") == len(values)
