"""`http.request` with templated params and data sources, in a worker, against real loopback
receivers and a real source table (the test database, read through SOURCES_DATABASE_URL's
driver)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from jobserver.sources import shared
from tests.conftest import PEOPLE_USER
from tests.worker.conftest import job, submit
from tests.worker.http_receiver import Answer, Receiver, attempt_count, finished, serve_all

USER = PEOPLE_USER


@pytest.fixture
def no_sources() -> Iterator[None]:
    shared.configure(None)
    yield


async def test_sources_macros_and_params_are_rendered_per_run(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver, people: None
) -> None:
    url = receiver.tell("/hook")
    params = {
        "url": url + "/{{params.payload.kind}}",
        "method": "POST",
        "headers": {"X-Request-Id": "{{$uuid}}", "X-User": "{{user.email}}"},
        "payload": {
            "kind": "welcome",
            "user": "{{user}}",
            "message": "Hello {{user.name}} ({{user.contact.phone}})!",
            "job": "{{job.id}}",
            "attempt": "{{job.attempt}}",
            "at": "{{$timestamp}}",
        },
        "useSources": True,
        "sources": {"user": USER},
    }
    [a, b] = await submit(db, "http.request", [params, params])
    await start_worker()
    ra, rb = await finished(db, a), await finished(db, b)
    assert ra["status"] == rb["status"] == "succeeded", (ra["last_error"], rb["last_error"])
    got = {json.loads(s.body)["job"]: s for s in receiver.at("/hook/welcome")}
    assert set(got) == {str(a), str(b)}
    sent = json.loads(got[str(a)].body)
    assert sent["user"] == {
        "name": "John",
        "email": "john@example.com",
        "contact": {"phone": "555-0100"},
    }
    assert sent["message"] == "Hello John (555-0100)!" and sent["attempt"] == 1
    assert sent["at"].endswith("Z") and "{{" not in got[str(a)].body.decode()
    assert got[str(a)].headers["X-User"] == "john@example.com"
    ids = {s.headers["X-Request-ID"] for s in got.values()}  # as aiohttp spells it
    assert len(ids) == 2  # $uuid is fresh per run
    # the record shows the rendered request; the stored params stay as submitted
    assert json.loads(ra["result"]["request"]["body"])["message"] == "Hello John (555-0100)!"
    assert ra["params"]["payload"]["message"] == "Hello {{user.name}} ({{user.contact.phone}})!"


async def test_a_missing_path_in_source_data_fails_for_good_naming_it(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver, people: None
) -> None:
    url = receiver.tell("/hook")
    params = {"url": url, "payload": {"x": "{{user.nothing}}"}, "useSources": True}
    params["sources"] = {"user": USER}
    [j] = await submit(db, "http.request", [params])
    await start_worker()
    row = await finished(db, j)
    assert row["status"] == "failed" and row["attempt"] == 1
    assert "template_error" in row["last_error"] and "{{user.nothing}}" in row["last_error"]
    assert "payload.x" in row["last_error"]
    assert receiver.at("/hook") == []


async def test_a_single_source_that_finds_nothing_fails_the_attempt(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver, people: None
) -> None:
    url = receiver.tell("/hook")
    nobody = {**USER, "match": {"name": "Nobody"}}
    params = {"url": url, "payload": "{{user}}", "useSources": True, "sources": {"user": nobody}}
    [j] = await submit(db, "http.request", [params], max_attempts=2)
    await start_worker()
    row = await finished(db, j)
    assert row["status"] == "failed" and "sources.user" in row["last_error"]
    assert await attempt_count(db, j) == 2  # retried: the data may be there next time
    assert receiver.at("/hook") == []


async def test_sources_without_a_source_database_fail_clearly(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver, no_sources: None
) -> None:
    url = receiver.tell("/hook")
    params = {"url": url, "payload": "{{user}}", "useSources": True, "sources": {"user": USER}}
    [j] = await submit(db, "http.request", [params], max_attempts=1)
    await start_worker()
    row = await finished(db, j)
    assert row["status"] == "failed" and "SOURCES_DATABASE_URL is not set" in row["last_error"]


async def test_a_rendered_header_cannot_inject_another(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver, people: None
) -> None:
    url = receiver.tell("/hook")
    eve = {**USER, "match": {"name": "Eve"}}
    params = {
        "url": url,
        "headers": {"X-User": "{{user.email}}"},
        "useSources": True,
        "sources": {"user": eve},
    }
    [j] = await submit(db, "http.request", [params])
    await start_worker()
    row = await finished(db, j)
    assert row["status"] == "failed" and row["attempt"] == 1
    assert "bad_header" in row["last_error"] and "headers.X-User" in row["last_error"]
    assert receiver.at("/hook") == []


async def _other_origin() -> tuple[web.AppRunner, str, list[dict[str, str]]]:
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text="ok")

    runner, base = await serve_all(handle)
    return runner, base, seen


async def test_a_redirect_to_another_origin_drops_every_secret_header(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver
) -> None:
    runner, other, seen = await _other_origin()
    try:
        url = receiver.tell("/move", Answer(302, "", headers={"Location": f"{other}/landed"}))
        headers = {
            "Authorization": "Bearer a",
            "X-Api-Key": "k",
            "X-Custom-Secret": "c",
            "X-Plain": "p",
        }
        params = {"url": url, "headers": headers, "secretHeaders": ["X-Custom-Secret"]}
        [j] = await submit(db, "http.request", [params])
        await start_worker()
        row = await finished(db, j)
        assert row["status"] == "succeeded", row["last_error"]
        assert receiver.at("/move")[0].headers["X-Api-Key"] == "k"  # the first origin got it
        [landed] = seen
        assert landed["X-Plain"] == "p"
        for name in ("Authorization", "X-Api-Key", "X-Custom-Secret"):
            assert name not in landed, name
    finally:
        await runner.cleanup()


async def test_run_info_names_the_job(
    db: asyncpg.Pool, start_worker: Any, receiver: Receiver
) -> None:
    url = receiver.tell("/hook")
    params = {"url": url, "payload": {"id": "{{job.id}}", "queue": "{{job.queue}}"}}
    [j] = await submit(db, "http.request", [params], queue="hooks")
    await start_worker(queues=["hooks"])
    row = await finished(db, j)
    assert row["status"] == "succeeded", row["last_error"]
    [seen] = receiver.at("/hook")
    assert json.loads(seen.body) == {"id": str(j), "queue": "hooks"}
    assert isinstance(uuid.UUID(str(j)), uuid.UUID) and (await job(db, j))["attempt"] == 1
