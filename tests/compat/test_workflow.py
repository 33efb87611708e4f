"""The workflow engine's jobs API (`workflow-jobs-api.md`): every example request of the document
sent verbatim (host, port and Authorization added; example ids replaced by real ones) answers
its documented status and fields; execute-async then poll until `completed` with a real worker
process running the steps; a failing workflow ends `failed` with its error and retryCount, its
retries 0 then 10 s apart; the stats count those runs; bad input is a 4xx in the document's
error shape naming the field, nothing written; malformed and unknown ids are the document's
404; scopes."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import Api
from tests.compat.conftest import wait_for
from tests.faults.helpers import Procs

NOT_FOUND = {"error": "Job not found", "code": "NOT_FOUND"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
JOB_FIELDS = {"id", "workflowId", "workflowName", "status", "priority", "retryCount"}
JOB_FIELDS |= {"maxRetries", "createdAt"}


@pytest.fixture
def procs(database_url: str) -> Iterator[Procs]:
    p = Procs(database_url)
    yield p
    p.close()


def start_worker(procs: Procs, name: str = "wf-worker") -> None:
    procs.start("jobserver.cli.worker", name=name, env={"WORKER_ID": name})


async def workflow(api: Api, name: str, steps: list[dict[str, Any]]) -> str:
    r = await api.call("POST", "/v1/workflows", json={"name": name, "steps": steps})
    assert r.status == 201, r.body
    return str(r.body["id"])


SYNC = [
    {"name": "fetch", "jobType": "echo@1", "params": {"message": "{{input.0.json.key}}"}},
    {"name": "store", "jobType": "echo@1", "dependsOn": ["fetch"], "params": {"message": "ok"}},
]
BROKEN = [{"name": "import", "jobType": "failing@1", "params": {"reason": "db down"}, "retries": 1}]


async def execute(api: Api, workflow_id: str, body: str) -> dict[str, Any]:
    """The document's execute-async example, its body sent as written."""
    r = await api.call(
        "POST",
        f"/api/v1/workflows/{workflow_id}/execute-async",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert r.status == 202, r.body
    assert set(r.body) == {"jobId", "status"} and r.body["status"] == "pending"
    return r.body


def check_job(job: dict[str, Any]) -> None:
    assert set(job) >= JOB_FIELDS, job
    assert job["status"] in ("pending", "running", "completed", "failed")
    for name in ("priority", "retryCount", "maxRetries"):
        assert isinstance(job[name], int)
    for name in ("createdAt", "startedAt", "completedAt"):
        if name in job:
            assert ISO.match(job[name]), job


async def poll(api: Api, job_id: str, status: str, within: float = 30) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        r = await api.call("GET", f"/api/v1/jobs/{job_id}")
        assert r.status == 200, r.body
        check_job(r.body)
        return r.body if r.body["status"] in ("completed", "failed") else None

    job = await wait_for(ended, within=within, step=0.1)
    assert job["status"] == status, job
    return job


async def test_the_documents_examples_and_a_run_to_completed(compat_api: Api, procs: Procs) -> None:
    api = compat_api
    wf = await workflow(api, "Data Sync", SYNC)
    # 1. queue the workflow's execution
    queued = await execute(api, wf, '{"inputData": [{"json": {"key": "value"}}]}')
    job_id = queued["jobId"]
    # the pending job, before any worker runs
    r = await api.call("GET", f"/api/v1/jobs/{job_id}")
    assert r.status == 200
    assert r.body["status"] == "pending" and r.body["workflowName"] == "Data Sync"
    assert r.body["workflowId"] == wf and r.body["inputData"] == [{"json": {"key": "value"}}]
    assert r.body["priority"] == 0 and r.body["retryCount"] == 0 and r.body["maxRetries"] == 2
    assert "startedAt" not in r.body and "result" not in r.body
    r = await api.call("GET", "/api/v1/jobs?status=pending&limit=50")
    assert r.status == 200, r.body
    assert set(r.body) == {"data", "total", "pendingCount", "runningCount"}
    assert [j["id"] for j in r.body["data"]] == [job_id]
    assert (r.body["total"], r.body["pendingCount"], r.body["runningCount"]) == (1, 1, 0)
    check_job(r.body["data"][0])
    # every step job retries after 0, 10 and 60 s
    steps = await api.pool.fetch("SELECT retry_delays FROM jobs WHERE definition_key = 'echo'")
    assert [s["retry_delays"] for s in steps] == [[0.0, 10.0, 60.0]] * 2
    # the priority example (a workflow that reads no input)
    report = await workflow(api, "Report Generator", [{**SYNC[1], "dependsOn": []}])
    high = await execute(api, report, '{\n    "inputData": [{"json": {}}],\n    "priority": 5\n  }')
    r = await api.call("GET", f"/api/v1/jobs/{high['jobId']}")
    assert r.status == 200 and r.body["priority"] == 5
    assert await api.pool.fetchval(
        "SELECT count(*) FROM jobs WHERE priority = 5 AND definition_key = 'echo'"
    ) == 1  # fmt: skip

    # 2. poll the job's status while a real worker runs the steps
    start_worker(procs)
    done = await poll(api, job_id, "completed")
    assert done["result"] == {"data": [{"json": {"message": "ok"}}]}
    assert isinstance(done["duration"], int) and done["duration"] >= 0
    started = dt.datetime.fromisoformat(done["startedAt"])
    assert started <= dt.datetime.fromisoformat(done["completedAt"])
    assert "error" not in done
    fetched = await api.pool.fetchval(
        "SELECT result FROM jobs WHERE name = 'fetch' AND priority = 0"
    )
    assert fetched == {"message": "value"}  # inputData reached the step
    await poll(api, high["jobId"], "completed")

    # 3. when completed, the execution's details
    r = await api.call("GET", f"/api/v1/executions/{job_id}")
    assert r.status == 200, r.body
    assert r.body["status"] == "completed" and r.body["jobId"] == job_id
    assert [(s["name"], s["status"]) for s in r.body["steps"]] == [
        ("fetch", "completed"),
        ("store", "completed"),
    ]
    assert r.body["steps"][0]["result"] == {"message": "value"}

    # the list, then the stats
    r = await api.call("GET", "/api/v1/jobs")
    assert r.status == 200
    assert {j["id"] for j in r.body["data"]} == {job_id, high["jobId"]}
    assert all(j["status"] == "completed" for j in r.body["data"])
    assert (r.body["total"], r.body["pendingCount"], r.body["runningCount"]) == (2, 0, 0)
    r = await api.call("GET", "/api/v1/jobs/stats")
    assert r.status == 200, r.body
    assert {k: r.body[k] for k in ("pending", "running", "completed", "failed")} == {
        "pending": 0,
        "running": 0,
        "completed": 2,
        "failed": 0,
    }
    assert r.body["queueType"] == "postgresql" and r.body["workers"] >= 1
    assert isinstance(r.body["avgProcessingTime"], int)
    assert r.body["throughput"] == {"lastMinute": 2, "lastHour": 2, "lastDay": 2}


async def test_a_failing_workflow_ends_failed_after_its_retries(
    compat_api: Api, procs: Procs
) -> None:
    api = compat_api
    wf = await workflow(api, "Data Import", BROKEN)
    start_worker(procs)
    job_id = (await execute(api, wf, '{"inputData": [{"json": {}}]}'))["jobId"]
    job = await poll(api, job_id, "failed")
    assert job["retryCount"] == 1 and job["maxRetries"] == 1
    assert "db down" in job["error"] and job["error"].startswith("import: ")
    assert "completedAt" in job and "result" not in job
    # the 1st retry came at once (its delay 0)
    attempts = await api.pool.fetch(
        "SELECT a.attempt, a.started_at, a.finished_at FROM job_attempts a JOIN jobs j"
        " ON j.id = a.job_id WHERE j.definition_key = 'failing' ORDER BY a.attempt"
    )
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert (attempts[1]["started_at"] - attempts[0]["finished_at"]).total_seconds() < 8
    r = await api.call("GET", f"/api/v1/executions/{job_id}")
    assert r.status == 200 and r.body["status"] == "failed"
    assert r.body["steps"][0]["status"] == "failed" and r.body["steps"][0]["retryCount"] == 1
    r = await api.call("GET", "/api/v1/jobs?status=failed")
    assert [j["id"] for j in r.body["data"]] == [job_id] and r.body["total"] == 1
    r = await api.call("GET", "/api/v1/jobs/stats")
    assert (r.body["failed"], r.body["completed"], r.body["pending"]) == (1, 0, 0)


async def test_the_second_retry_waits_ten_seconds(compat_api: Api, procs: Procs) -> None:
    api = compat_api
    steps = [{**BROKEN[0], "retries": 2}]
    wf = await workflow(api, "Slow Import", steps)
    start_worker(procs)
    job_id = (await execute(api, wf, "{}"))["jobId"]
    job = await poll(api, job_id, "failed", within=40)
    assert job["retryCount"] == 2 == job["maxRetries"]
    rows = await api.pool.fetch(
        "SELECT a.started_at, a.finished_at FROM job_attempts a JOIN jobs j ON j.id = a.job_id"
        " WHERE j.definition_key = 'failing' ORDER BY a.attempt"
    )
    gaps = [
        (b["started_at"] - a["finished_at"]).total_seconds() for a, b in itertools.pairwise(rows)
    ]
    assert gaps[0] < 8 and 9.5 <= gaps[1] < 20, gaps


async def test_the_documents_404_and_malformed_ids(compat_api: Api) -> None:
    api = compat_api
    for path in ("/api/v1/jobs/job-123456", "/api/v1/jobs/00000000-0000-7000-8000-000000000000"):
        r = await api.call("GET", path)
        assert (r.status, r.body) == (404, NOT_FOUND), path
    r = await api.call("GET", "/api/v1/executions/exec-from-job")
    assert (r.status, r.body) == (404, {"error": "Execution not found", "code": "NOT_FOUND"})
    before = await api.job_count()
    r = await api.call(
        "POST", "/api/v1/workflows/wf-123/execute-async", json={"inputData": [{"json": {}}]}
    )
    assert (r.status, r.body) == (404, {"error": "Workflow not found", "code": "NOT_FOUND"})
    r = await api.call(
        "POST",
        "/api/v1/workflows/00000000-0000-7000-8000-000000000000/execute-async",
        json={"inputData": []},
    )
    assert (r.status, r.body) == (404, {"error": "Workflow not found", "code": "NOT_FOUND"})
    assert await api.job_count() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"inputData": {"json": {}}}, "inputData"),
        ({"inputData": [5]}, "inputData[0]"),
        ({"priority": "high"}, "priority"),
        ({"priority": 10_000}, "priority"),
        ({"inputData": [], "retry": 1}, "retry"),
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(
    compat_api: Api, body: dict[str, Any], field: str
) -> None:
    api = compat_api
    wf = await workflow(api, "w", SYNC)
    before = await api.job_count()
    r = await api.call("POST", f"/api/v1/workflows/{wf}/execute-async", json=body)
    assert 400 <= r.status < 500 and set(r.body) == {"error", "code"}, r.body
    assert field in r.body["error"] and r.body["code"] == "VALIDATION_ERROR", r.body
    assert await api.job_count() == before
    r = await api.call(
        "POST",
        f"/api/v1/workflows/{wf}/execute-async",
        data="{",
        headers={"Content-Type": "application/json"},
    )
    assert r.status == 400 and r.body["code"] == "INVALID_JSON"
    for query, name in [("status=done", "status"), ("limit=0", "limit"), ("page=2", "page")]:
        r = await api.call("GET", f"/api/v1/jobs?{query}")
        assert r.status == 422 and name in r.body["error"], r.body
    assert await api.job_count() == before


