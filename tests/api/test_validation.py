"""Bad input never corrupts state: hostile bodies, queries and paths get a 4xx with a code
(and the offending field), nothing is written, and nothing answers 500."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.api.conftest import Api

JOB = {"definitionKey": "echo", "definitionVersion": 1, "params": {"message": "hi"}}


def job(**fields: Any) -> dict[str, Any]:
    out = dict(JOB)
    out.update(fields)
    return {k: v for k, v in out.items() if v is not ...}


STRICT_OK = {"name": "n", "count": 1}

# (body, status, code, field)
BAD_SUBMISSIONS: list[tuple[Any, int, str, str | None]] = [
    ([], 422, "validation_error", None),
    ("text", 422, "validation_error", None),
    (None, 422, "validation_error", None),
    ({}, 422, "validation_error", "definitionKey"),
    (job(definitionKey=5), 422, "validation_error", "definitionKey"),
    (job(definitionKey=""), 422, "validation_error", "definitionKey"),
    (job(definitionKey="no such"), 422, "validation_error", "definitionKey"),
    (job(definitionKey="nope"), 422, "unknown_definition", "definitionKey"),
    (job(definitionVersion=99), 422, "unknown_definition", "definitionVersion"),
    (job(definitionVersion="1"), 422, "validation_error", "definitionVersion"),
    (job(definitionVersion=0), 422, "validation_error", "definitionVersion"),
    (job(definitionVersion=10**30), 422, "validation_error", "definitionVersion"),
    (job(priority=1001), 422, "validation_error", "priority"),
    (job(priority=-1001), 422, "validation_error", "priority"),
    (job(priority=10**40), 422, "validation_error", "priority"),
    (job(priority=1.5), 422, "validation_error", "priority"),
    (job(priority=True), 422, "validation_error", "priority"),
    (job(priority=1e308), 422, "validation_error", "priority"),
    (job(maxAttempts=1e308), 422, "validation_error", "maxAttempts"),
    (job(maxAttempts=1.5), 422, "validation_error", "maxAttempts"),
    (job(definitionVersion=1e308), 422, "validation_error", "definitionVersion"),
    (job(priority="5"), 422, "validation_error", "priority"),
    (job(maxAttempts=0), 422, "validation_error", "maxAttempts"),
    (job(maxAttempts=101), 422, "validation_error", "maxAttempts"),
    (job(timeoutSeconds=0), 422, "validation_error", "timeoutSeconds"),
    (job(timeoutSeconds=86400 * 7 + 1), 422, "validation_error", "timeoutSeconds"),
    (job(delaySeconds=-1), 422, "validation_error", "delaySeconds"),
    (job(delaySeconds=31536001), 422, "validation_error", "delaySeconds"),
    (job(delaySeconds=1e300), 422, "validation_error", "delaySeconds"),
    (job(queue=""), 422, "validation_error", "queue"),
    (job(queue="a b"), 422, "validation_error", "queue"),
    (job(queue="q" * 101), 422, "validation_error", "queue"),
    (job(queue="default\n"), 422, "validation_error", "queue"),
    (job(definitionKey="echo\n"), 422, "validation_error", "definitionKey"),
    (job(idempotencyKey=""), 422, "validation_error", "idempotencyKey"),
    (job(idempotencyKey=7), 422, "validation_error", "idempotencyKey"),
    (job(idempotencyKey="k\u0000"), 422, "validation_error", "idempotencyKey"),
    (job(runAt="yesterday"), 422, "validation_error", "runAt"),
    (job(runAt=12), 422, "validation_error", "runAt"),
    (job(runAt="2030-01-01T00:00:00Z", delaySeconds=5), 422, "validation_error", "delaySeconds"),
    (job(expiresAt="2000-01-01T00:00:00Z"), 422, "validation_error", "expiresAt"),
    (
        job(runAt="2030-01-01T00:00:00Z", expiresAt="2030-01-01T00:00:00Z"),
        422,
        "validation_error",
        "expiresAt",
    ),
    (
        job(runAt="2030-01-02T00:00:00+00:00", expiresAt="2030-01-01T23:00:00Z"),
        422,
        "validation_error",
        "expiresAt",
    ),
    (
        job(delaySeconds=3600, expiresAt="2000-01-01T00:00:00Z"),
        422,
        "validation_error",
        "expiresAt",
    ),
    (job(unknownField=1), 422, "validation_error", "unknownField"),
    (job(params={"message": 5}), 422, "validation_error", "params.message"),
    (job(params={"message": "a\u0000b"}), 422, "validation_error", "params.message"),
    (job(params={"k\u0000": 1}), 422, "validation_error", "params.k\u0000"),
    (job(params={"message": "\ud800"}), 422, "validation_error", "params.message"),
    (
        job(definitionKey="strict", definitionVersion=..., params={}),
        422,
        "validation_error",
        "params.name",
    ),
    (
        job(definitionKey="strict", definitionVersion=..., params={**STRICT_OK, "count": 11}),
        422,
        "validation_error",
        "params.count",
    ),
    (
        job(definitionKey="strict", definitionVersion=..., params={**STRICT_OK, "tags": [1]}),
        422,
        "validation_error",
        "params.tags[0]",
    ),
    (
        job(
            definitionKey="strict",
            definitionVersion=...,
            params={**STRICT_OK, "inner": {"level": "mid"}},
        ),
        422,
        "validation_error",
        "params.inner.level",
    ),
    (
        job(definitionKey="strict", definitionVersion=..., params={**STRICT_OK, "x": 1}),
        422,
        "validation_error",
        "params.x",
    ),
    (
        job(definitionKey="strict", definitionVersion=..., params="notobject"),
        422,
        "validation_error",
        "params",
    ),
    (
        job(definitionKey="strict", definitionVersion=..., params={**STRICT_OK, "count": 1e308}),
        422,
        "validation_error",
        "params.count",
    ),
    (
        job(definitionKey="refy", definitionVersion=..., params={"n": 1e308}),
        422,
        "validation_error",
        "params.n",
    ),
    (
        job(definitionKey="refy", definitionVersion=..., params={"n": "x"}),
        422,
        "validation_error",
        "params.n",
    ),
]


async def test_bad_submissions_are_rejected_and_nothing_written(api: Api) -> None:
    """One test walks every case (a fresh database per case would cost seconds)."""
    failures = []
    for body, status, code, field in BAD_SUBMISSIONS:
        raw = json.dumps(body).encode()
        r = await api.call(
            "POST", "/v1/jobs", data=raw, headers={"Content-Type": "application/json"}
        )
        ok = (
            r.status == status
            and r.body["code"] == code
            and isinstance(r.body["error"], str)
            and r.body["error"]
            and (field is None or r.body.get("field") == field)
        )
        if not ok:
            failures.append((body, status, code, field, r.status, r.body))
    assert not failures, "\n".join(map(repr, failures))
    assert await api.job_count() == 0


async def test_a_trailing_newline_in_queue_is_refused_and_nothing_written(api: Api) -> None:
    """`^...$` patterns are ECMA-262: `$` does not match before a final newline (Python's
    does), so "default\n" is not stored where no worker of queue "default" would claim it."""
    r = await api.call("POST", "/v1/jobs", json=job(queue="default\n"))
    assert (r.status, r.body["code"], r.body["field"]) == (422, "validation_error", "queue")
    assert "must match" in r.body["error"], r.body
    items = [job(), job(), job(queue="default\n")]
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": items})
    assert (r.status, r.body["field"]) == (422, "jobs[2].queue"), r.body
    assert await api.job_count() == 0


async def test_integral_floats_are_stored_as_ints(api: Api) -> None:
    r = await api.call(
        "POST",
        "/v1/jobs",
        json=job(
            definitionKey="refy",
            definitionVersion=1.0,
            priority=2.0,
            maxAttempts=3.0,
            params={"n": 4.0},
        ),
    )
    assert r.status == 201, r.body
    r = await api.call("GET", f"/v1/jobs/{r.body['jobId']}")
    stored = r.body
    assert (stored["definitionVersion"], stored["priority"], stored["maxAttempts"]) == (1, 2, 3)
    assert stored["params"] == {"n": 4} and type(stored["params"]["n"]) is int, stored
    row = await api.pool.fetchrow("SELECT params::text AS p FROM jobs")
    assert row is not None and row["p"] == '{"n": 4}', row


# (raw body, content type, status, code)
RAW_BODIES: list[tuple[bytes, str | None, int, str]] = [
    (b"{", "application/json", 400, "invalid_json"),
    (b"", "application/json", 400, "invalid_json"),
    (b"   ", "application/json", 400, "invalid_json"),
    (b"{'a': 1}", "application/json", 400, "invalid_json"),
    (b"\xff\xfe{}", "application/json", 400, "invalid_json"),
    (b"[" * 60_000, "application/json", 400, "invalid_json"),
    (b"[" * 100 + b"]" * 100, "application/json", 400, "invalid_json"),
    (
        b'{"definitionKey":"echo","params":' + b'{"a":' * 200 + b"1" + b"}" * 200 + b"}",
        "application/json",
        400,
        "invalid_json",
    ),
    (
        b'{"definitionKey":"echo","priority":' + b"9" * 5000 + b"}",
        "application/json",
        422,
        "validation_error",
    ),
    (
        b'{"definitionKey":"echo","params":{"x":' + b"9" * 5000 + b"}}",
        "application/json",
        422,
        "validation_error",
    ),
    (b'{"definitionKey":"echo","params":{"x":1e400}}', "application/json", 422, "validation_error"),
    (b'{"definitionKey":"echo","params":{"x":NaN}}', "application/json", 422, "validation_error"),
    (
        b'{"definitionKey":"echo","params":{"x":-Infinity}}',
        "application/json",
        422,
        "validation_error",
    ),
    (json.dumps(JOB).encode(), "text/plain", 415, "unsupported_media_type"),
    (json.dumps(JOB).encode(), "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    (json.dumps(JOB).encode(), None, 415, "unsupported_media_type"),
]


async def test_hostile_raw_bodies(api: Api) -> None:
    failures = []
    for path in ("/v1/jobs", "/v1/jobs/batch"):
        for raw, ctype, status, code in RAW_BODIES:
            headers = {"Content-Type": ctype} if ctype else {}
            r = await api.call("POST", path, data=raw, headers=headers)
            if (r.status, r.body["code"]) != (status, code):
                failures.append((path, raw[:60], status, code, r.status, r.body))
    assert not failures, "\n".join(map(repr, failures))
    assert await api.job_count() == 0


async def test_body_too_large_is_413_without_reading_it_all(api: Api) -> None:
    big = json.dumps(job(params={"message": "x" * 70_000})).encode()  # limit here: 64 KiB
    for path in ("/v1/jobs", "/v1/jobs/batch"):
        r = await api.call("POST", path, data=big, headers={"Content-Type": "application/json"})
        assert (r.status, r.body["code"]) == (413, "body_too_large"), r.body

    async def chunks() -> Any:  # no Content-Length: the limit applies while reading
        for _ in range(1000):
            yield b"x" * 1024

    async with api.client.post(
        "/v1/jobs",
        data=chunks(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer " + api.tokens["manage"],
        },
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["code"] == "body_too_large"
    assert await api.job_count() == 0


async def test_batch_errors_name_the_index_and_write_nothing(api: Api) -> None:
    items = [job(params={"message": str(i)}) for i in range(5)]
    items[3] = job(definitionKey="strict", definitionVersion=1, params={"name": "x", "count": "2"})
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": items})
    assert (r.status, r.body["field"]) == (422, "jobs[3].params.count"), r.body
    items[3] = job(priority=5000)
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": items})
    assert (r.status, r.body["field"]) == (422, "jobs[3].priority"), r.body
    items[3] = job(definitionKey="ghost")
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": items})
    assert (r.status, r.body["code"], r.body["field"]) == (
        422,
        "unknown_definition",
        "jobs[3].definitionKey",
    ), r.body
    items[3] = job(idempotencyKey="a")
    items[4] = job(idempotencyKey="a")
    r = await api.call("POST", "/v1/jobs/batch", json={"jobs": items})
    assert (r.status, r.body["field"]) == (422, "jobs[4].idempotencyKey"), r.body
    for body in (
        {"jobs": []},
        {"jobs": [{"definitionKey": "echo"}] * 1001},
        {"jobs": JOB},
        {"items": [JOB]},
        {},
    ):
        r = await api.call("POST", "/v1/jobs/batch", json=body)
        assert r.status == 422, r.body
    assert await api.job_count() == 0


ID_ROUTES = [
    ("GET", "/v1/jobs/{id}"),
    ("POST", "/v1/jobs/{id}/cancel"),
    ("GET", "/v1/jobs/{id}/events"),
    ("GET", "/v1/jobs/{id}/attempts"),
]


async def test_invalid_and_unknown_ids(api: Api) -> None:
    for method, path in ID_ROUTES:
        for bad in ("not-a-uuid", "1", "%00", "x" * 300, "12345678-1234-1234-1234-12345678901g"):
            r = await api.call(method, path.replace("{id}", bad))
            assert (r.status, r.body["code"]) == (422, "validation_error"), (path, bad, r.body)
            assert r.body["field"] == "id"
        r = await api.call(method, path.replace("{id}", str(uuid.uuid4())))
        assert (r.status, r.body["code"]) == (404, "not_found")


QUERY_CASES: list[tuple[str, dict[str, str] | list[tuple[str, str]], str]] = [
    ("/v1/jobs", {"limit": "0"}, "limit"),
    ("/v1/jobs", {"limit": "101"}, "limit"),
    ("/v1/jobs", {"limit": "ten"}, "limit"),
    ("/v1/jobs", {"limit": "9" * 400}, "limit"),
    ("/v1/jobs", [("limit", "1"), ("limit", "2")], "limit"),
    ("/v1/jobs", {"status": "queued,bogus"}, "status[1]"),
    ("/v1/jobs", {"sortBy": "id"}, "sortBy"),
    ("/v1/jobs", {"sortOrder": "up"}, "sortOrder"),
    ("/v1/jobs", {"createdAfter": "soon"}, "createdAfter"),
    ("/v1/jobs", {"cursor": "!!!"}, "cursor"),
    ("/v1/jobs", {"cursor": "eyJzIjoxfQ"}, "cursor"),
    ("/v1/jobs", {"queue": "a\u0000"}, "queue"),
    ("/v1/jobs", {"bogus": "1"}, "bogus"),
    ("/v1/definitions", {"bogus": "1"}, "bogus"),
    ("/healthz", {"x": "1"}, "x"),
]


async def test_bad_queries(api: Api) -> None:
    failures = []
    for path, query, field in QUERY_CASES:
        r = await api.call("GET", path, params=query)
        if (r.status, r.body["code"], r.body.get("field")) != (422, "validation_error", field):
            failures.append((path, query, field, r.status, r.body))
    assert not failures, "\n".join(map(repr, failures))


async def test_bad_event_queries(api: Api) -> None:
    j = await api.submit()
    for q in ({"after": "-1"}, {"limit": "1001"}, {"after": "x"}):
        r = await api.call("GET", f"/v1/jobs/{j['jobId']}/events", params=q)
        assert r.status == 422, r.body


async def test_unknown_routes_and_methods(api: Api) -> None:
    r = await api.call("GET", "/v2/nothing")
    assert (r.status, r.body["code"]) == (404, "not_found")
    r = await api.call("DELETE", "/v1/jobs")
    assert (r.status, r.body["code"]) == (405, "method_not_allowed")
    r = await api.call("PUT", "/v1/jobs/batch", json=JOB)
    assert (r.status, r.body["code"]) == (405, "method_not_allowed")
    assert await api.job_count() == 0


async def test_every_route_survives_garbage(api: Api) -> None:
    """Fuzz-ish sweep: every registered route with hostile input answers 4xx (never 500)."""
    from jobserver.api.keys import ROUTES_KEY

    bodies = [
        b"",
        b"null",
        b"[]",
        b'{"a":"\\u0000"}',
        b"[" * 5000,
        b'"\\ud800"',
        b"1e999",
        b'{"jobs":[{"definitionKey":"echo","params":{"x":"\\u0000"}}]}',
    ]
    for route in api.app[ROUTES_KEY]:
        path = route.path.replace("{id}", "zzz")
        for raw in bodies:
            for token in ("plain", "manage", None):
                r = await api.call(
                    route.method,
                    path,
                    token=token,
                    data=raw,
                    headers={"Content-Type": "application/json"},
                    params={"limit": "-5", "zz": "\u0000"},
                )
                assert r.status < 500, (route.path, raw[:20], r.body)
                if r.status >= 400:
                    assert set(r.body) >= {"error", "code"}
    assert await api.job_count() == 0
