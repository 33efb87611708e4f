"""The `jobserver.db.drivers` connectors for psycopg 3 connections, sync and async.

Statements run on psycopg's raw cursors, which take PostgreSQL's own `$n` placeholders: the
text of `jobserver/db/` is sent as it is, with no rewriting. Rows come back as
`drivers.Row`, whatever row factory the caller's connection has; jsonb arrives decoded
(psycopg's own loaders). Imported only when a psycopg connection is passed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from jobserver.db.drivers import Driver, Row, row_index


def _rows(cursor: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> Callable[[Sequence[Any]], Row]:
    """A psycopg row factory making `Row`s."""
    index = row_index([c.name for c in cursor.description or ()])
    return lambda values: Row(index, values)


class PsycopgDriver:
    """A sync `psycopg.Connection`; its calls block (`drivers.run_blocking`)."""

    blocking = True

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        with psycopg.RawCursor(self._conn, row_factory=_rows) as cur:
            cur.execute(query, args or None)
            return list(cur.fetchall())

    async def fetchrow(self, query: str, *args: Any) -> Any:
        rows = await self.fetch(query, *args)
        return rows[0] if rows else None

    async def fetchval(self, query: str, *args: Any) -> Any:
        row = await self.fetchrow(query, *args)
        return None if row is None else row[0]

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        if self._conn.info.transaction_status != TransactionStatus.INTRANS:
            yield
            return
        with self._conn.transaction():  # inside a transaction: a savepoint
            yield


class AsyncPsycopgDriver:
    """A `psycopg.AsyncConnection`."""

    blocking = False

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        async with psycopg.AsyncRawCursor(self._conn, row_factory=_rows) as cur:
            await cur.execute(query, args or None)
            return list(await cur.fetchall())

    async def fetchrow(self, query: str, *args: Any) -> Any:
        rows = await self.fetch(query, *args)
        return rows[0] if rows else None

    async def fetchval(self, query: str, *args: Any) -> Any:
        row = await self.fetchrow(query, *args)
        return None if row is None else row[0]

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        if self._conn.info.transaction_status != TransactionStatus.INTRANS:
            yield
            return
        async with self._conn.transaction():  # inside a transaction: a savepoint
            yield


def adapt(conn: object) -> Driver | None:
    """The driver for a psycopg connection; None for anything else."""
    if not hasattr(psycopg, "RawCursor"):
        raise RuntimeError(f"enqueue needs psycopg 3.2 or later (found {psycopg.__version__})")
    if isinstance(conn, psycopg.AsyncConnection):
        return AsyncPsycopgDriver(conn)
    if isinstance(conn, psycopg.Connection):
        return PsycopgDriver(conn)
    return None
