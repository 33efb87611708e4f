"""`jobserver.db.drivers`: the pieces that need no database (driving a blocking driver's
work without an event loop, placeholders in each DBAPI paramstyle, SQLSTATEs through the
drivers' wrappers, what `adapt` refuses)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from jobserver.db.driver_sqlalchemy import driver_sql
from jobserver.db.drivers import Row, adapt, is_unique_violation, row_index, run_blocking


async def _returns(value: int) -> int:
    return value


async def _sleeps() -> int:
    await asyncio.sleep(0)
    return 1


def test_blocking_work_runs_to_its_end_without_an_event_loop() -> None:
    assert run_blocking(_returns(7)) == 7


def test_blocking_work_that_awaits_real_io_is_refused() -> None:
    with pytest.raises(RuntimeError, match="needs an event loop"):
        run_blocking(_sleeps())


def test_placeholders_are_rewritten_to_the_dbapi_paramstyle() -> None:
    sql = "SELECT $2::int, $1, $2, '100%'"
    assert driver_sql("numeric_dollar", sql, (1, 2)) == (sql, (1, 2))
    assert driver_sql("pyformat", sql, (1, 2)) == (
        "SELECT %(p2)s::int, %(p1)s, %(p2)s, '100%%'",
        {"p1": 1, "p2": 2},
    )
    assert driver_sql("format", sql, (1, 2)) == ("SELECT %s::int, %s, %s, '100%%'", (2, 1, 2))
    assert driver_sql("pyformat", "SELECT '100%'", ()) == ("SELECT '100%'", ())
    with pytest.raises(TypeError, match="qmark"):
        driver_sql("qmark", sql, (1, 2))


def test_a_unique_violation_is_recognised_through_wrappers() -> None:
    class Wrapped(Exception):
        def __init__(self, orig: BaseException) -> None:
            self.orig = orig

    violation = asyncpg.UniqueViolationError("duplicate key")
    assert is_unique_violation(violation)
    assert is_unique_violation(Wrapped(violation))
    try:
        raise RuntimeError("wrapped") from violation
    except RuntimeError as e:
        assert is_unique_violation(e)
    assert not is_unique_violation(asyncpg.ForeignKeyViolationError("fk"))
    assert not is_unique_violation(ValueError("no sqlstate"))


def test_rows_read_as_asyncpg_records_do() -> None:
    row = Row(row_index(["id", "name", "id"]), (1, "a", 2))
    assert (row["id"], row[2], row.get("name"), row.get("x", 0)) == (1, 2, "a", 0)
    assert dict(row.items()) == {"id": 1, "name": "a"}
    assert list(row) == [1, "a", 2]


def test_anything_else_is_refused_naming_what_is_taken() -> None:
    with pytest.raises(TypeError, match="psycopg 3 Connection"):
        adapt(object())
