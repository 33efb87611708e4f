"""The README's audit log examples run, as written, against a real API and worker process.

The `logs` block submits `log.message` jobs; once the worker has run them, the `logs-search`
block searches the audit log and reads the job type. Each `curl` answers the status its
`# -> STATUS` comment says, in order; the answers of the search hold the rows the jobs wrote,
and the worker's own log holds the matching lines.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg

from tests.faults.helpers import Procs
from tests.system.test_readme_examples import block, expected_statuses, prepare, run_block
from tests.waiting import wait_for


async def test_the_audit_log_examples_run_as_written(pool: asyncpg.Pool, database_url: str) -> None:
    token = await prepare(pool)
    procs = Procs(database_url)
    try:
        _, base = await procs.api()
        worker = procs.start("jobserver.cli.worker", name="worker", env={"LOG_LEVEL": "DEBUG"})
        env = {"B": base, "TOKEN": token}
        out, statuses = await asyncio.to_thread(run_block, "logs", env, "")
        assert statuses == expected_statuses(block("logs")), out

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
        out, statuses = await asyncio.to_thread(run_block, "logs-search", env, "")
        assert statuses == expected_statuses(block("logs-search")), out
        records = [r for r in worker.log_records() if r.get("logger") == "jobserver.audit"]
    finally:
        procs.close()
    answers = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    by_warn, by_text, by_percent, by_job, bad_since, definition, unknown = answers
    [entry] = by_warn["items"]
    assert entry["message"] == "Login failed for john" and entry["level"] == "warn"
    assert entry["metadata"] == {"user": "john", "ip": "192.168.1.100", "attempts": 3}
    assert (entry["jobId"], entry["owner"], entry["definition"]) == (
        str(job_id),
        "readme",
        "log.message@1",
    )
    assert [e["id"] for e in by_text["items"]] == [entry["id"]] and by_text["total"] == 1
    assert [e["message"] for e in by_percent["items"]] == ["100% of invoices_sent"]
    assert [e["id"] for e in by_job["items"]] == [entry["id"]]
    assert bad_since["field"] == "since"
    assert definition["key"] == "log.message" and definition["outbound"] is False
    assert unknown["field"] == "key"
    levels = sorted((r["level"], r["msg"]) for r in records)
    assert levels == [("debug", "100% of invoices_sent"), ("warning", "Login failed for john")]
    warn = next(r for r in records if r["level"] == "warning")
    assert warn["category"] == "authentication" and warn["metadata"]["attempts"] == 3
