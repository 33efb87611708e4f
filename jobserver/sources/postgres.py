"""The PostgreSQL source driver: `collection` is a table or view, read through asyncpg.

Options (keyword arguments of `PostgresSourceDriver`, defaults in brackets): `statement_timeout`
[5 s, also the session's statement_timeout], `catalog_ttl` [5 s: how long a table's columns are
cached], `max_size` [4 connections]. The session runs with `default_transaction_read_only=on`
(meant for a read-only role as well). Names in a spec are checked against the catalog before any
query uses them (an unknown table or column is a `SourceError` naming it); the SQL is in
`jobserver/db/sources.py`. Rows come back as JSON-able dicts: timestamps as RFC 3339 strings,
numerics as numbers when exact, bytes as base64, other types as text.

The connection goes to SOURCES_DATABASE_URL, which only the operator sets (like DATABASE_URL),
never a job: it is not an outbound request, so it does not pass through `jobserver.outbound`.
Jobs choose only tables, columns and values inside that database, all checked as above.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import decimal
import json
import time
import uuid
from typing import Any

import asyncpg

from jobserver.db import sources as db
from jobserver.db.pool import init_connection
from jobserver.db.urls import asyncpg_url
from jobserver.sources.spec import SourceError, SourceSpec

SAFE_INTEGER = 2**53


class PostgresSourceDriver:
    def __init__(
        self,
        url: str,
        *,
        statement_timeout: float = 5.0,
        catalog_ttl: float = 5.0,
        max_size: int = 4,
    ) -> None:
        self.url = asyncpg_url(url)
        self.statement_timeout = statement_timeout
        self.catalog_ttl = catalog_ttl
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._catalog: dict[str, tuple[float, db.Relation]] = {}

    async def pool(self) -> asyncpg.Pool:
        """The read-only pool, opened on first use."""
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self.url,
                    min_size=0,
                    max_size=self.max_size,
                    init=init_connection,
                    server_settings={
                        "default_transaction_read_only": "on",
                        "statement_timeout": str(int(self.statement_timeout * 1000)),
                        "application_name": "jobserver-sources",
                    },
                )
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def relation(self, spec: SourceSpec) -> db.Relation:
        """The catalog's view of `spec.collection`, cached for `catalog_ttl` seconds."""
        now = time.monotonic()
        cached = self._catalog.get(spec.collection)
        if cached is not None and cached[0] > now:
            return cached[1]
        schema, dot, name = spec.collection.rpartition(".")
        rel = await db.source_relation_get(await self.pool(), schema if dot else None, name)
        if rel is None:
            raise SourceError(
                f"{spec.path}.collection",
                f"unknown collection {spec.collection!r}: no such table or view",
            )
        self._catalog[spec.collection] = (now + self.catalog_ttl, rel)
        return rel

    async def fetch(self, spec: SourceSpec) -> Any:
        rel = await self.relation(spec)
        sel = _checked_select(spec, rel)
        try:
            rows = await db.source_rows_select(
                await self.pool(), rel, sel, seconds=self.statement_timeout + 1
            )
        except (asyncpg.QueryCanceledError, TimeoutError):
            raise SourceError(
                spec.path, f"query on {spec.collection} took over {self.statement_timeout:g} s"
            ) from None
        except asyncpg.DataError as e:  # a match value that does not fit its column's type
            raise SourceError(f"{spec.path}.match", f"{spec.collection}: {e}") from None
        except asyncpg.PostgresError as e:
            raise SourceError(spec.path, f"{spec.collection}: {e}") from None
        out = [_row(spec, rel, r) for r in rows]
        if not spec.single:
            return out
        if not out:
            shown = json.dumps(spec.match_shown(), ensure_ascii=False)
            raise SourceError(
                spec.path,
                f"source {spec.name!r} found no row in {spec.collection} matching {shown}",
            )
        return out[0]


def create_driver(url: str) -> PostgresSourceDriver:
    """The factory `jobserver.sources.driver.open_driver` calls for postgresql:// URLs."""
    return PostgresSourceDriver(url)


def _known(spec: SourceSpec, rel: db.Relation, column: str, path: str, json_key: bool) -> str:
    col = rel.columns.get(column)
    if col is None:
        raise SourceError(path, f"unknown column {column!r} in {spec.collection}")
    if json_key and not col.is_json:
        raise SourceError(path, f"column {column!r} of {spec.collection} is not json or jsonb")
    return column


def _checked_select(spec: SourceSpec, rel: db.Relation) -> db.Select:
    """The spec in catalog terms; every name is one the catalog holds, else a SourceError."""
    outputs: list[tuple[str, str | None]] = []
    if not spec.fields:
        outputs = [(c, None) for c in rel.columns]
    for i, f in enumerate(spec.fields):
        where = f"{spec.path}.fields[{i}]"
        column = _known(spec, rel, f.column, where, f.keys is not None)
        outputs += [(column, None)] if f.keys is None else [(column, k) for k in f.keys]
    conditions = [
        (
            _known(spec, rel, m.column, f"{spec.path}.match.{m.column}", m.key is not None),
            m.key,
            m.value,
        )
        for m in spec.match
    ]
    order = [
        (_known(spec, rel, s.column, f"{spec.path}.sort[{i}]", False), s.descending)
        for i, s in enumerate(spec.sort)
    ]
    return db.Select(tuple(outputs), tuple(conditions), tuple(order), spec.limit)


def _row(spec: SourceSpec, rel: db.Relation, record: asyncpg.Record) -> dict[str, Any]:
    values = iter(record.values())
    out: dict[str, Any] = {}
    if not spec.fields:
        return {c: _json(next(values)) for c in rel.columns}
    for f in spec.fields:
        if f.keys is None:
            out[f.column] = _json(next(values))
        else:
            out[f.column] = {k: _json(next(values)) for k in f.keys}
    return out


def _json(value: Any) -> Any:
    """A value as JSON can carry it."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if abs(value) < SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, decimal.Decimal):
        return _decimal(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    return str(value)


def _decimal(value: decimal.Decimal) -> Any:
    if not value.is_finite():
        return str(value)
    if value == value.to_integral_value() and abs(value) < SAFE_INTEGER:
        return int(value)
    as_float = float(value)
    return as_float if decimal.Decimal(repr(as_float)) == value else str(value)
