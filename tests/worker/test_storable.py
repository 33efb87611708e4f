"""What PostgreSQL cannot store fails only its own job: results, events, progress and errors
that hold NUL, lone surrogates or too much; a batch the database refuses anyway is written row
by row. Progress writes are paced and stored events capped per job."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from jobserver.codec import dumps_stored
from jobserver.config import Settings
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.worker import executor
from tests.worker.conftest import job, submit, wait_for
from tests.worker.defs import POISON_BIG

POISON = ["nul", "surrogate", "big", "event", "progress"]


async def _all_terminal(db: asyncpg.Pool, ids: list[Any]) -> bool:
    return not await db.fetchval(
        "SELECT count(*) FROM jobs WHERE id = ANY($1)"
        " AND status NOT IN ('succeeded', 'failed', 'cancelled')",
        ids,
    )


async def _run_mix(db: asyncpg.Pool, start_worker: Any, settings: Settings) -> dict[str, Any]:
    """200 fine jobs with poison ones among them, on one worker; the rows once all ended."""
    kinds = [{"kind": "ok", "n": i} for i in range(200)]
    for i, k in enumerate([*POISON, "error"]):
        kinds.insert(30 * i + 7, {"kind": k})
    ids = await submit(db, "test.poison", kinds)
    await start_worker(settings, concurrency=20)
    await wait_for(lambda: _all_terminal(db, ids), within=30)
    rows = await db.fetch(
        "SELECT id, status, result, last_error, params FROM jobs WHERE id = ANY($1)", ids
    )
    return {"ok": [r for r in rows if r["params"]["kind"] == "ok"], "rows": rows}


async def test_poison_results_fail_only_their_own_attempt(
    db: asyncpg.Pool, start_worker: Any, fast_settings: Settings
) -> None:
    settings = replace(fast_settings, max_result_bytes=64 * 1024)
    mix = await _run_mix(db, start_worker, settings)
    assert all(r["status"] == "succeeded" for r in mix["ok"])
    assert sorted(r["result"]["ok"] for r in mix["ok"]) == list(range(200))
    errors = {
        r["params"]["kind"]: r["last_error"] for r in mix["rows"] if r["status"] != "succeeded"
    }
    assert errors == {
        "nul": "result_not_storable: result holds a NUL character at x",
        "surrogate": "result_not_storable: result holds a lone surrogate at x",
        "big": f"result_not_storable: result is {POISON_BIG + 8} bytes of JSON,"
        " over the limit of 65536",
        "event": "result_not_storable: event holds a NUL character at data.x",
        "progress": "result_not_storable: progress holds a NUL character at message",
        "error": "ValueError: bad \\ud800 text",  # an error text is made storable
    }
    failed = await db.fetch(
        "SELECT j.id FROM jobs j JOIN dead_letter_jobs d ON d.id = j.id WHERE j.status = 'failed'"
    )
    assert len(failed) == len(errors)


async def test_a_batch_the_database_refuses_is_written_row_by_row(
    db: asyncpg.Pool, start_worker: Any, fast_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # without the worker's own check the poison reaches the batched write (defence in depth)
    monkeypatch.setattr(executor, "dumps_storable", lambda value, limit: dumps_stored(value))
    mix = await _run_mix(db, start_worker, fast_settings)
    assert all(r["status"] == "succeeded" for r in mix["ok"])
    errors = {
        r["params"]["kind"]: r["last_error"] for r in mix["rows"] if r["status"] != "succeeded"
    }
    assert set(errors) == {"nul", "surrogate", "event", "progress", "error"}  # big fits 1 MiB
    prefix = "result_not_storable: the database refused the result: "
    assert errors["nul"].startswith(prefix) and "\\u0000" in errors["nul"]
    assert (
        errors["surrogate"].startswith(prefix) and "surrogates not allowed" in errors["surrogate"]
    )
    big = next(r for r in mix["rows"] if r["params"]["kind"] == "big")
    assert big["status"] == "succeeded"


async def test_the_process_data_attack_writes_a_handful_of_rows(
    db: asyncpg.Pool, start_worker: Any, fast_settings: Settings
) -> None:
    """process.data with chunkSize 1 reports progress per row: paced to one write a second."""
    async with db.acquire() as conn, conn.transaction():
        [jid] = await job_insert_many(
            conn,
            [
                NewJob(
                    "process.data",
                    1,
                    1,
                    params={"operation": "aggregate", "size": 10_000_000, "chunkSize": 1},
                    timeout_seconds=2,
                )
            ],
        )
    await start_worker()
    await wait_for(lambda: _all_terminal(db, [jid]), within=20)
    row = await job(db, jid)
    assert row["status"] == "failed" and row["last_error"] == "timed out after 2 s"
    assert row["progress"]["done"] > 1000  # thousands of reports were made
    stored = await db.fetchval(
        "SELECT count(*) FROM job_events WHERE job_id = $1 AND event = 'progress'", jid
    )
    assert 2 <= stored <= 5  # the first, one per second, the last one (flushed at the end)
    last = await db.fetchval(
        "SELECT details FROM job_events WHERE job_id = $1 AND event = 'progress'"
        " ORDER BY id DESC LIMIT 1",
        jid,
    )
    assert last == row["progress"]  # the last report was written, as event and on the row


async def test_a_capped_job_stores_max_events_and_one_events_truncated(
    db: asyncpg.Pool, start_worker: Any, fast_settings: Settings
) -> None:
    settings = replace(fast_settings, max_events_per_job=7, progress_min_interval_ms=0)
    [jid] = await submit(db, "test.chatty", [{"n": 20}])
    await start_worker(settings)
    await wait_for(lambda: _all_terminal(db, [jid]))
    row = await job(db, jid)
    assert row["status"] == "succeeded"
    assert row["result"] == {"stored": 4}  # custom, progress, custom, progress, ... custom
    counts = dict(
        await db.fetch("SELECT event, count(*) FROM job_events WHERE job_id = $1 GROUP BY 1", jid)
    )
    assert counts == {"custom": 4, "progress": 3, "events_truncated": 1}
    assert row["progress"]["done"] == 20  # the row still follows past the cap


async def test_the_event_cap_counts_the_events_of_earlier_attempts(
    db: asyncpg.Pool, start_worker: Any, fast_settings: Settings
) -> None:
    settings = replace(
        fast_settings, max_events_per_job=9, progress_min_interval_ms=0, backoff_base_seconds=0.05
    )
    [jid] = await submit(db, "test.chatty", [{"n": 3, "fail_first": True}], max_attempts=2)
    await start_worker(settings)
    await wait_for(lambda: _all_terminal(db, [jid]))
    row = await job(db, jid)
    assert (row["status"], row["attempt"]) == ("succeeded", 2)
    # attempt 1 stored 6 (3 custom + 3 progress); attempt 2 had 3 left: custom, progress, custom
    assert row["result"] == {"stored": 2}
    counts = dict(
        await db.fetch("SELECT event, count(*) FROM job_events WHERE job_id = $1 GROUP BY 1", jid)
    )
    assert counts["custom"] + counts["progress"] == 9 and counts["events_truncated"] == 1


async def test_a_result_printed_back_over_the_cap_is_not_storable(
    db: asyncpg.Pool, start_worker: Any, fast_settings: Settings
) -> None:
    """{"x": [1e308, ...]}: 7 bytes an item sent, 310 read back; judged by what is read back."""
    settings = replace(fast_settings, max_result_bytes=64 * 1024)
    printed = await db.fetchval("SELECT length(('{\"x\": [1e308]}'::jsonb)::text)")
    assert printed == len('{"x": []}') + 309  # how PostgreSQL prints it: every digit
    fits, amplified = 100, 1000  # 31 KB and 310 KB once printed; both 7 KB or less as sent
    ids = await submit(
        db, "test.poison", [{"kind": "amplified", "n": fits}, {"kind": "amplified", "n": amplified}]
    )
    await start_worker(settings)
    await wait_for(lambda: _all_terminal(db, ids), within=20)
    ok, refused = [await job(db, i) for i in ids]
    assert ok["status"] == "succeeded"
    assert ok["result"] == {"x": [10**308] * fits}  # read back written out, as an integer
    stored = await db.fetchval("SELECT length(result::text) FROM jobs WHERE id = $1", ids[0])
    assert stored <= settings.max_result_bytes
    assert refused["status"] == "failed" and refused["result"] is None
    assert refused["last_error"] == (
        f"result_not_storable: result is {8 + 7 * amplified - 1} bytes of JSON that PostgreSQL"
        f" would print back as {8 + 310 * amplified - 1} (numbers written out in full),"
        " over the limit of 65536"
    )
