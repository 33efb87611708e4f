"""SQL of the PostgreSQL source driver: catalog lookups and the one SELECT it runs.

Identifiers reach SQL only after `source_relation_get` found them in the catalog, and only through
`quote_ident`; every value (match values, jsonb keys, the limit) is a bind parameter.
`source_rows_select` refuses a column that is not in the relation it was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from jobserver.db.conn import ConnOrPool

JSON_TYPES = ("json", "jsonb")


@dataclass(frozen=True)
class Column:
    name: str
    type_sql: str  # format_type(): a type name as the catalog spells it, for casts
    base_type: str  # pg_type.typname: json, jsonb, int4, ...

    @property
    def is_json(self) -> bool:
        return self.base_type in JSON_TYPES


@dataclass(frozen=True)
class Relation:
    """A table or view the catalog knows, with its columns in order."""

    schema: str
    name: str
    columns: dict[str, Column] = field(default_factory=dict)


@dataclass(frozen=True)
class Select:
    """What to run: outputs are `(column, jsonb key or None)`, conditions `(column, key, value)`,
    order `(column, descending)`."""

    outputs: tuple[tuple[str, str | None], ...]
    conditions: tuple[tuple[str, str | None, Any], ...]
    order: tuple[tuple[str, bool], ...]
    limit: int


_RELATION_COLUMNS = """
SELECT n.nspname AS schema, c.relname AS name, a.attname AS column,
       format_type(a.atttypid, a.atttypmod) AS type_sql, t.typname AS base_type
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND c.relname = $2
  AND CASE WHEN $1::text IS NULL THEN pg_table_is_visible(c.oid) ELSE n.nspname = $1 END
ORDER BY a.attnum
"""


async def source_relation_get(db: ConnOrPool, schema: str | None, name: str) -> Relation | None:
    """The table or view `schema.name` (or `name` visible in the search path), else None."""
    rows = await db.fetch(_RELATION_COLUMNS, schema, name)
    if not rows:
        return None
    columns = {r["column"]: Column(r["column"], r["type_sql"], r["base_type"]) for r in rows}
    return Relation(rows[0]["schema"], rows[0]["name"], columns)


def _q(name: str) -> str:
    return asyncpg.utils._quote_ident(name)  # type: ignore[attr-defined, no-any-return]


def _expr(rel: Relation, column: str) -> str:
    col = rel.columns.get(column)
    if col is None:  # the caller checks first; this is the last line of defence
        raise ValueError(f"column {column!r} is not in {rel.schema}.{rel.name}")
    return _q(col.name) if col.base_type != "json" else f"{_q(col.name)}::jsonb"


def build_select(rel: Relation, sel: Select) -> tuple[str, list[Any]]:
    """The SELECT text and its arguments; output columns are named c0, c1, ... in order."""
    args: list[Any] = []

    def bind(value: Any, cast: str) -> str:
        args.append(value)
        return f"${len(args)}::{cast}"

    outs = []
    for i, (column, key) in enumerate(sel.outputs):
        expr = _expr(rel, column)
        if key is not None:
            expr = f"{expr} -> {bind(key, 'text')}"
        outs.append(f"{expr} AS c{i}")
    where = []
    for column, key, value in sel.conditions:
        expr = _expr(rel, column)
        if key is not None:
            expr = f"({expr} -> {bind(key, 'text')})"
            where.append(f"{expr} IS NULL" if value is None else f"{expr} = {bind(value, 'jsonb')}")
        elif value is None:
            where.append(f"{expr} IS NULL")
        else:
            text = value if isinstance(value, str) else _scalar_text(value)
            type_sql = rel.columns[column].type_sql
            where.append(f"{expr} = CAST({bind(text, 'text')} AS {type_sql})")
    order = [f"{_expr(rel, c)} {'DESC' if d else 'ASC'}" for c, d in sel.order]
    sql = f"SELECT {', '.join(outs)} FROM {_q(rel.schema)}.{_q(rel.name)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if order:
        sql += " ORDER BY " + ", ".join(order)
    sql += f" LIMIT {bind(sel.limit, 'int')}"
    return sql, args


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


async def source_rows_select(
    db: ConnOrPool, rel: Relation, sel: Select, seconds: float
) -> list[asyncpg.Record]:
    """Run the SELECT for `sel` on `rel` (the session's statement_timeout applies too)."""
    sql, args = build_select(rel, sel)
    return await db.fetch(sql, *args, timeout=seconds)


async def source_session_read_only(db: ConnOrPool) -> bool:
    """Whether new transactions of this session are read-only."""
    return await db.fetchval("SHOW default_transaction_read_only") == "on"  # type: ignore[no-any-return]
