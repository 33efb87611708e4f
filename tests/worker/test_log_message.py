"""`log.message` in a worker: the audit row and the process log line (read from a real worker
process's output), rendering, the bounds once rendered, and the one-row-per-job rule."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg
import pytest

from tests.faults.helpers import Procs
from tests.waiting import wait_for
from tests.worker.conftest import submit
from tests.worker.http_receiver import finished

# given level -> (stored level, the level name of the JSON log line)
LEVELS = {
    "debug": ("debug", "debug"),
    "info": ("info", "info"),
    "warn": ("warn", "warning"),
    "warning": ("warn", "warning"),
    "error": ("error", "error"),
}


async def _row_of(db: asyncpg.Pool, job_id: uuid.UUID) -> asyncpg.Record:
    rows = await db.fetch("SELECT * FROM audit_log WHERE job_id = $1", job_id)
    assert len(rows) == 1, rows
    return rows[0]


async def test_each_level_writes_its_row_and_its_log_line(
    db: asyncpg.Pool, database_url: str
) -> None:
    params = [
        {
            "level": level,
            "message": f"User login {level} 100%",
            "metadata": {"userId": 123, "ip": "192.168.1.100", "tags": ["a", None]},
            "category": "authentication",
        }
        for level in LEVELS
    ]
    ids = await submit(db, "log.message", params, owner="alice")
    procs = Procs(database_url)
    try:
        worker = procs.start(
            "jobserver.cli.worker",
            name="worker",
            env={"WORKER_ID": "audit-worker", "LOG_LEVEL": "DEBUG"},
        )

        async def logged() -> list[dict[str, Any]]:
            assert worker.alive(), worker.output()[-3000:]
            lines = [r for r in worker.log_records() if r.get("logger") == "jobserver.audit"]
            return lines if len(lines) == len(ids) else []

        lines = await wait_for(logged, within=30)
        jobs = [await finished(db, j) for j in ids]
    finally:
        procs.close()
    by_job = {line["jobId"]: line for line in lines}
    for job_id, job, (given, (stored, python_name)) in zip(ids, jobs, LEVELS.items(), strict=True):
        assert job["status"] == "succeeded", job["last_error"]
        row = await _row_of(db, job_id)
        assert row["level"] == stored
        assert row["message"] == f"User login {given} 100%"
        assert row["category"] == "authentication"
        assert row["metadata"] == {"userId": 123, "ip": "192.168.1.100", "tags": ["a", None]}
        assert (row["owner"], row["definition"]) == ("alice", "log.message@1")
        assert job["result"] == {
            "logId": row["id"],
            "createdAt": row["created_at"].isoformat(),
            "level": stored,
            "category": "authentication",
        }
        line = by_job[str(job_id)]
        assert line["level"] == python_name
        assert line["msg"] == row["message"]
        assert line["category"] == "authentication"
        assert line["logId"] == row["id"]
        assert line["owner"] == "alice"
        assert line["workerId"] == "audit-worker"
        assert line["metadata"] == row["metadata"]  # structured, not a string
        assert "earlierAttempt" not in line


async def test_message_metadata_and_category_are_rendered(
    db: asyncpg.Pool, start_worker: Any, people: None
) -> None:
    [job_id] = await submit(
        db,
        "log.message",
        [
            {
                "message": "Login by {{user.name}} (job {{job.id}}, {{params.metadata.kind}})",
                "metadata": {"kind": "password", "user": "{{user}}", "at": "{{$today}}"},
                "category": "auth.{{params.metadata.kind}}",
                "useSources": True,
                "sources": {
                    "user": {
                        "collection": "people",
                        "match": {"name": "John"},
                        "fields": ["name", "email"],
                        "single": True,
                    }
                },
            }
        ],
    )
    await start_worker()
    job = await finished(db, job_id)
    assert job["status"] == "succeeded", job["last_error"]
    row = await _row_of(db, job_id)
    assert row["message"] == f"Login by John (job {job_id}, password)"
    assert row["category"] == "auth.password"
    assert row["level"] == "info"  # the default
    assert row["metadata"]["user"] == {"name": "John", "email": "john@example.com"}  # typed
    assert row["metadata"]["kind"] == "password"
    assert len(row["metadata"]["at"]) == 10  # YYYY-MM-DD


async def test_rendered_values_are_held_to_the_bounds(db: asyncpg.Pool, start_worker: Any) -> None:
    [bad] = await submit(
        db,
        "log.message",
        [{"message": "hi", "category": "{{params.metadata.kind}}", "metadata": {"kind": "a b"}}],
    )
    await start_worker()
    job = await finished(db, bad)
    assert job["status"] == "failed" and job["attempt"] == 1  # for good: no retry
    assert "bad_category: category: rendered to 'a b' is not a category" in job["last_error"]
    assert await db.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_an_attempt_after_a_crash_answers_the_row_already_written(
    db: asyncpg.Pool, start_worker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    [job_id] = await submit(db, "log.message", [{"message": "deploy done", "level": "error"}])
    # as if an earlier attempt wrote its row, then its worker died before the ack
    earlier = await db.fetchval(
        "INSERT INTO audit_log (level, category, message, job_id) VALUES"
        " ('error', 'general', 'deploy done', $1) RETURNING id",
        job_id,
    )
    caplog.set_level(logging.DEBUG, logger="jobserver.audit")
    await start_worker()
    job = await finished(db, job_id)
    assert job["status"] == "succeeded", job["last_error"]
    assert job["result"]["logId"] == earlier
    assert await db.fetchval("SELECT count(*) FROM audit_log") == 1
    [record] = [r for r in caplog.records if r.name == "jobserver.audit"]
    assert record.levelno == logging.ERROR and record.getMessage() == "deploy done"
    assert record.__dict__["earlierAttempt"] is True and record.__dict__["logId"] == earlier
