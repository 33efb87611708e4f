"""Registered definitions, read from `job_definitions` and kept in-process for a few seconds.

Submissions look definitions up on every job, so the whole (small) table is loaded in one query
and refreshed after `ttl` seconds; a miss triggers at most one early refresh per second, so a
definition registered a moment ago is found. Each entry carries its compiled params checker
(it satisfies `jobserver.core.submission.DefinitionRules`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from jobserver.core.errors import RuleError, at
from jobserver.db.definitions import definition_list
from jobserver.validation import Check, compile_schema_cached

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
    row: asyncpg.Record
    outbound: bool = False  # it calls out: submitting it needs the outbound capability


class DefinitionCache:
    def __init__(self, ttl: float = DEFINITION_CACHE_TTL) -> None:
        self.ttl = ttl
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
            info = DefinitionInfo(
                r["key"],
                r["version"],
                r["default_max_attempts"],
                r["timeout_seconds"],
                r["params_schema"],
                compile_schema_cached(r["params_schema"]),
                r,
                r["outbound"],
            )
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
