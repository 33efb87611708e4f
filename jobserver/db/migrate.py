"""Apply Alembic migrations programmatically (used by `jobserver migrate`, `up` and tests).

The scripts are those of the `jobserver.migrations` package (the repository's `migrations/`,
installed inside the package), so an installed jobserver migrates from any directory without
`alembic.ini`; that file stays at the top of the repository for running `alembic` by hand.
"""

from __future__ import annotations

import asyncio
import importlib.resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_PACKAGE = "jobserver.migrations"


def script_location() -> str:
    """The directory holding env.py and versions/, wherever jobserver is installed."""
    return str(importlib.resources.files(MIGRATIONS_PACKAGE))


def alembic_config(database_url: str) -> Config:
    # alembic (and SQLAlchemy under it) is imported on first use: importing it costs half a
    # second, which every process that merely imports this module would pay at start
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", script_location())
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    """Alembic runs its own event loop; keep it off ours."""
    await asyncio.to_thread(upgrade, database_url, revision)
