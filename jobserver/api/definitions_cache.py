"""Registered definitions, read from `job_definitions` and kept in-process for a few seconds.

Submissions look definitions up on every job, so the whole (small) table is loaded in one query
and refreshed after `ttl` seconds; a miss triggers at most one early refresh per second, so a
definition registered a moment ago is found. Each entry carries its compiled params checker
(it satisfies `jobserver.core.submission.DefinitionRules`): the stored params schema, then the
definition's own `check_params` when this process has its code (`code`, by default the shipped
definitions; see `jobserver.registry`), so bounds a schema cannot express are refused at
submission with the same 422 shape as a schema error. An entry also carries the code's
`check_stored` hook (None for most), which the handlers await through
`jobserver.api.stored_checks` for what only the database can tell.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from jobserver.core.errors import RuleError, at
from jobserver.core.rate_limits import RateLimit
from jobserver.db.definitions import definition_list
from jobserver.registry import Definition, ParamsCheck, Registry, StoredCheck, load_modules
from jobserver.validation import MAX_MESSAGE, Check, Failure, compile_schema_cached

log = logging.getLogger(__name__)

DEFINITION_CACHE_TTL = 5.0
MISS_REFRESH_INTERVAL = 1.0


@dataclass(frozen=True)
class DefinitionInfo:
    key: str
    version: int
    default_max_attempts: int
    timeout_seconds: float | None
    params_schema: dict[str, Any] | None
    check_params: Check
    row: Mapping[str, Any] | asyncpg.Record
    outbound: bool = False  # it calls out: submitting it needs the outbound capability
    # params naming a stored credential -> its kind (from the code: `Definition.credentials`)
    credentials: Mapping[str, str] = field(default_factory=dict)
    check_stored: StoredCheck | None = None  # checks against the database (code in process)
    # params naming a stored mail template (from the code: `Definition.mail_templates`)
    mail_templates: tuple[str, ...] = ()
    rate_limit: RateLimit | None = None  # as published (job_definitions.rate_limit)


def with_code_check(schema_check: Check, code_check: ParamsCheck | None, ref: str = "") -> Check:
    """`schema_check`, then (on params it accepted) `code_check`'s first problem, if any. A
    check that raises refuses the params (a 422 saying so), never a 500."""
    if code_check is None:
        return schema_check

    def check(value: Any) -> Failure | None:
        failure = schema_check(value)
        if failure is not None:
            return failure
        try:
            problems = code_check(value)
        except Exception:
            log.exception("the params check of %s failed", ref)
            return (), "cannot be checked: the definition's params check failed"
        if not problems:
            return None
        path, message = problems[0]
        return tuple(path), message[:MAX_MESSAGE]

    return check


def definition_info(
    r: Mapping[str, Any] | asyncpg.Record, in_code: Definition | None
) -> DefinitionInfo:
    """The entry of stored definition `r`, with the checks of its code when this process has
    it (`in_code`): what every producer checks a job of it against."""
    return DefinitionInfo(
        r["key"],
        r["version"],
        r["default_max_attempts"],
        r["timeout_seconds"],
        r["params_schema"],
        with_code_check(
            compile_schema_cached(r["params_schema"]),
            in_code.check_params if in_code is not None else None,
            f"{r['key']}@{r['version']}",
        ),
        r,
        r["outbound"],
        in_code.credentials if in_code is not None else {},
        in_code.check_stored if in_code is not None else None,
        in_code.mail_templates if in_code is not None else (),
        RateLimit.from_json(r["rate_limit"]),
    )


class DefinitionCache:
    def __init__(self, ttl: float = DEFINITION_CACHE_TTL, code: Registry | None = None) -> None:
        self.ttl = ttl
        # the definitions this process has in code (for their params checks); the shipped
        # ones by default, imported here once rather than on a request
        self._code = code if code is not None else load_modules(check_schemas=False)
        self._by_ref: dict[tuple[str, int], DefinitionInfo] = {}
        self._latest: dict[str, DefinitionInfo] = {}
        self._rows: list[asyncpg.Record] = []
        self._loaded_at = -1e9
        self._lock = asyncio.Lock()

    async def _refresh(self, pool: asyncpg.Pool) -> None:
        rows = await definition_list(pool)
        by_ref: dict[tuple[str, int], DefinitionInfo] = {}
        latest: dict[str, DefinitionInfo] = {}
        for r in rows:
            info = definition_info(r, self._code.get(r["key"], r["version"]))
            by_ref[(info.key, info.version)] = info
            if info.key not in latest or latest[info.key].version < info.version:
                latest[info.key] = info
        self._by_ref, self._latest = by_ref, latest
        self._rows = sorted(rows, key=lambda r: (r["key"], r["version"]))  # keyset paging order
        self._loaded_at = time.monotonic()

    async def _ensure(self, pool: asyncpg.Pool, min_age: float) -> None:
        if time.monotonic() - self._loaded_at < min_age:
            return
        async with self._lock:
            if time.monotonic() - self._loaded_at >= min_age:
                await self._refresh(pool)

    def _find(self, key: str, version: int | None) -> DefinitionInfo | None:
        return self._latest.get(key) if version is None else self._by_ref.get((key, version))

    async def get(
        self, pool: asyncpg.Pool, key: str, version: int | None = None
    ) -> DefinitionInfo | None:
        """`key@version`, or the latest version of `key` when version is None."""
        await self._ensure(pool, self.ttl)
        found = self._find(key, version)
        if found is None:
            await self._ensure(pool, MISS_REFRESH_INTERVAL)
            found = self._find(key, version)
        return found

    async def infos(self, pool: asyncpg.Pool) -> list[DefinitionInfo]:
        """Every registered definition, by (key, version)."""
        await self._ensure(pool, self.ttl)
        return [self._by_ref[k] for k in sorted(self._by_ref)]

    async def rows(self, pool: asyncpg.Pool) -> list[asyncpg.Record]:
        """Every row, ordered by (key, version) as Python compares them."""
        await self._ensure(pool, self.ttl)
        return self._rows

    async def resolve(
        self, pool: asyncpg.Pool, key: str, version: int | None, where: str = ""
    ) -> DefinitionInfo:
        """`get`, or RuleError `unknown_definition` naming `where.definitionKey` (or
        `definitionVersion` when only that version is unknown)."""
        found = await self.get(pool, key, version)
        if found is not None:
            return found
        key_known = version is not None and await self.get(pool, key) is not None
        field = at(where, "definitionVersion" if key_known else "definitionKey")
        name = key if version is None else f"{key}@{version}"
        raise RuleError(field, f"unknown definition {name!r}", code="unknown_definition")

    def latest_version(self, key: str) -> int | None:
        info = self._latest.get(key)
        return info.version if info else None

    def invalidate(self) -> None:
        self._loaded_at = -1e9
