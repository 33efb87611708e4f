"""Every list route answers one envelope and pages one way; every answer matches its schema.

The routes are read from the app's own route table, so a new list route is covered the day it
is added: it must take `limit` and `cursor`, answer `{"items", "nextCursor"}`, and refuse a
cursor that is not its own with a 422 naming `cursor`. The answers of a seeded server are
checked against the schemas `/openapi.json` publishes (closed objects: a field added to an
answer but not to its schema fails here, before the fuzzing run does).
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs

from jobserver.api.keys import ROUTES_KEY
from jobserver.api.paging import encode_cursor
from jobserver.api.routing import JSON, Route
from jobserver.db.workers import worker_register
from jobserver.scheduler.rescuer import Rescuer
from tests.api.conftest import Api
from tests.scheduler.helpers import insert_job

PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def _list_routes(api: Api) -> list[Route]:
    return [
        r
        for r in api.app[ROUTES_KEY]
        if r.response_schema is not None
        and {"items", "nextCursor"} <= set(r.response_schema.get("required", ()))
    ]


def _path(route: Route, ids: dict[str, str]) -> str:
    if route.path.startswith("/v1/saved-jobs/"):  # {id} is the saved job's there
        ids = {**ids, "id": ids["savedJobId"]}
    if route.path.startswith("/v1/workflows/"):  # and the workflow's there
        ids = {**ids, "id": ids["workflowId"]}
    return PARAM.sub(lambda m: ids[m.group(1)], route.path)


async def _seed(api: Api) -> dict[str, str]:
    """A job with events and an attempt, a dead-letter job, a schedule, a worker, a
    credential, a mail template and a saved job with an execution."""
    job = await api.submit()
    await api.call("POST", f"/v1/jobs/{job['jobId']}/cancel")
    await api.pool.execute(
        "INSERT INTO job_attempts (job_id, attempt, worker_id, finished_at, outcome, error)"
        " SELECT $1::uuid, n, 'w1', now(), 'failed', 'boom' FROM generate_series(1, 2) n",
        job["jobId"],
    )
    await insert_job(
        api.pool, status="running", attempt=2, max_attempts=2, lease_offset=-1, worker_id="w1"
    )
    assert (await Rescuer(api.pool).run_once())["failed"] == 1
    await worker_register(api.pool, "w1", "host", 1, ["default"], ["echo@1"], 4)
    r = await api.call(
        "POST",
        "/v1/schedules",
        json={"name": "every", "everySeconds": 60, "definitionKey": "echo"},
    )
    assert r.status == 201, r.body
    r = await api.call("POST", "/v1/schedules/every/trigger")  # a run to list
    assert r.status == 201, r.body
    # settled, so no answer holds a figure that grows while it waits (queueTimeMs)
    assert (await api.call("POST", f"/v1/jobs/{r.body['jobId']}/cancel")).status == 200
    await api.pool.execute(  # audit log rows (GET /v1/logs): two, for a real nextCursor
        "INSERT INTO audit_log (level, category, message)"
        " SELECT 'info', 'seed', 'seeded ' || n FROM generate_series(1, 2) n"
    )
    await seed_credential(api, "every")
    r = await api.call("POST", "/v1/saved-jobs", json={"name": "saved", "definitionKey": "echo"})
    assert r.status == 201, r.body
    saved_id = r.body["id"]
    r = await api.call("POST", f"/v1/saved-jobs/{saved_id}/execute")  # an execution to list
    assert r.status == 201, r.body
    assert (await api.call("POST", f"/v1/jobs/{r.body['id']}/cancel")).status == 200
    template = {"name": "every", "subject": "s", "text": "t"}  # a mail template to list
    assert (await api.call("POST", "/v1/mail-templates", json=template)).status == 201
    await api.pool.execute(  # paused queues to list (pausing is tested in test_control.py)
        "INSERT INTO paused_queues (queue, paused_by) VALUES ('emails', 'admin'), ('sms', NULL)"
    )
    workflow_id, run_id = await seed_workflow(api, "every")
    return {
        "id": job["jobId"],
        "name": "every",
        "savedJobId": saved_id,
        "workflowId": workflow_id,
        "runId": run_id,
        "version": "1",
    }


async def seed_workflow(api: Api, name: str) -> tuple[str, str]:
    """A workflow of one step with a run (to list, cancelled): (workflow id, run id)."""
    body = {"name": name, "steps": [{"name": "a", "jobType": "echo@1"}]}
    r = await api.call("POST", "/v1/workflows", json=body)
    assert r.status == 201, r.body
    started = await api.call("POST", f"/v1/workflows/{r.body['id']}/runs", json={})
    assert started.status == 201, started.body
    cancel = f"/v1/workflows/runs/{started.body['runId']}/cancel"  # no queued job to list
    assert (await api.call("POST", cancel)).status == 200
    return str(r.body["id"]), str(started.body["runId"])


async def seed_credential(api: Api, name: str) -> None:
    """A credential row to list (the app here has no secret key: its sealed bytes are a
    stand-in, never read)."""
    await api.pool.execute(
        "INSERT INTO credentials (name, kind, username, key_id, secret)"
        " VALUES ($1, 'smtp', 'mailer', 'k000000000000', '\\x01'::bytea)",
        name,
    )


async def test_every_list_route_has_one_envelope_and_cursor(api: Api) -> None:
    ids = await _seed(api)
    routes = _list_routes(api)
    paths = {r.path for r in routes}
    assert {"/v1/jobs", "/v1/definitions", "/v1/schedules", "/v1/dlq", "/v1/runners"} <= paths
    assert sum(r.path.endswith(("/events", "/attempts")) for r in routes) == 2
    for route in routes:
        assert route.query_schema is not None, route.path
        props = route.query_schema["properties"]
        assert {"limit", "cursor"} <= set(props), route.path
        path = _path(route, ids)
        seen: list[Any] = []
        cursor = None
        for _ in range(100):
            params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
            r = await api.call("GET", path, params=params)
            # the envelope, and the summary fields a list's schema requires (the job list's
            # pendingCount and runningCount)
            envelope = set(route.response_schema["required"])
            assert r.status == 200 and set(r.body) == envelope, (path, r.body)
            assert len(r.body["items"]) <= 1
            seen += r.body["items"]
            cursor = r.body["nextCursor"]
            if cursor is None:
                break
        assert seen, f"{path}: nothing seeded to list"
        assert len(seen) == len({repr(i) for i in seen}), f"{path}: an item shown twice"
        everything = await api.call("GET", path, params={"limit": props["limit"]["maximum"]})
        assert everything.body["items"] == seen, path
        for bad in ("garbage", "", "e30", "a+b", encode_cursor("elsewhere", [1]), "x" * 1001):
            r = await api.call("GET", path, params={"cursor": bad})
            assert (r.status, r.body.get("field")) == (422, "cursor"), (path, bad, r.body)


def _no_bare_schemas(schema: Any, where: str) -> None:
    """No `{}` (an undocumented value): a free value says so in a description."""
    if isinstance(schema, dict):
        assert schema, f"{where}: empty schema"
        for key, value in schema.items():
            if key in ("properties", "$defs"):
                for name, sub in value.items():
                    _no_bare_schemas(sub, f"{where}.{name}")
            elif key in ("items", "additionalProperties"):
                _no_bare_schemas(value, f"{where}[]")


async def test_documented_answers_are_complete(api: Api) -> None:
    r = await api.call("GET", "/openapi.json", token=None)
    for path, ops in r.body["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            ok = {s: v for s, v in op["responses"].items() if s.startswith("2")}
            for status, answer in ok.items():
                if status == "204" or path == "/metrics":
                    continue
                for media in answer["content"].values():  # JSON; a file's `video/*`
                    _no_bare_schemas(media["schema"], where)
            if "requestBody" in op:  # JSON; an upload's multipart/form-data
                for media in op["requestBody"]["content"].values():
                    _no_bare_schemas(media["schema"], where)
    retry = r.body["paths"]["/v1/dlq/{id}/retry"]["post"]
    assert retry["requestBody"]["required"] is False
    body = retry["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"maxAttempts"} and body["additionalProperties"] is False


async def test_answers_match_their_schemas(api: Api) -> None:
    ids = await _seed(api)
    # a video job for /v1/videos/{jobId}/status (its download is a file, not a JSON answer)
    ids["jobId"] = str(await insert_job(api.pool, definition_key="encode.video"))
    dlq_id = str(await api.pool.fetchval("SELECT id FROM dead_letter_jobs"))
    # the path ids of each resource: a job, a dead-letter job, a worker, a schedule
    prefixed = {"/v1/dlq/": {"id": dlq_id}, "/v1/runners/": {"id": "w1"}}
    prefixed["/v1/definitions/"] = {"name": "echo"}
    prefixed["/v1/queues/"] = {"name": "default"}

    def path_of(route: Route) -> str:
        found = next((v for k, v in prefixed.items() if route.path.startswith(k)), {})
        return _path(route, {**ids, **found})

    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/v1/jobs"): {"definitionKey": "echo", "params": {"m": 1}},
        ("POST", "/v1/jobs/batch"): {"jobs": [{"definitionKey": "echo"}]},
        ("POST", "/v1/simulate"): {"definitionKey": "echo", "params": {"m": 1}},
        ("PATCH", "/v1/schedules/{name}"): {"priority": 3},
        ("POST", "/v1/dlq/{id}/retry"): None,
        ("POST", "/v1/schedules/{name}/trigger"): None,
    }
    checked = 0
    for route in api.app[ROUTES_KEY]:
        template = PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)
        if (
            route.path == "/metrics"
            or route.response_media_type != JSON
            or (route.method != "GET" and (route.method, template) not in bodies)
        ):
            continue
        body = bodies.get((route.method, template))
        r = await api.call(route.method, path_of(route), json=body)
        where = (route.method, route.path, r.status, r.body)
        assert r.status == route.success_status, where
        assert route.response_schema is not None, where
        validator = jsonschema_rs.validator_for(route.response_schema)
        errors = [e.message for e in validator.iter_errors(r.body)]
        assert not errors, (route.method, route.path, errors[:5])
        checked += 1
    assert checked >= 20


async def test_numbered_lists_answer_their_schema_with_a_page(api: Api) -> None:
    """Every route that takes `page` answers the page-number fields, matching its schema."""
    ids = await _seed(api)
    numbered = [
        r
        for r in _list_routes(api)
        if r.query_schema is not None and "page" in r.query_schema["properties"]
    ]
    assert {r.path for r in numbered} >= {"/v1/jobs", "/v1/dlq"}
    for route in numbered:
        assert route.response_schema is not None
        validator = jsonschema_rs.validator_for(route.response_schema)
        for params in ({"page": "1", "limit": "1"}, {"page": "50"}):
            r = await api.call("GET", _path(route, ids), params=params)
            assert r.status == 200, (route.path, r.body)
            assert {"page", "limit", "total", "totalPages", "totalAtLeast"} <= set(r.body)
            errors = [e.message for e in validator.iter_errors(r.body)]
            assert not errors, (route.path, errors[:5])
        r = await api.call("GET", _path(route, ids), params={"page": "1", "cursor": "x"})
        assert (r.status, r.body["field"]) == (422, "page, cursor"), route.path
