"""The connection types every `jobserver/db` function accepts.

`Conn` is one session: a plain connection (`connect`) or a pooled one (`pool.acquire()`
yields a proxy, a different class to the type checker). `ConnOrPool` adds the pool itself, for
single statements that need no session of their own. `Queries` is the part of either that the
one job write path reads and inserts through (see below).
"""

from __future__ import annotations

from typing import Any, Protocol, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy
ConnOrPool: TypeAlias = asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool


class Queries(Protocol):
    """What the submission reads and the job insert ask of a connection: asyncpg's
    connections and pools have it as they are; `jobserver.db.drivers` adapts a psycopg 3
    connection or a SQLAlchemy session to it, so both run the very same statements (`$n`
    placeholders). Rows index like `asyncpg.Record`: by column name and by position."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...
    async def fetchrow(self, query: str, *args: Any) -> Any: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
