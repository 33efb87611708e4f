"""Stored workflows over the API: CRUD and versions (a run keeps its version after an edit),
422s naming the field with nothing written (cycle, unknown step, unknown job type, params
against the schema, placeholders), soft delete, runs (idempotency, inputData rendering, the
jobs a run starts with), the run's answer and its cancel, and scopes."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api

DIAMOND: dict[str, Any] = {
    "name": "diamond",
    "description": "a then b and c then d",
    "steps": [
        {"name": "a", "jobType": "echo@1", "params": {"message": "{{input.word}}"}},
        {"name": "b", "jobType": "echo@1", "dependsOn": ["a"], "retries": 2},
        {"name": "c", "jobType": "echo@1", "dependsOn": ["a"], "timeoutSeconds": 30},
        {
            "name": "d",
            "jobType": "echo@1",
            "dependsOn": ["b", "c"],
            "params": {"message": "{{steps.b.result.message}}"},
        },
    ],
}


async def stored(api: Api) -> tuple[int, int, int, int]:
    row = await api.pool.fetchrow(
        "SELECT (SELECT count(*) FROM workflows), (SELECT count(*) FROM workflow_versions),"
        " (SELECT count(*) FROM workflow_runs), (SELECT count(*) FROM jobs)"
    )
    assert row is not None
    return row[0], row[1], row[2], row[3]


async def create(api: Api, body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await api.call("POST", "/v1/workflows", json=body or DIAMOND)
    assert r.status == 201, r.body
    return r.body


async def test_crud_and_versions(api: Api) -> None:
    w = await create(api)
    assert w["version"] == 1 and w["owner"] == "admin" and len(w["steps"]) == 4
    r = await api.call("GET", f"/v1/workflows/{w['id']}", token="view")
    assert r.status == 200 and r.body == w
    run = await api.call("POST", f"/v1/workflows/{w['id']}/runs", json={"inputData": {"word": "x"}})
    assert run.status == 201 and run.body["version"] == 1 and run.body["status"] == "pending"

    changed = {**DIAMOND, "steps": DIAMOND["steps"][:1]}
    r = await api.call("PUT", f"/v1/workflows/{w['id']}", json=changed)
    assert r.status == 200 and r.body["version"] == 2 and len(r.body["steps"]) == 1
    r = await api.call("PATCH", f"/v1/workflows/{w['id']}", json={"description": "new"})
    assert r.status == 200 and r.body["version"] == 3 and r.body["description"] == "new"
    assert r.body["id"] == w["id"]
    r = await api.call("GET", f"/v1/workflows/{w['id']}/versions/1", token="view")
    assert r.status == 200 and len(r.body["steps"]) == 4 and r.body["version"] == 1
    r = await api.call("GET", f"/v1/workflows/{w['id']}/versions/9", token="view")
    assert r.status == 404

    # the run keeps version 1 (four steps) after the edits
    r = await api.call("GET", f"/v1/workflows/runs/{run.body['runId']}", token="view")
    assert r.status == 200, r.body
    assert r.body["version"] == 1 and [s["name"] for s in r.body["steps"]] == ["a", "b", "c", "d"]
    assert r.body["status"] == "pending"
    r = await api.call("GET", "/v1/workflows", token="view")
    assert r.status == 200 and [x["id"] for x in r.body["items"]] == [w["id"]]
    r = await api.call("GET", f"/v1/workflows/{w['id']}/runs", token="view")
    assert r.status == 200 and [x["runId"] for x in r.body["items"]] == [run.body["runId"]]

    # soft delete: gone from reads, the name free again, the run still readable
    r = await api.call("DELETE", f"/v1/workflows/{w['id']}")
    assert r.status == 204
    assert (await api.call("GET", f"/v1/workflows/{w['id']}")).status == 404
    r = await api.call("GET", f"/v1/workflows/runs/{run.body['runId']}")
    assert r.status == 200 and r.body["version"] == 1
    await create(api)


async def test_run_starts_its_jobs(api: Api) -> None:
    w = await create(api)
    r = await api.call("POST", f"/v1/workflows/{w['id']}/runs", json={"inputData": {"word": "hi"}})
    assert r.status == 201, r.body
    rows = await api.pool.fetch(
        "SELECT name, status, params, depends_on, on_parent_failure, max_attempts,"
        " timeout_seconds, definition_key FROM jobs ORDER BY name"
    )
    by = {x["name"]: x for x in rows}
    # a, b and c are made at start; d reads b's result: its expander stands for it
    assert set(by) == {"a", "b", "c", "d:expand", "run"}
    assert by["a"]["params"] == {"message": "hi"} and by["a"]["status"] == "queued"
    assert by["b"]["status"] == "waiting" and by["b"]["max_attempts"] == 3
    assert by["c"]["timeout_seconds"] == 30
    assert by["d:expand"]["definition_key"] == "workflow.expand"
    assert by["run"]["definition_key"] == "workflow.run"
    assert by["run"]["on_parent_failure"] == "continue"
    assert (
        str(r.body["jobId"]) in {str(x) for x in await api.pool.fetch("SELECT id FROM jobs")}
        or True
    )
    run_job = await api.pool.fetchrow("SELECT id, depends_on FROM jobs WHERE name = 'run'")
    expander = await api.pool.fetchval("SELECT id FROM jobs WHERE name = 'd:expand'")
    assert str(run_job["id"]) == r.body["jobId"] and run_job["depends_on"] == [expander]


async def test_idempotent_runs(api: Api) -> None:
    w = await create(api)
    body = {"inputData": {"word": "x"}, "idempotencyKey": "k1"}
    first = await api.call("POST", f"/v1/workflows/{w['id']}/runs", json=body)
    assert first.status == 201
    again = await api.call("POST", f"/v1/workflows/{w['id']}/runs", json=body)
    assert again.status == 200 and again.body["runId"] == first.body["runId"]
    before = await stored(api)
    other = await api.call(
        "POST", f"/v1/workflows/{w['id']}/runs", json={**body, "inputData": {"word": "y"}}
    )
    assert other.status == 409 and other.body["field"] == "idempotencyKey"
    assert await stored(api) == before


async def test_bad_workflows_are_422_naming_the_field(api: Api) -> None:
    def steps(*s: dict[str, Any]) -> dict[str, Any]:
        return {"name": "bad", "steps": list(s)}

    cases = [
        (
            steps(
                {"name": "a", "jobType": "echo@1", "dependsOn": ["c"]},
                {"name": "b", "jobType": "echo@1", "dependsOn": ["a"]},
                {"name": "c", "jobType": "echo@1", "dependsOn": ["b"]},
            ),
            "steps[1].dependsOn[0]",  # a -> c -> b -> a: the edge that closes the cycle
        ),
        (
            steps(
                {"name": "a", "jobType": "echo@1"},
                {"name": "b", "jobType": "echo@1", "dependsOn": ["a", "zz"]},
            ),
            "steps[1].dependsOn[1]",
        ),
        (steps({"name": "a", "jobType": "nope@1"}), "steps[0].jobType"),
        (steps({"name": "a", "jobType": "strict@1", "params": {"name": "x"}}), "steps[0].params"),
        (
            steps({"name": "a", "jobType": "echo@1"}, {"name": "a", "jobType": "echo@1"}),
            "steps[1].name",
        ),
        (
            steps(
                {"name": "a", "jobType": "echo@1", "params": {"m": "{{steps.b.result}}"}},
                {"name": "b", "jobType": "echo@1"},
            ),
            "steps[0].params.m",
        ),
        (
            steps({"name": "a", "jobType": "echo@1", "params": {"m": "{{item}}"}}),
            "steps[0].params.m",
        ),
        (steps({"name": "a", "jobType": "echo@1", "maxAttempts": 99}), "steps[0].maxAttempts"),
        (steps({"name": "a", "jobType": "echo@1", "forEach": "other.x"}), "steps[0].forEach"),
        (steps({"name": "a", "jobType": "echo@x"}), "steps[0].jobType"),
    ]
    for body, field in cases:
        r = await api.call("POST", "/v1/workflows", json=body)
        assert r.status == 422, (field, r.body)
        assert r.body["field"].startswith(field), (field, r.body)
    assert await stored(api) == (0, 0, 0, 0)
    w = await create(api)
    r = await api.call("PATCH", f"/v1/workflows/{w['id']}", json={"steps": cases[0][0]["steps"]})
    assert r.status == 422 and r.body["field"] == "steps[1].dependsOn[0]"
    assert (await api.call("GET", f"/v1/workflows/{w['id']}")).body["version"] == 1


async def test_run_with_missing_input_is_422(api: Api) -> None:
    w = await create(api)
    r = await api.call("POST", f"/v1/workflows/{w['id']}/runs", json={"inputData": {}})
    assert r.status == 422 and r.body["field"] == "inputData", r.body
    assert (await stored(api))[2:] == (0, 0)


async def test_for_each_over_input_and_cancel(api: Api) -> None:
    body = {
        "name": "fan",
        "steps": [
            {
                "name": "each",
                "jobType": "echo@1",
                "forEach": "input.words",
                "params": {"message": "{{index}}:{{item}}"},
            },
            {
                "name": "merge",
                "jobType": "echo@1",
                "dependsOn": ["each"],
                "params": {"message": "{{steps.each.result}}"},
            },
        ],
    }
    w = await create(api, body)
    r = await api.call(
        "POST", f"/v1/workflows/{w['id']}/runs", json={"inputData": {"words": ["x", "y", "z"]}}
    )
    assert r.status == 201
    run_id = r.body["runId"]
    rows = await api.pool.fetch(
        "SELECT name, params FROM jobs WHERE name LIKE 'each%' ORDER BY name"
    )
    assert [x["params"]["message"] for x in rows] == ["0:x", "1:y", "2:z"]
    r = await api.call("GET", f"/v1/workflows/runs/{run_id}")
    each = r.body["steps"][0]
    assert each["forEach"]["total"] == 3 and each["forEach"]["counts"] == {"queued": 3}
    assert r.body["steps"][1]["status"] == "waiting"
    r = await api.call("POST", f"/v1/workflows/runs/{run_id}/cancel")
    assert r.status == 200 and r.body["status"] == "cancelled", r.body
    left = await api.pool.fetchval("SELECT count(*) FROM jobs WHERE status NOT IN ('cancelled')")
    assert left == 0
    r = await api.call("POST", f"/v1/workflows/runs/{run_id}/cancel")
    assert r.status == 409


async def test_scopes_and_owners(api: Api) -> None:
    w = await create(api)
    assert (await api.call("POST", "/v1/workflows", token="plain", json=DIAMOND)).status == 403
    assert (await api.call("POST", "/v1/workflows", token="view", json=DIAMOND)).status == 403
    assert (await api.call("GET", f"/v1/workflows/{w['id']}", token="plain")).status == 403
    r = await api.call("POST", f"/v1/workflows/{w['id']}/runs", token="view", json={})
    assert r.status == 403
    assert (await api.call("GET", "/v1/workflows/runs/not-a-uuid")).status in (404, 422)
