"""The PostgreSQL source driver against a real database: shapes, catalog checks, read-only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from jobserver.sources import SourceError, fetch_all, open_driver, parse_sources
from jobserver.sources.driver import UnavailableDriver
from jobserver.sources.postgres import PostgresSourceDriver


@pytest.fixture
async def driver(pool: asyncpg.Pool, database_url: str) -> AsyncIterator[PostgresSourceDriver]:
    await pool.execute(
        """
        CREATE TABLE users (
            id int PRIMARY KEY, name text, email text, age int, score numeric,
            created_at timestamptz, contact jsonb
        );
        INSERT INTO users VALUES
          (1, 'John', 'john@example.com', 40, 1.5, '2024-05-01 12:00:00+00',
           '{"phone": "555-1", "address": {"city": "Oslo"}, "city": "Oslo"}'),
          (2, 'Ann', 'ann@example.com', 30, 2, '2024-05-02 12:00:00+00',
           '{"phone": "555-2", "city": "Bergen"}'),
          (3, 'O''Brien', 'ob@example.com', 50, null, null, '{"city": "Oslo"}');
        CREATE TABLE x (id int);
        """
    )
    d = open_driver(database_url)
    assert isinstance(d, PostgresSourceDriver)
    yield d
    await d.close()


async def fetch(driver: PostgresSourceDriver, body: dict[str, Any]) -> Any:
    return await driver.fetch(parse_sources({"user": body})["user"])


async def test_the_issue_example_returns_the_nested_shape(driver: PostgresSourceDriver) -> None:
    got = await fetch(
        driver,
        {
            "collection": "users",
            "match": {"name": "John"},
            "fields": ["name", "email", "contact:phone,address"],
            "single": True,
        },
    )
    assert got == {
        "name": "John",
        "email": "john@example.com",
        "contact": {"phone": "555-1", "address": {"city": "Oslo"}},
    }


async def test_arrays_sort_and_limit(driver: PostgresSourceDriver) -> None:
    got = await fetch(driver, {"collection": "users", "fields": ["name"], "sort": ["-age"]})
    assert [r["name"] for r in got] == ["O'Brien", "John", "Ann"]
    got = await fetch(
        driver,
        {
            "collection": "public.users",
            "fields": ["name", "age"],
            "sort": [{"field": "age", "order": "asc"}],
            "limit": 2,
        },
    )
    assert got == [{"name": "Ann", "age": 30}, {"name": "John", "age": 40}]


async def test_all_columns_as_json(driver: PostgresSourceDriver) -> None:
    got = await fetch(driver, {"collection": "users", "match": {"id": 1}, "single": True})
    assert got["created_at"] == "2024-05-01T12:00:00+00:00"
    assert got["score"] == 1.5 and got["age"] == 40
    assert got["contact"]["phone"] == "555-1"


async def test_match_on_a_jsonb_key(driver: PostgresSourceDriver) -> None:
    got = await fetch(
        driver,
        {
            "collection": "users",
            "match": {"contact.city": "Oslo"},
            "fields": ["id"],
            "sort": ["id"],
        },
    )
    assert got == [{"id": 1}, {"id": 3}]


async def test_values_with_quotes_are_just_values(
    driver: PostgresSourceDriver, pool: asyncpg.Pool
) -> None:
    got = await fetch(driver, {"collection": "users", "match": {"name": "O'Brien"}, "single": True})
    assert got["id"] == 3
    got = await fetch(driver, {"collection": "users", "match": {"name": "x'; drop table x; --"}})
    assert got == []
    assert await pool.fetchval("SELECT to_regclass('x') IS NOT NULL")


@pytest.mark.parametrize(
    ("body", "path", "named"),
    [
        ({"collection": "nope"}, "sources.user.collection", "nope"),
        ({"collection": "users; drop table x"}, "sources.user.collection", "users; drop table x"),
        (
            {"collection": "users", "fields": ["name", 'name" --']},
            "sources.user.fields[1]",
            'name" --',
        ),
        ({"collection": "users", "fields": ["nope"]}, "sources.user.fields[0]", "nope"),
        ({"collection": "users", "match": {"nope": 1}}, "sources.user.match.nope", "nope"),
        ({"collection": "users", "sort": ["-nope"]}, "sources.user.sort[0]", "nope"),
        ({"collection": "users", "fields": ["name:a"]}, "sources.user.fields[0]", "name"),
    ],
)
async def test_unknown_names_are_refused_before_any_query(
    driver: PostgresSourceDriver, pool: asyncpg.Pool, body: dict[str, Any], path: str, named: str
) -> None:
    with pytest.raises(SourceError) as e:
        await fetch(driver, body)
    assert e.value.path == path and repr(named) in e.value.message
    assert await pool.fetchval("SELECT to_regclass('x') IS NOT NULL")
    assert await pool.fetchval("SELECT count(*) FROM users") == 3


async def test_single_with_no_row_fails_clearly(driver: PostgresSourceDriver) -> None:
    with pytest.raises(SourceError) as e:
        await fetch(driver, {"collection": "users", "match": {"name": "Zed"}, "single": True})
    assert e.value.message == 'source \'user\' found no row in users matching {"name": "Zed"}'


async def test_a_value_that_does_not_fit_its_column(driver: PostgresSourceDriver) -> None:
    with pytest.raises(SourceError) as e:
        await fetch(driver, {"collection": "users", "match": {"age": "old"}})
    assert e.value.path == "sources.user.match"


async def test_the_session_is_read_only(driver: PostgresSourceDriver) -> None:
    p = await driver.pool()
    assert await p.fetchval("SHOW default_transaction_read_only") == "on"
    assert await p.fetchval("SHOW statement_timeout") == "5s"
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await p.execute("DELETE FROM users")


async def test_fetch_all_and_an_unset_url(driver: PostgresSourceDriver) -> None:
    specs = parse_sources(
        {
            "john": {"collection": "users", "match": {"id": 1}, "fields": ["name"], "single": True},
            "all": {"collection": "users", "fields": ["id"], "sort": ["id"]},
        }
    )
    assert await fetch_all(specs, driver) == {
        "john": {"name": "John"},
        "all": [{"id": 1}, {"id": 2}, {"id": 3}],
    }
    none = open_driver(None)
    assert isinstance(none, UnavailableDriver)
    with pytest.raises(SourceError, match="SOURCES_DATABASE_URL is not set"):
        await fetch_all(specs, none)
