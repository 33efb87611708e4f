"""SQL for `mail_templates`: named subject/text/html templates `mail.send` jobs render.

Keyed by name; `created_by`/`updated_by` are the owners of the tokens that wrote them. The API
lists them by name (keyset paging); the worker reads one per attempt (`mail_template_get`) and
the API checks that a submission's template exists (`mail_template_exists`).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from jobserver.db.conn import Conn, ConnOrPool, Queries

COLUMNS = "name, subject, text, html, description, created_at, updated_at, created_by, updated_by"
# Columns a caller may set (besides the name and the bookkeeping).
WRITABLE = ("subject", "text", "html", "description")


async def mail_template_count_upto(conn: ConnOrPool, cap: int) -> int:
    """How many templates there are, counting at most `cap`."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM (SELECT 1 FROM mail_templates LIMIT $1) t", cap
    )
    return count


async def mail_template_delete(conn: ConnOrPool, name: str) -> bool:
    result = await conn.execute("DELETE FROM mail_templates WHERE name = $1", name)
    return result.endswith(" 1")


async def mail_template_exists(conn: ConnOrPool | Queries, name: str) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM mail_templates WHERE name = $1)", name
    )
    return found


async def mail_template_lock(conn: Conn, name: str) -> bool:
    """Whether template `name` exists, its row locked until the transaction ends (a delete
    that first checks who names it)."""
    found = await conn.fetchval("SELECT 1 FROM mail_templates WHERE name = $1 FOR UPDATE", name)
    return found is not None


async def mail_template_get(
    conn: ConnOrPool, name: str, *, lock: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM mail_templates WHERE name = $1" + (" FOR UPDATE" if lock else ""),
        name,
    )


async def mail_template_insert(
    conn: ConnOrPool, name: str, owner: str, **values: Any
) -> asyncpg.Record:
    """Insert a template written by `owner`; a taken name raises
    `asyncpg.UniqueViolationError`."""
    cols = [c for c in WRITABLE if c in values]
    placeholders = "".join(f", ${i}" for i in range(3, len(cols) + 3))
    row = await conn.fetchrow(
        f"""
        INSERT INTO mail_templates (name, created_by, updated_by{"".join(", " + c for c in cols)})
        VALUES ($1, $2, $2{placeholders})
        RETURNING {COLUMNS}
        """,
        name,
        owner,
        *[values[c] for c in cols],
    )
    assert row is not None  # INSERT ... RETURNING yields its row or raises
    return row


async def mail_template_list(
    conn: ConnOrPool, *, limit: int, after: str | None = None, offset: int = 0
) -> list[asyncpg.Record]:
    """A page of templates by name: after the name `after` (keyset), or from `offset`."""
    return await conn.fetch(
        f"""
        SELECT {COLUMNS} FROM mail_templates
        WHERE ($2::text IS NULL OR name > $2)
        ORDER BY name LIMIT $1 OFFSET $3
        """,
        limit,
        after,
        offset,
    )


async def mail_template_update(
    conn: ConnOrPool, name: str, owner: str, **values: Any
) -> asyncpg.Record | None:
    """Set the given writable columns (None clears one) as written by `owner`; None when no
    template has that name."""
    cols = [c for c in WRITABLE if c in values]
    sets = "".join(f", {c} = ${i}" for i, c in enumerate(cols, start=3))
    return await conn.fetchrow(
        f"""
        UPDATE mail_templates SET updated_at = now(), updated_by = $2{sets}
        WHERE name = $1 RETURNING {COLUMNS}
        """,
        name,
        owner,
        *[values[c] for c in cols],
    )
