"""The README's saved-job examples run as written against real processes (an API, a worker and
a scheduler on a per-test database): the first block saves a job with a trigger, executes it
and lists its runs; once a manual and a triggered run have succeeded, the second block retries
one, meets the 409 of its schedule, disables and deletes it. Every `curl` answers the status its
`# -> STATUS` comment says, and the job with `retryDelays` is retried after the listed delays."""

from __future__ import annotations

import asyncio

import asyncpg

from jobserver.auth import create_token
from jobserver.db.definitions import definition_upsert
from jobserver.registry import load_modules
from tests.faults.helpers import Procs
from tests.system.test_readme_examples import block, expected_statuses, run_block
from tests.waiting import wait_for


async def test_the_saved_job_examples_run_as_written(pool: asyncpg.Pool, database_url: str) -> None:
    for d in load_modules().all():
        await definition_upsert(pool, d.metadata())
    token = await create_token(pool, "readme", ["manage_jobs"], "readme")
    procs = Procs(database_url)
    try:
        _, base = await procs.api()
        procs.start("jobserver.cli.worker", name="worker")
        procs.scheduler("scheduler")
        env = {"B": base, "TOKEN": token}
        out, statuses = await asyncio.to_thread(run_block, "saved-jobs", env, base)
        assert statuses == expected_statuses(block("saved-jobs")), out
        saved_id = await pool.fetchval("SELECT id FROM saved_jobs")

        async def ran_both_ways() -> bool:
            triggers = await pool.fetch(
                "SELECT schedule_name IS NOT NULL AS fired FROM jobs"
                " WHERE saved_job_id = $1 AND status = 'succeeded'",
                saved_id,
            )
            return {r["fired"] for r in triggers} == {True, False}

        await wait_for(ran_both_ways, within=30)
        out, statuses = await asyncio.to_thread(run_block, "saved-jobs-later", env, base)
        assert statuses == expected_statuses(block("saved-jobs-later")), out

        # the failing job waits exactly its listed delays: 2 s after attempt 1, 4 s after 2
        async def delays() -> list[float] | None:
            rows = await pool.fetch(
                "SELECT e.details FROM job_events e JOIN jobs j ON j.id = e.job_id"
                " WHERE j.definition_key = 'failing' AND e.event = 'retry_scheduled'"
                " ORDER BY e.id"
            )
            found = [r["details"]["delaySeconds"] for r in rows]
            return found if len(found) >= 2 else None

        assert (await wait_for(delays, within=30))[:2] == [2, 4]
    finally:
        procs.close()
    assert await pool.fetchval("SELECT count(*) FROM saved_jobs") == 0
    assert await pool.fetchval("SELECT count(*) FROM schedules") == 0
    retry = await pool.fetchrow("SELECT * FROM jobs WHERE retry_of IS NOT NULL")
    assert retry["saved_job_id"] == saved_id  # kept after the saved job was deleted
