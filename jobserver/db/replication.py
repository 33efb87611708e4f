"""WAL positions: what read-your-writes across a streaming replica is judged by.

A position (an LSN) is handled as an integer, bytes into the WAL since `0/0`, so positions
compare and take their maximum as numbers; `lsn_text`/`lsn_parse` convert to and from the
form PostgreSQL prints (`16/B374D848`), which is what the API's headers carry.

- `wal_insert_position(conn)` on the primary: read after a commit, it is at or past the end
  of that commit's WAL record (the insert position, not the flush position, so it holds with
  `synchronous_commit = off` too).
- `wal_replay_position(conn)` on a standby: how far it has replayed; None when the server is
  not in recovery (a read URL that names a primary, or a standby since promoted: it has
  everything that server committed).
"""

from __future__ import annotations

import re

from jobserver.db.conn import ConnOrPool

_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


def lsn_text(position: int) -> str:
    """`16/B374D848`: the position as PostgreSQL prints a pg_lsn."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def lsn_parse(text: str) -> int | None:
    """The position `text` names (`16/B374D848`), or None when it is not one."""
    match = _LSN.fullmatch(text.strip())
    if match is None:
        return None
    return (int(match[1], 16) << 32) | int(match[2], 16)


async def wal_insert_position(conn: ConnOrPool) -> int:
    """The primary's current WAL insert position."""
    position: int = await conn.fetchval("SELECT (pg_current_wal_insert_lsn() - '0/0')::int8")
    return position


async def wal_replay_position(conn: ConnOrPool) -> int | None:
    """How far a standby has replayed its WAL; None when the server is not a standby."""
    position: int | None = await conn.fetchval(
        "SELECT CASE WHEN pg_is_in_recovery()"
        " THEN coalesce((pg_last_wal_replay_lsn() - '0/0')::int8, 0) END"
    )
    return position
