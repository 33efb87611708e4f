"""Thin connectors that let the one job write path run on the caller's own connection.

`adapt(conn)` wraps a connection the caller holds in a `Driver`: the three `Queries` reads
(`fetch`, `fetchrow`, `fetchval`, asyncpg-style `$n` placeholders, rows indexed by name and
by position) plus `savepoint()`, which guards one statement inside the caller's transaction
without ending it. Drivers know nothing of jobs: the statements are those of
`jobserver/db/` (definitions, credentials, templates, the job insert), run unchanged.

Connections taken (psycopg and SQLAlchemy are imported only when the caller passes one):

| connection | driver | blocking |
| --- | --- | --- |
| `asyncpg.Connection`, a pooled one | `AsyncpgDriver` | no |
| `psycopg.AsyncConnection` | `driver_psycopg.AsyncPsycopgDriver` | no |
| `psycopg.Connection` | `driver_psycopg.PsycopgDriver` | yes |
| SQLAlchemy `AsyncSession`, `AsyncConnection` | `driver_sqlalchemy.AsyncSqlAlchemyDriver` | no |
| SQLAlchemy `Session`, `Connection` | `driver_sqlalchemy.SqlAlchemyDriver` | yes |

(A scoped session, sync or async, stands for its current session.)

A blocking driver's methods are coroutines that never suspend: the code above them is
written once, as async code, and `run_blocking` drives it to its end without an event loop
(for sync callers). Code that awaits real I/O of its own there (a `check_stored` hook that
sleeps) is refused with a `RuntimeError` rather than run half-way.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from jobserver.db.conn import Queries

T = TypeVar("T")
UNIQUE_VIOLATION = "23505"


class Driver(Queries, Protocol):
    """A caller's connection as the write path uses it (see the module doc)."""

    @property
    def blocking(self) -> bool:
        """Its calls block (a sync connection): run the work with `run_blocking`."""
        ...

    def savepoint(self) -> contextlib.AbstractAsyncContextManager[None]:
        """A savepoint inside the caller's transaction (nothing outside one): an error in the
        block rolls back to it and is raised, the transaction stays usable."""
        ...


class Row:
    """A result row read as an `asyncpg.Record` reads: `row["name"]`, `row[0]`, `get`,
    `keys`, `values`, `items`; iterating yields the values."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: Sequence[Any]) -> None:
        self._index = index
        self._values = tuple(values)

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, int):
            return self._values[key]
        return self._values[self._index[key]]

    def get(self, key: str, default: Any = None) -> Any:
        i = self._index.get(key)
        return default if i is None else self._values[i]

    def keys(self) -> Iterator[str]:
        return iter(self._index)

    def values(self) -> Iterator[Any]:
        return iter(self._values)

    def items(self) -> Iterator[tuple[str, Any]]:
        return ((name, self._values[i]) for name, i in self._index.items())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(self.items())!r})"


def row_index(names: Sequence[str]) -> dict[str, int]:
    """Column name -> position (the first of repeated names, as asyncpg answers)."""
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    return index


class AsyncpgDriver:
    """An asyncpg connection as it is: the statements are already its own."""

    blocking = False

    def __init__(self, conn: asyncpg.Connection | PoolConnectionProxy) -> None:
        self._conn = conn

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        return await self._conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Any:
        return await self._conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._conn.fetchval(query, *args)

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        if not self._conn.is_in_transaction():
            yield
            return
        async with self._conn.transaction():  # nested: a savepoint
            yield


def adapt(conn: object) -> Driver:
    """The driver for `conn`; TypeError naming what is taken for anything else. psycopg and
    SQLAlchemy are looked for among the modules already imported: a connection of theirs
    cannot exist otherwise, and neither is imported for an asyncpg caller."""
    if isinstance(conn, asyncpg.Connection | PoolConnectionProxy):
        return AsyncpgDriver(conn)
    if "psycopg" in sys.modules:
        from jobserver.db import driver_psycopg

        found = driver_psycopg.adapt(conn)
        if found is not None:
            return found
    if "sqlalchemy" in sys.modules:
        from jobserver.db import driver_sqlalchemy

        found = driver_sqlalchemy.adapt(conn)
        if found is not None:
            return found
    raise TypeError(
        f"cannot enqueue through a {type(conn).__module__}.{type(conn).__qualname__}: pass an"
        " asyncpg connection, a psycopg 3 Connection or AsyncConnection, or a SQLAlchemy"
        " Session, AsyncSession, Connection or AsyncConnection"
    )


def run_blocking(work: Coroutine[Any, Any, T]) -> T:
    """The result of `work`, run on a blocking driver: its coroutine never suspends, so one
    `send` runs it to its end, without an event loop (see the module doc)."""
    try:
        work.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    work.close()
    raise RuntimeError(
        "enqueue on a sync connection awaited something that needs an event loop (a"
        " definition's check_stored hook doing I/O of its own?): use an async connection"
    )


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a database error from any of the drivers: asyncpg's and psycopg's
    errors carry it, SQLAlchemy wraps theirs (`orig`, `__cause__`)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        for attribute in ("sqlstate", "pgcode"):
            code = getattr(e, attribute, None)
            if isinstance(code, str):
                return code
        orig = getattr(e, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None, e.__cause__]
    return None


def is_unique_violation(error: BaseException) -> bool:
    return sqlstate(error) == UNIQUE_VIOLATION
