"""The README's saved-job examples run as written against real processes (an API, a worker and
a scheduler on a per-test database): the `saved-jobs` block saves a job with a trigger,
executes it and lists its runs; once a manual and a triggered run have succeeded, the
`saved-jobs-later` block retries one, meets the 409 of its schedule, disables and deletes it.
Every `curl` answers the status its `# -> STATUS` comment says, and the job with
`retryDelays` is retried after exactly the listed delays."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.faults.helpers import Procs
from tests.system.test_readme_examples import answer, block, expected_statuses, prepare, run_blocks
from tests.waiting import wait_for


async def test_the_saved_job_examples_run_as_written(pool: asyncpg.Pool, database_url: str) -> None:
    token = await prepare(pool)
    procs = Procs(database_url)
    try:
        _, base = await procs.api()
        procs.start("jobserver.cli.worker", name="worker")
        procs.scheduler("scheduler")
        env = {"B": base, "TOKEN": token}
        out, ran = await asyncio.to_thread(run_blocks, ("saved-jobs",), env, "")
        assert [c.status for c in ran] == expected_statuses(block("saved-jobs")), out
        saved = next(c.body for c in ran if c.url.endswith("/v1/saved-jobs"))
        executed = next(c.body for c in ran if c.url.endswith("/execute"))
        assert saved["schedule"]["name"] == f"saved-job:{saved['id']}"
        assert executed["params"]["options"] == {"format": "pdf", "lang": "fr"}
        assert executed["savedJobId"] == saved["id"] and executed["retryDelays"] == [10]

        async def ran_both_ways() -> bool:
            runs = await pool.fetch(
                "SELECT schedule_name IS NOT NULL AS fired FROM jobs"
                " WHERE saved_job_id = $1::uuid AND status = 'succeeded'",
                saved["id"],
            )
            return {r["fired"] for r in runs} == {True, False}

        await wait_for(ran_both_ways, within=30)
        out, ran = await asyncio.to_thread(run_blocks, ("saved-jobs-later",), env, "")
        assert [c.status for c in ran] == expected_statuses(block("saved-jobs-later")), out
        [history] = [c.body for c in ran if c.url.endswith("executions?status=succeeded")]
        assert {"manual", "schedule"} <= {e["trigger"] for e in history["items"]}
        [latest] = answer(ran, "executions?status=succeeded&limit")["items"]
        assert answer(ran, "/retry")["retryOf"] == latest["jobId"]
        assert answer(ran, "/v1/schedules/saved-job:")["savedJobId"] == saved["id"]

        # the failing job waits exactly its listed delays: 2 s after attempt 1, 4 s after 2
        async def delays() -> list[float] | None:
            rows = await pool.fetch(
                "SELECT e.details FROM job_events e JOIN jobs j ON j.id = e.job_id"
                " WHERE j.definition_key = 'failing' AND e.event = 'retry_scheduled'"
                " ORDER BY e.id"
            )
            found = [r["details"]["delaySeconds"] for r in rows]
            return found if len(found) >= 2 else None

        assert await wait_for(delays, within=30) == [2, 4]
    finally:
        procs.close()
    assert await pool.fetchval("SELECT count(*) FROM saved_jobs") == 0
    assert await pool.fetchval("SELECT count(*) FROM schedules") == 0
    retry = await pool.fetchrow("SELECT * FROM jobs WHERE retry_of IS NOT NULL")
    assert str(retry["saved_job_id"]) == saved["id"]  # kept after the saved job was deleted
