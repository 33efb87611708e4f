"""Scenario 8: access control over every route of the router, against a live API process.

The routes are enumerated from the route table itself (`jobserver.api.routes.all_routes`), so a
new route is covered the day it is added. For each one: no token and a bad token -> 401 unless
the route is public; each token scope (and an outbound-capability token, of submit rank) -> 403
below the route's scope, otherwise a status the route documents in /openapi.json (never
401/403, never 5xx). A route that takes multipart/form-data (the video upload) gets a form
with a small file, others a JSON body. One owner can never read, list, cancel, retry, clone or
delete another owner's job, nor read the status of or download another owner's video; only
outbound and manage_jobs tokens submit `call.api`. The plaintext tokens appear nowhere in the
database nor in the process' logs (run at DEBUG).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from jobserver.api.routes import all_routes
from tests.clips import make_clip
from tests.faults.conftest import Row
from tests.faults.helpers import HttpStats, Procs, job_body

pytestmark = [pytest.mark.faults, pytest.mark.scenario("8. access")]

PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
RANK = {"public": 0, "submit": 1, "view_jobs": 2, "manage_jobs": 3}
TOKEN_RANK = {"alice": 1, "outbound": 1, "view": 2, "manage": 3}


class Form:
    """A multipart form: text fields and one file part."""

    def __init__(self, file_field: str, content: bytes, **fields: str) -> None:
        self.file_field, self.content, self.fields = file_field, content, fields

    def data(self) -> aiohttp.FormData:
        form = aiohttp.FormData(default_to_multipart=True)
        for name, value in self.fields.items():
            form.add_field(name, value)
        form.add_field(self.file_field, self.content, filename="upload.mp4")
        return form


def request_body(route: Any) -> Any:
    if route.body_schema is None:
        return None
    if route.body_media_type == "multipart/form-data":
        return Form("video", b"not a video")
    return {}


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    token: str | None,
    stats: HttpStats,
    body: Any = None,
) -> tuple[int, Any]:
    """`body`: JSON, or a `Form` (sent as multipart/form-data, built anew for each call)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kw: dict[str, Any] = {"headers": headers}
    if isinstance(body, Form):
        kw["data"] = body.data()
    elif body is not None:
        kw["json"] = body
    async with session.request(method, url, **kw) as r:
        try:
            parsed = await r.json(content_type=None)
        except ValueError:
            parsed = None
        stats.record(r.status, parsed if r.status >= 500 else None, 0.0)
        return r.status, parsed


