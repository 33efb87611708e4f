"""What every console script shares: settings that fail with one line, logging, the event loop."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

from dotenv import load_dotenv

from jobserver.config import ConfigError, Settings, is_loopback
from jobserver.logs import setup_logging


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def refuse_open_auth(settings: Settings, host: str) -> None:
    """JOBSERVER_AUTH=disabled lets anyone who reaches the API act as an admin: allowed only
    when the API binds a loopback address (exit 2 otherwise)."""
    if not settings.auth_enabled and not is_loopback(host):
        fail(
            f"JOBSERVER_AUTH=disabled needs the API on a loopback address (127.0.0.1, ::1, "
            f"localhost), not HOST={host!r}: bind one, or enable auth"
        )


def load_dotenv_file() -> None:
    """`.env` of the working directory into the environment, as the core reference's setup says
    ("set DATABASE_URL or create a .env file"); a variable already set in the process
    environment wins. Only the working directory: no search up the tree for someone else's."""
    load_dotenv(Path.cwd() / ".env", override=False)


def load_settings(*, need_database: bool = True) -> Settings:
    """Settings from the environment (and `.env`, see `load_dotenv_file`); a bad value exits 2
    with one line and no traceback."""
    load_dotenv_file()
    try:
        settings = Settings.from_env()
        if need_database:
            settings.require_database_url()
    except ConfigError as e:
        fail(str(e))
    setup_logging(settings.log_format, settings.log_level)
    return settings


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when available (faster sockets and callbacks: asyncpg is built for it), else
    asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a process' main coroutine on `new_event_loop()`; Ctrl-C exits 130."""
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(coro)
    except KeyboardInterrupt:
        return 130
