"""Submission checks only the database can answer: a definition's `check_stored` hook.

`check_stored(pool, info, params, where)` awaits the hook of the definition (when this process
has its code and the code has one; for every other definition it costs one attribute test) and
raises the first problem as a `RuleError` naming the field inside `where` (`params.template`,
`jobs[3].params.template`), which the API answers as a 422 like a schema error. A database
that is down or busy is the API's usual 503; a hook that fails otherwise (a bug) refuses the
params instead of a 500.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import asyncpg

from jobserver.api.errors import database_unavailable
from jobserver.core.errors import RuleError, at, format_path
from jobserver.db.conn import ConnOrPool, Queries
from jobserver.db.pool import PoolBusy
from jobserver.registry import StoredCheck

log = logging.getLogger(__name__)


class HasStoredCheck(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def check_stored(self) -> StoredCheck | None: ...


async def check_stored(
    pool: ConnOrPool | Queries, info: HasStoredCheck, params: Any, where: str = ""
) -> None:
    hook = info.check_stored
    if hook is None:
        return
    try:
        problems = await hook(params, pool)
    except Exception as e:
        if database_unavailable(e) or isinstance(e, PoolBusy | asyncpg.QueryCanceledError):
            raise  # the API's 503s
        log.exception("the stored check of %s@%s failed", info.key, info.version)
        message = "cannot be checked: the definition's check failed"
        raise RuleError(at(where, "params"), message) from None
    if problems:
        path, message = problems[0]
        raise RuleError(format_path(tuple(path), at(where, "params")), message)