async def test_every_route_scope_and_owner_isolation(
    db: asyncpg.Pool, procs: Procs, tokens: dict[str, str], report: Row, tmp_path: Path
) -> None:
    clip_path = await asyncio.to_thread(make_clip, tmp_path / "clip.mp4")
    clip = await asyncio.to_thread(clip_path.read_bytes)
    api, base = await procs.api(env={"LOG_LEVEL": "DEBUG"})
    stats = HttpStats()
    async with aiohttp.ClientSession() as s:
        # -- owner isolation ------------------------------------------------------------
        status, a_job = await call(
            s, "POST", f"{base}/v1/jobs", tokens["alice"], stats, job_body(1)
        )
        assert status == 201, a_job
        status, b_job = await call(s, "POST", f"{base}/v1/jobs", tokens["bob"], stats, job_body(2))
        assert status == 201, b_job
        a_id = a_job["id"]
        for suffix in ("", "/events", "/attempts"):
            status, _ = await call(s, "GET", f"{base}/v1/jobs/{a_id}{suffix}", tokens["bob"], stats)
            assert status == 404, (suffix, status)
        status, listed = await call(s, "GET", f"{base}/v1/jobs?limit=100", tokens["bob"], stats)
        assert status == 200
        assert [j["id"] for j in listed["items"]] == [b_job["id"]]
        for filt in ("status=queued", "definitionKey=faults.work", "sortBy=priority"):
            status, listed = await call(s, "GET", f"{base}/v1/jobs?{filt}", tokens["bob"], stats)
            assert status == 200 and a_id not in {j["id"] for j in listed["items"]}, filt
        status, _ = await call(s, "POST", f"{base}/v1/jobs/{a_id}/cancel", tokens["bob"], stats)
        assert status == 404
        # another owner's job is no parent for a plain token (422, as an id that is no job)
        waits = {**job_body(3), "dependsOn": [a_id]}
        status, refused = await call(s, "POST", f"{base}/v1/jobs", tokens["bob"], stats, waits)
        assert status == 422 and refused["field"] == "dependsOn[0]", refused
        batch = {"jobs": [{**job_body(4), "dependsOn": [a_id]}]}
        status, refused = await call(
            s, "POST", f"{base}/v1/jobs/batch", tokens["bob"], stats, batch
        )
        assert status == 422 and refused["field"] == "jobs[0].dependsOn[0]", refused
        status, own = await call(
            s,
            "POST",
            f"{base}/v1/jobs",
            tokens["bob"],
            stats,
            {**job_body(5), "dependsOn": [b_job["id"]]},
        )
        assert status == 201 and own["status"] == "waiting", own
        # broadcast: a plain token may ask for one; with no live worker it is a 422 naming it
        every = {**job_body(6), "broadcast": True}
        status, refused = await call(s, "POST", f"{base}/v1/jobs", tokens["bob"], stats, every)
        assert status == 422 and refused["field"] == "broadcast", refused
        status, refused = await call(
            s, "POST", f"{base}/v1/jobs/batch", tokens["bob"], stats, {"jobs": [every]}
        )
        assert status == 422 and refused["field"] == "jobs[0].broadcast", refused
        upload = Form("video", clip, quality="720p")
        status, a_video = await call(
            s, "POST", f"{base}/v1/videos/encode", tokens["alice"], stats, upload
        )
        assert status == 201, a_video
        v_id = a_video["jobId"]
        for suffix in ("status", "download"):
            status, _ = await call(
                s, "GET", f"{base}/v1/videos/{v_id}/{suffix}", tokens["bob"], stats
            )
            assert status == 404, (suffix, status)
        status, seen = await call(
            s, "GET", f"{base}/v1/videos/{v_id}/status", tokens["alice"], stats
        )
        assert status == 200 and seen["jobId"] == v_id, seen
        status, seen = await call(
            s, "GET", f"{base}/v1/videos/{v_id}/status", tokens["view"], stats
        )
        assert status == 200, seen
        download = f"{base}/v1/videos/{v_id}/download"  # HEAD: the same rules as its GET
        for token, expected in ((None, 401), (tokens["bob"], 404), (tokens["alice"], 409)):
            status, _ = await call(s, "HEAD", download, token, stats)
            assert status == expected, (token, status)
        status, _ = await call(s, "POST", f"{base}/v1/jobs/{a_id}/cancel", tokens["view"], stats)
        assert status in (403, 404)
        for method, suffix in (("POST", "/retry"), ("POST", "/clone"), ("DELETE", "")):
            url = f"{base}/v1/jobs/{a_id}{suffix}"
            status, _ = await call(s, method, url, tokens["bob"], stats)
            assert status == 404, (method, suffix, status)
        made = "SELECT count(*) FROM jobs WHERE retried_from IS NOT NULL OR cloned_from IS NOT NULL"
        assert await db.fetchval(made) == 0
        assert await db.fetchval("SELECT status FROM jobs WHERE id = $1", uuid.UUID(a_id)) == (
            "queued"
        )
        status, seen = await call(s, "GET", f"{base}/v1/jobs/{a_id}", tokens["view"], stats)
        assert status == 200 and seen["owner"] == "alice"

        # -- workflows: manage_jobs writes and runs, view_jobs reads, a plain token neither --
        flow = {"name": "acl", "steps": [{"name": "a", "jobType": "faults.work"}]}
        status, made = await call(s, "POST", f"{base}/v1/workflows", tokens["alice"], stats, flow)
        assert status == 403, made
        status, made = await call(s, "POST", f"{base}/v1/workflows", tokens["manage"], stats, flow)
        assert status == 201, made
        runs = f"{base}/v1/workflows/{made['id']}/runs"
        status, _ = await call(s, "POST", runs, tokens["view"], stats, {})
        assert status == 403
        status, started = await call(s, "POST", runs, tokens["manage"], stats, {})
        assert status == 201, started
        run_url = f"{base}/v1/workflows/runs/{started['runId']}"
        for name, expected in (("alice", 403), ("view", 200), ("manage", 200)):
            status, _ = await call(s, "GET", run_url, tokens[name], stats)
            assert status == expected, (name, status)
        status, _ = await call(s, "POST", f"{run_url}/cancel", tokens["view"], stats)
        assert status == 403

        # -- the outbound capability: only outbound (or manage_jobs) tokens submit call.api --
        call_api = {"definitionKey": "call.api", "params": {"endpoint": "http://x.invalid/"}}
        for name, expected in (("alice", 403), ("view", 403), ("outbound", 201), ("manage", 201)):
            status, reply = await call(s, "POST", f"{base}/v1/jobs", tokens[name], stats, call_api)
            assert status == expected, (name, status, reply)
            if expected == 403:
                assert reply["code"] == "forbidden" and reply["capability"] == "outbound"

        # -- every route x every credential ---------------------------------------------
        status, doc = await call(s, "GET", f"{base}/openapi.json", None, stats)
        assert status == 200
        routes = all_routes("all")  # the API serves every compatibility system
        assert len(routes) >= 20
        checked = 0
        for route in routes:
            op_path = PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)
            template = op_path.replace("{id}", str(uuid.uuid4())).replace("{name}", "nope")
            template = template.replace("{jobId}", str(uuid.uuid4()))
            template = template.replace("{runId}", str(uuid.uuid4())).replace("{version}", "1")
            template = PARAM.sub("nope", template)  # a compatibility route's own names
            assert "{" not in template, f"unhandled path variable in {route.path}"
            op = doc["paths"][op_path][route.method.lower()]
            assert op["x-scope"] == route.scope, route.path
            documented = {int(k) for k in op["responses"]}
            body = request_body(route)
            url = f"{base}{template}"
            for token in (None, "not-a-real-token"):
                status, reply = await call(s, route.method, url, token, stats, body)
                if route.scope == "public":
                    assert status not in (401, 403), (route.method, route.path, status)
                else:
                    assert status == 401, (route.method, route.path, token, status)
                    assert route.render_error or reply["code"] == "unauthorized"
                checked += 1
            for name, rank in TOKEN_RANK.items():
                status, reply = await call(s, route.method, url, tokens[name], stats, body)
                where = (route.method, route.path, name, status, reply)
                if rank < RANK[route.scope]:
                    assert status == 403, where
                    assert route.render_error or reply["code"] == "forbidden"
                else:
                    assert status not in (401, 403), where
                    assert status < 500, where
                assert status in documented, where
                checked += 1

    # -- tokens are never stored or logged in plain text -----------------------------------
    tables = [
        r["tablename"]
        for r in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ]
    for table in tables:
        dump = "\n".join(r[0] for r in await db.fetch(f'SELECT t::text FROM "{table}" t'))
        for name, plaintext in tokens.items():
            assert plaintext not in dump, f"token {name} stored in plain text in {table}"
    api.signal(15)
    api.wait(15)
    out = api.output()
    assert '"status": 401' in out or '"status":401' in out  # the access log was on
    for name, plaintext in tokens.items():
        assert plaintext not in out, f"token {name} appears in the API log"
    report.http_5xx = stats.count_5xx
    credentials = 2 + len(TOKEN_RANK)
    report.note = f"{len(routes)} routes x {credentials} credentials = {checked} checked requests"
    assert stats.count_5xx == 0, stats.server_errors
