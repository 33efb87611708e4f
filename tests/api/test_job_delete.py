"""DELETE /v1/jobs/{id}: a finished job goes with its events, attempts and files (a real worker
made them); a live job is a 409; a job waiting in the dead-letter queue is a 409 unless a
manage_jobs token forces it (the row goes too); a redriven row stays; owners as for cancel."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from jobserver.blobs.store import BlobStore
from jobserver.config import Settings
from jobserver.registry import load_modules
from jobserver.worker.worker import Worker
from tests.api.conftest import FAST_WORKER, Api
from tests.waiting import wait_for


@pytest.fixture
async def worker(api: Api, settings: Settings) -> AsyncIterator[Worker]:
    w = Worker(
        replace(settings, **FAST_WORKER, worker_id="delete-worker"), load_modules(), pool=api.pool
    )
    await w.start()
    yield w
    await w.stop(grace=0)


async def _rows(api: Api, job_id: str) -> tuple[int, int, int, int]:
    """(jobs, job_events, job_attempts, dead_letter_jobs) rows of the job."""
    row = await api.pool.fetchrow(
        """
        SELECT (SELECT count(*) FROM jobs WHERE id = $1::uuid),
            (SELECT count(*) FROM job_events WHERE job_id = $1::uuid),
            (SELECT count(*) FROM job_attempts WHERE job_id = $1::uuid),
            (SELECT count(*) FROM dead_letter_jobs WHERE id = $1::uuid)
        """,
        job_id,
    )
    assert row is not None
    return (row[0], row[1], row[2], row[3])


async def _failed(api: Api) -> str:
    """A failing@1 job run twice by the worker: failed, with stored attempts and events."""
    r = await api.call(
        "POST",
        "/v1/jobs",
        token="plain",
        json={"definitionKey": "failing", "maxAttempts": 2, "retryDelays": [0]},
    )
    assert r.status == 201, r.body
    job_id: str = r.body["id"]

    async def failed() -> bool:
        return await api.pool.fetchval(
            "SELECT status = 'failed' FROM jobs WHERE id = $1::uuid", job_id
        )

    await wait_for(failed, within=30)
    return job_id


async def test_a_finished_job_goes_with_its_events_and_attempts(api: Api, worker: Worker) -> None:
    job_id = await _failed(api)
    jobs, events, attempts, dead = await _rows(api, job_id)
    assert (jobs, dead) == (1, 1) and events >= 3 and attempts == 2
    r = await api.call("DELETE", f"/v1/jobs/{job_id}", token="plain")
    assert (r.status, r.body["code"], r.body["dlqId"]) == (409, "invalid_state", job_id)
    r = await api.call("DELETE", f"/v1/jobs/{job_id}", token="plain", params={"force": "true"})
    assert (r.status, r.body["field"]) == (403, "force")  # forcing needs manage_jobs
    assert await _rows(api, job_id) == (jobs, events, attempts, dead)  # nothing written
    r = await api.call("DELETE", f"/v1/jobs/{job_id}", params={"force": "true"})
    assert r.status == 204, r.body
    assert await _rows(api, job_id) == (0, 0, 0, 0)
    assert (await api.call("GET", f"/v1/jobs/{job_id}", token="plain")).status == 404
    assert (await api.call("DELETE", f"/v1/jobs/{job_id}", token="plain")).status == 404


async def test_a_redriven_dead_letter_row_stays(api: Api, worker: Worker) -> None:
    job_id = await _failed(api)
    r = await api.call("POST", f"/v1/dlq/{job_id}/retry")
    assert r.status == 201, r.body
    r = await api.call("DELETE", f"/v1/jobs/{job_id}", token="plain")
    assert r.status == 204, r.body
    assert await _rows(api, job_id) == (0, 0, 0, 1)  # the record of the redrive
    r = await api.call("GET", f"/v1/dlq/{job_id}")
    assert r.status == 200 and r.body["redrivenJobId"] is not None


async def _chunks() -> AsyncIterator[bytes]:
    yield b"report"


async def test_a_succeeded_job_is_deleted_by_its_owner(api: Api, worker: Worker) -> None:
    job = await api.submit("plain")

    async def succeeded() -> bool:
        r = await api.call("GET", f"/v1/jobs/{job['id']}", token="plain")
        return bool(r.body["status"] == "succeeded")

    await wait_for(succeeded, within=30)
    # a file the job holds (blobs reference their job ON DELETE CASCADE) goes with it, bytes too
    blob = await BlobStore(api.pool).put_stream(
        _chunks(), owner="alice", filename="r.txt", job_id=uuid.UUID(job["id"]), role="output"
    )
    oid = await api.pool.fetchval("SELECT lo_oid FROM blobs WHERE id = $1", blob.id)
    r = await api.call("DELETE", f"/v1/jobs/{job['id']}", token="plain")
    assert r.status == 204 and r.body is None
    assert await _rows(api, job["id"]) == (0, 0, 0, 0)
    assert await api.pool.fetchval("SELECT count(*) FROM blobs WHERE id = $1", blob.id) == 0
    objects = "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = $1"
    assert await api.pool.fetchval(objects, oid) == 0


async def test_live_jobs_and_other_owners_are_refused(api: Api) -> None:
    job = await api.submit("plain")
    path = f"/v1/jobs/{job['id']}"
    for status in ("queued", "running", "cancelling"):
        await api.pool.execute(
            "UPDATE jobs SET status = $2, worker_id = 'w', attempt = 1 WHERE id = $1::uuid",
            job["id"],
            status,
        )
        r = await api.call("DELETE", path)  # not even manage_jobs deletes a live job
        assert (r.status, r.body["jobStatus"]) == (409, status), r.body
    await api.pool.execute(
        "UPDATE jobs SET status = 'cancelled', finished_at = now() WHERE id = $1::uuid", job["id"]
    )
    assert (await api.call("DELETE", path, token="other")).status == 404  # not revealed
    r = await api.call("DELETE", path, token="view")
    assert (r.status, r.body["code"]) == (403, "forbidden")  # seen, not acted on
    r = await api.call("DELETE", path, params={"force": "maybe"})
    assert (r.status, r.body["field"]) == (422, "force")
    assert await api.job_count() == 1
    assert (await api.call("DELETE", f"/v1/jobs/{uuid.uuid4()}")).status == 404
    assert (await api.call("DELETE", path)).status == 204  # manage_jobs: any owner's
    assert await api.job_count() == 0
