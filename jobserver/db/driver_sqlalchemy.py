"""The `jobserver.db.drivers` connectors for SQLAlchemy: `Session` and `Connection` (sync),
`AsyncSession` and `AsyncConnection`.

A statement runs through SQLAlchemy itself (`exec_driver_sql` on the session's connection),
so it joins the transaction SQLAlchemy began (or begins it, as any statement would) and
passes its events and logging. The `$n` placeholders of `jobserver/db/` are rewritten to
the DBAPI's paramstyle only: `numeric_dollar` (asyncpg) as they are, `pyformat` (psycopg,
psycopg2) as `%(pN)s`, `format` (pg8000) as `%s`; `%` signs in the text are doubled for the
last two. Savepoints are SQLAlchemy's `begin_nested()`. Imported only when a SQLAlchemy
object is passed.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.orm import Session, scoped_session

from jobserver.db.drivers import Driver, Row, row_index

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

_PLACEHOLDER = re.compile(r"\$(\d+)")
Params = tuple[Any, ...] | dict[str, Any]


def driver_sql(paramstyle: str, query: str, args: Sequence[Any]) -> tuple[str, Params]:
    """`query` and `args` in the DBAPI's `paramstyle` (see the module doc)."""
    if paramstyle == "numeric_dollar" or not args:
        return query, tuple(args)
    if paramstyle == "pyformat":
        text = _PLACEHOLDER.sub(r"%(p\1)s", query.replace("%", "%%"))
        return text, {f"p{i}": v for i, v in enumerate(args, 1)}
    if paramstyle == "format":
        order = [int(m[1]) for m in _PLACEHOLDER.finditer(query)]
        text = _PLACEHOLDER.sub("%s", query.replace("%", "%%"))
        return text, tuple(args[n - 1] for n in order)
    raise TypeError(f"cannot enqueue through a DBAPI of paramstyle {paramstyle!r}")


def _rows(result: CursorResult[Any]) -> list[Any]:
    index = row_index(list(result.keys()))
    return [Row(index, tuple(r)) for r in result]


class SqlAlchemyDriver:
    """A sync `Session` or `Connection`; its calls block (`drivers.run_blocking`)."""

    blocking = True

    def __init__(self, target: Session | Connection) -> None:
        self._target = target

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        target = self._target
        conn = target.connection() if isinstance(target, Session) else target
        text, params = driver_sql(conn.dialect.paramstyle, query, args)
        return _rows(conn.exec_driver_sql(text, params))

    async def fetchrow(self, query: str, *args: Any) -> Any:
        rows = await self.fetch(query, *args)
        return rows[0] if rows else None

    async def fetchval(self, query: str, *args: Any) -> Any:
        row = await self.fetchrow(query, *args)
        return None if row is None else row[0]

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        with self._target.begin_nested():
            yield


class AsyncSqlAlchemyDriver:
    """An `AsyncSession` or `AsyncConnection`."""

    blocking = False

    def __init__(self, target: AsyncSession | AsyncConnection) -> None:
        self._target = target

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        from sqlalchemy.ext.asyncio import AsyncSession

        target = self._target
        conn = await target.connection() if isinstance(target, AsyncSession) else target
        text, params = driver_sql(conn.dialect.paramstyle, query, args)
        return _rows(await conn.exec_driver_sql(text, params))

    async def fetchrow(self, query: str, *args: Any) -> Any:
        rows = await self.fetch(query, *args)
        return rows[0] if rows else None

    async def fetchval(self, query: str, *args: Any) -> Any:
        row = await self.fetchrow(query, *args)
        return None if row is None else row[0]

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        async with self._target.begin_nested():
            yield


def adapt(target: object) -> Driver | None:
    """The driver for a SQLAlchemy session or connection; None for anything else. The
    asyncio extension (which needs greenlet) is looked at only when it is imported. A
    scoped session stands for its current session."""
    if isinstance(target, scoped_session):
        target = target()
    if isinstance(target, Session | Connection):
        return SqlAlchemyDriver(target)
    if "sqlalchemy.ext.asyncio" in sys.modules:
        from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_scoped_session

        if isinstance(target, async_scoped_session):
            target = target()
        if isinstance(target, AsyncSession | AsyncConnection):
            return AsyncSqlAlchemyDriver(target)
    return None
