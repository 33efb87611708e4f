"""Rendering templated params for a run against a real source database."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest

from jobserver.rendering import RunInfo, render_for_run, render_preview
from jobserver.sources import SourceError, open_driver
from jobserver.sources.driver import SourceDriver
from jobserver.templating import Macros, TemplateError

KEYS = ("url", "payload")
FIXED = dt.datetime(2026, 12, 2, 1, 2, 3, tzinfo=dt.UTC)


@pytest.fixture
async def driver(pool: asyncpg.Pool, database_url: str) -> AsyncIterator[SourceDriver]:
    await pool.execute(
        """
        CREATE TABLE people (name text, email text, contact jsonb, age int);
        INSERT INTO people VALUES ('John', 'john@example.com', '{"phone": "555-1"}', 40),
                                  ('Ann', 'ann@example.com', '{"phone": "555-2"}', 30);
        """
    )
    d = open_driver(database_url)
    yield d
    await d.close()


def sources() -> dict[str, object]:
    return {
        "user": {
            "collection": "people",
            "match": {"name": "John"},
            "fields": ["name", "email", "contact:phone"],
            "single": True,
        },
        "people": {"collection": "people", "fields": ["name"], "sort": ["age"], "limit": 5},
    }


async def test_sources_macros_params_and_run_info_are_rendered(driver: SourceDriver) -> None:
    params = {
        "url": "https://example.com/{{params.payload.kind}}/{{job.id}}",
        "payload": {
            "kind": "welcome",
            "user": "{{user}}",
            "message": "Hello {{user.name}} ({{user.contact.phone}})!",
            "everyone": "{{people}}",
            "at": "{{$timestamp}}",
            "day": "{{$today}}",
            "attempt": "{{job.attempt}}",
            "schedule": "{{schedule.name}}",
        },
        "useSources": True,
        "sources": sources(),
        "untouched": "{{not.rendered}}",
    }
    run = RunInfo(job_id="j-1", attempt=2, schedule_name="hourly", scheduled_for=FIXED)
    got = await render_for_run(
        params, KEYS, run=run, driver=driver, macros=Macros(clock=lambda: FIXED)
    )
    assert got["url"] == "https://example.com/welcome/j-1"
    assert got["payload"] == {
        "kind": "welcome",
        "user": {"name": "John", "email": "john@example.com", "contact": {"phone": "555-1"}},
        "message": "Hello John (555-1)!",
        "everyone": [{"name": "Ann"}, {"name": "John"}],
        "at": "2026-12-02T01:02:03.000Z",
        "day": "2026-12-02",
        "attempt": 2,
        "schedule": "hourly",
    }
    assert got["untouched"] == "{{not.rendered}}" and got["sources"] == params["sources"]


async def test_each_run_renders_afresh(driver: SourceDriver, pool: asyncpg.Pool) -> None:
    params = {"payload": {"id": "{{$uuid}}", "email": "{{user.email}}"}, "useSources": True}
    params["sources"] = {"user": sources()["user"]}
    macros = Macros(rng=random.Random(7))
    first = await render_for_run(params, KEYS, run=RunInfo(), driver=driver, macros=macros)
    await pool.execute("UPDATE people SET email = 'new@example.com' WHERE name = 'John'")
    second = await render_for_run(params, KEYS, run=RunInfo(), driver=driver, macros=macros)
    assert first["payload"]["id"] != second["payload"]["id"]
    assert (first["payload"]["email"], second["payload"]["email"]) == (
        "john@example.com",
        "new@example.com",
    )


async def test_an_empty_single_source_fails_the_run(driver: SourceDriver) -> None:
    params = {
        "payload": "{{user}}",
        "useSources": True,
        "sources": {"user": {"collection": "people", "match": {"name": "Nobody"}, "single": True}},
    }
    with pytest.raises(SourceError) as caught:
        await render_for_run(params, KEYS, run=RunInfo(), driver=driver)
    assert "sources.user" in str(caught.value)


async def test_a_missing_source_path_names_the_placeholder(driver: SourceDriver) -> None:
    params = {"payload": {"x": "{{user.nothing}}"}, "useSources": True}
    params["sources"] = {"user": sources()["user"]}
    with pytest.raises(TemplateError) as caught:
        await render_for_run(params, KEYS, run=RunInfo(), driver=driver)
    assert "{{user.nothing}}" in str(caught.value) and "payload.x" in str(caught.value)


async def test_plain_params_fetch_nothing_and_load_no_run_info() -> None:
    class Refuses:
        async def fetch(self, spec: object) -> object:
            raise AssertionError("fetched")

        async def close(self) -> None:
            return None

    async def no_run_info() -> RunInfo:
        raise AssertionError("loaded run info")

    params = {"url": "https://x", "payload": {"a": "{{$randomInt}}"}}
    got = await render_for_run(params, KEYS, run=no_run_info, driver=Refuses())
    assert 0 <= got["payload"]["a"] <= 999


async def test_preview_renders_without_a_job(driver: SourceDriver) -> None:
    params = {"payload": {"user": "{{user}}", "job": "{{job.id}}"}, "useSources": True}
    params["sources"] = {"user": sources()["user"]}
    got = await render_preview(params, KEYS, driver=driver, event="signup")
    assert got["payload"]["user"]["name"] == "John" and got["payload"]["job"] is None