async def test_a_step_that_cannot_render_is_a_422_naming_inputData(compat_api: Api) -> None:
    api = compat_api
    wf = await workflow(api, "w", SYNC)
    r = await api.call("POST", f"/api/v1/workflows/{wf}/execute-async", json={"inputData": []})
    assert r.status == 422 and "inputData" in r.body["error"], r.body
    assert await api.job_count() == 0


async def test_scopes_and_tokens(compat_api: Api) -> None:
    api = compat_api
    wf = await workflow(api, "w", SYNC)
    body = {"inputData": [{"json": {"key": "v"}}]}
    # a plain token runs no stored workflow and reads no run (workflows are view/manage_jobs)
    r = await api.call("POST", f"/api/v1/workflows/{wf}/execute-async", token="plain", json=body)
    assert r.status == 403 and set(r.body) == {"error", "code"} and r.body["code"] == "FORBIDDEN"
    r = await api.call("POST", f"/api/v1/workflows/{wf}/execute-async", token="view", json=body)
    assert r.status == 403
    job_id = (await api.call("POST", f"/api/v1/workflows/{wf}/execute-async", json=body)).body[
        "jobId"
    ]
    for path in ("/api/v1/jobs", "/api/v1/jobs/stats", f"/api/v1/jobs/{job_id}"):
        r = await api.call("GET", path, token="plain")
        assert r.status == 403 and r.body["code"] == "FORBIDDEN", path
        r = await api.call("GET", path, token=None)
        assert r.status == 401 and r.body["code"] == "UNAUTHORIZED", path
        r = await api.call("GET", path, token="view")
        assert r.status == 200, path
    r = await api.call("GET", f"/api/v1/executions/{job_id}", token="view")
    assert r.status == 200 and r.body["status"] == "pending"
