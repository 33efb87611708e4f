"""The connection types every `jobserver/db` function accepts.

`Conn` is one session: a plain connection (`connect`) or a pooled one (`pool.acquire()`
yields a proxy, a different class to the type checker). `ConnOrPool` adds the pool itself, for
single statements that need no session of their own.
"""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy
ConnOrPool: TypeAlias = asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool
