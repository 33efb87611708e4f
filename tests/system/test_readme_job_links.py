"""The README's retry, clone and delete examples run as written against a real API process
(after the API block, in the same shell, as a reader pasting them would): every `curl` answers
the status its `# -> STATUS` comment says, and the links, the merged params, the counts and the
deletion are what the text says."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.faults.helpers import Procs
from tests.system.test_readme_examples import block, expected_statuses, prepare, run_blocks


async def test_the_retry_clone_and_delete_examples_run_as_written(
    pool: asyncpg.Pool, database_url: str
) -> None:
    token = await prepare(pool)
    procs = Procs(database_url)
    try:
        _, base = await procs.api()
        env = {"B": base, "TOKEN": token}
        names = ("api", "job-links")
        out, ran = await asyncio.to_thread(run_blocks, names, env, "")
    finally:
        procs.close()
    assert [c.status for c in ran] == [s for n in names for s in expected_statuses(block(n))], out
    mine = ran[len(expected_statuses(block("api"))) :]
    submitted, shown, cancelled, retry, again, clone, listed, refused, deleted = mine
    job_id = submitted.body["jobId"]
    assert shown.body["queuePosition"] == 0 and shown.body["isTerminal"] is False
    assert cancelled.body["isRetriable"] is True
    assert retry.body["retriedFrom"] == job_id and retry.body["isScheduled"] is True
    assert again.body["retriedAs"] == retry.body["jobId"]
    assert clone.body["clonedFrom"] == job_id and clone.body["priority"] == 5
    assert clone.body["params"] == {
        "message": "hi",
        "to": {"name": "Ann", "email": "ann@example.com"},
    }
    made = {job_id, retry.body["jobId"], clone.body["jobId"]}
    assert {j["jobId"] for j in listed.body["items"]} == made
    assert (listed.body["pendingCount"], listed.body["runningCount"]) == (2, 0)  # not the first
    assert refused.body["jobStatus"] == "queued" and deleted.body is None
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE id = $1::uuid", job_id) == 0
    kept = await pool.fetchval(
        "SELECT retried_from FROM jobs WHERE id = $1::uuid", retry.body["jobId"]
    )
    assert str(kept) == job_id  # the retry keeps the link as a plain reference
