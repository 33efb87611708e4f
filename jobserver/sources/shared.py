"""The source driver of this process: one per event loop, for SOURCES_DATABASE_URL.

Workers and the API share a driver between jobs (its pool is opened on the first fetch) and
close it when they stop (`close_all`). A test may `configure` another URL.
"""

from __future__ import annotations

import asyncio
import weakref

from jobserver.sources.driver import SourceDriver, open_driver

_UNSET = object()
_url: object = _UNSET
_drivers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SourceDriver] = (
    weakref.WeakKeyDictionary()
)


def configure(url: str | None) -> None:
    """Use `url` from now on (drivers opened before keep theirs until closed)."""
    global _url
    _url = url
    _drivers.clear()


def _configured_url() -> str | None:
    if _url is _UNSET:
        from jobserver.config import Settings

        return Settings.from_env().sources_database_url
    return _url if isinstance(_url, str) else None


def current_driver() -> SourceDriver:
    """This loop's driver (opened lazily; a clear error on fetch when no URL is set)."""
    loop = asyncio.get_running_loop()
    driver = _drivers.get(loop)
    if driver is None:
        driver = _drivers[loop] = open_driver(_configured_url())
    return driver


async def close_all() -> None:
    """Close this loop's driver (at shutdown)."""
    loop = asyncio.get_running_loop()
    driver = _drivers.pop(loop, None)
    if driver is not None:
        await driver.close()
