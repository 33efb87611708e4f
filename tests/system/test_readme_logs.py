"""The README's audit log examples run, as written, against a real API and worker process.

The `logs` block submits `log.message` jobs; once the worker has run them, the `logs-search`
block searches the audit log and reads the job type. Each `curl` answers the status its
`# -> STATUS` comment says, in order; the answers of the search hold the rows the jobs wrote,
and the worker's own log holds the matching lines.
"""

from __future__ import annotations

import asyncio

import asyncpg

from tests.faults.helpers import Procs
from tests.system.test_readme_examples import (
    answer,
    block,
    expected_statuses,
    prepare,
    run_blocks,
)
from tests.waiting import wait_for


async def test_the_audit_log_examples_run_as_written(pool: asyncpg.Pool, database_url: str) -> None:
    token = await prepare(pool)
    procs = Procs(database_url)
    try:
        _, base = await procs.api()
        worker = procs.start("jobserver.cli.worker", name="worker", env={"LOG_LEVEL": "DEBUG"})
        env = {"B": base, "TOKEN": token}
        out, ran = await asyncio.to_thread(run_blocks, ("logs",), env, "")
        assert [c.status for c in ran] == expected_statuses(block("logs")), out

        async def ran() -> bool:
            assert worker.alive(), worker.output()[-3000:]
            done = await pool.fetchval(
                "SELECT count(*) FROM jobs WHERE definition_key = 'log.message'"
                " AND status = 'succeeded'"
            )
            return bool(done == 2)

        await wait_for(ran, within=30)
        job_id = await pool.fetchval(
            "SELECT id FROM jobs WHERE params->>'level' = 'warn' AND definition_key = 'log.message'"
        )
        # the second block goes on in the first one's shell: its H and JOB
        env.update(H=f"Authorization: Bearer {token}", JOB=str(job_id))
        out, ran = await asyncio.to_thread(run_blocks, ("logs-search",), env, "")
        assert [c.status for c in ran] == expected_statuses(block("logs-search")), out
        records = [r for r in worker.log_records() if r.get("logger") == "jobserver.audit"]
    finally:
        procs.close()
    [entry] = answer(ran, "level=warn")["items"]
    assert entry["message"] == "Login failed for john" and entry["level"] == "warn"
    assert entry["metadata"] == {"user": "john", "ip": "192.168.1.100", "attempts": 3}
    assert (entry["jobId"], entry["owner"], entry["definition"]) == (
        str(job_id),
        "readme",
        "log.message@1",
    )
    by_text = answer(ran, "q=LOGIN")
    assert [e["id"] for e in by_text["items"]] == [entry["id"]] and by_text["total"] == 1
    assert [e["message"] for e in answer(ran, "q=100")["items"]] == ["100% of invoices_sent"]
    assert [e["id"] for e in answer(ran, "jobId=")["items"]] == [entry["id"]]
    assert answer(ran, "since=yesterday")["field"] == "since"
    definition = answer(ran, "definitions/log.message")
    assert definition["key"] == "log.message" and definition["outbound"] is False
    assert answer(ran, "definitions/no.such.type")["field"] == "key"
    levels = sorted((r["level"], r["msg"]) for r in records)
    assert levels == [("debug", "100% of invoices_sent"), ("warning", "Login failed for john")]
    warn = next(r for r in records if r["level"] == "warning")
    assert warn["category"] == "authentication" and warn["metadata"]["attempts"] == 3
