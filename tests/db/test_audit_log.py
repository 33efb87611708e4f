"""`jobserver/db/audit_log.py` on PostgreSQL: the write is fenced to the worker holding the
attempt and happens once per job, the search's filters are literal, and its indexes serve the
searches they are there for (pg_trgm for text, the partial index for warn and error)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from jobserver.db.audit_log import AuditFilter, audit_log_list, audit_log_write
from tests.scheduler.helpers import insert_job


async def _held(pool: asyncpg.Pool, *, worker: str = "w1", owner: str = "alice") -> uuid.UUID:
    job_id = await insert_job(
        pool, status="running", definition_key="log.message", worker_id=worker
    )
    await pool.execute("UPDATE jobs SET owner = $2 WHERE id = $1", job_id, owner)
    return job_id


def _entry(job_id: uuid.UUID, worker: str = "w1", attempt: int = 1, **kw: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "worker_id": worker,
        "attempt": attempt,
        "level": "warn",
        "category": "auth",
        "message": "login failed",
        "metadata": {"user": "john", "n": [1, 2.5, None]},
        **kw,
    }


async def _rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM audit_log ORDER BY id")


async def test_the_holding_worker_writes_the_row_with_the_jobs_owner(pool: asyncpg.Pool) -> None:
    job_id = await _held(pool)
    row = await audit_log_write(pool, **_entry(job_id))
    assert row is not None and row["written"] and row["owner"] == "alice"
    [stored] = await _rows(pool)
    assert stored["id"] == row["id"] and stored["created_at"] == row["created_at"]
    assert (stored["level"], stored["category"], stored["message"]) == (
        "warn",
        "auth",
        "login failed",
    )
    assert stored["metadata"] == {"user": "john", "n": [1, 2.5, None]}
    assert (stored["job_id"], stored["owner"], stored["definition"]) == (
        job_id,
        "alice",
        "log.message@1",
    )


async def test_a_worker_that_does_not_hold_the_attempt_writes_nothing(pool: asyncpg.Pool) -> None:
    job_id = await _held(pool)
    assert await audit_log_write(pool, **_entry(job_id, worker="w2")) is None
    assert await audit_log_write(pool, **_entry(job_id, attempt=2)) is None
    assert await audit_log_write(pool, **_entry(uuid.uuid4())) is None
    done = await insert_job(pool, status="succeeded", definition_key="log.message")
    assert await audit_log_write(pool, **_entry(done, worker="w-test")) is None
    assert await _rows(pool) == []


async def test_a_later_attempt_finds_the_row_an_earlier_one_wrote(pool: asyncpg.Pool) -> None:
    job_id = await _held(pool)
    first = await audit_log_write(pool, **_entry(job_id))
    assert first is not None
    # the worker died before its ack; the job was rescued and claimed again
    await pool.execute("UPDATE jobs SET attempt = 2, worker_id = 'w2' WHERE id = $1", job_id)
    again = await audit_log_write(pool, **_entry(job_id, worker="w2", attempt=2, message="other"))
    assert again is not None and not again["written"]
    assert (again["id"], again["created_at"]) == (first["id"], first["created_at"])
    assert [r["message"] for r in await _rows(pool)] == ["login failed"]
    # ...and the fence still holds for that later attempt
    assert await audit_log_write(pool, **_entry(job_id, worker="w1")) is None


async def _insert(pool: asyncpg.Pool, message: str, level: str = "info") -> None:
    await pool.execute(
        "INSERT INTO audit_log (level, category, message) VALUES ($1, 'c', $2)", level, message
    )


async def test_text_search_takes_wildcards_literally(pool: asyncpg.Pool) -> None:
    for message in ("100% done", "1000 done", "a_b", "axb", "back\\slash", "backslash"):
        await _insert(pool, message)

    async def found(text: str) -> list[str]:
        rows = await audit_log_list(pool, AuditFilter(text=text), limit=10)
        return sorted(r["message"] for r in rows)

    assert await found("%") == ["100% done"]
    assert await found("0%") == ["100% done"]
    assert await found("_") == ["a_b"]
    assert await found("\\") == ["back\\slash"]
    assert await found("DONE") == ["100% done", "1000 done"]  # case ignored


async def _plan(conn: asyncpg.Connection, sql: str) -> str:
    rows = await conn.fetch("EXPLAIN " + sql)
    return "\n".join(r[0] for r in rows)


async def test_the_indexes_serve_the_searches(pool: asyncpg.Pool) -> None:
    await pool.execute(
        """
        INSERT INTO audit_log (level, category, message)
        SELECT (ARRAY['debug', 'info', 'info', 'info', 'warn', 'error'])[1 + i % 6],
               'cat' || (i % 20), 'message number ' || i || ' from user' || (i % 97)
        FROM generate_series(1, 3000) AS i;
        ANALYZE audit_log;
        """
    )
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        text = await _plan(
            conn, "SELECT count(*) FROM audit_log WHERE message ILIKE '%user4\\_%' ESCAPE '\\'"
        )
        assert "audit_log_message_trgm_idx" in text, text
        serious = await _plan(
            conn,
            "SELECT id FROM audit_log WHERE level IN ('warn', 'error')"
            " ORDER BY created_at DESC, id DESC LIMIT 100",
        )
        assert "audit_log_serious_idx" in serious, serious
        category = await _plan(
            conn,
            "SELECT id FROM audit_log WHERE category = 'cat3'"
            " ORDER BY created_at DESC, id DESC LIMIT 100",
        )
        assert "audit_log_category_idx" in category, category
