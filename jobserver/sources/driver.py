"""The interface between the renderer and a data store, and the choice of driver by URL.

A driver turns a `SourceSpec` into JSON-able data: a dict for a `single` source, a list of dicts
otherwise. `open_driver(url)` picks one by the URL's scheme: `postgresql://` (and `postgres://`)
-> `jobserver.sources.postgres`; any other scheme `x://` -> the module `jobserver.sources.x`, which
must define `create_driver(url) -> SourceDriver`. A second backend (MongoDB) is therefore a new
module only. With no URL (SOURCES_DATABASE_URL unset) every fetch fails with a clear error.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from jobserver.sources.spec import SourceError, SourceSpec


class SourceDriver(Protocol):
    async def fetch(self, spec: SourceSpec) -> Any:
        """One source's data: a dict when `spec.single`, else a list of dicts."""
        ...

    async def close(self) -> None: ...


DriverFactory = Callable[[str], SourceDriver]

# Schemes whose module name is not the scheme itself.
_MODULES = {"postgresql": "postgres", "postgres": "postgres"}
_factories: dict[str, DriverFactory] = {}


def register(scheme: str, factory: DriverFactory) -> None:
    """Use `factory` for `scheme://` URLs (ahead of the module naming rule)."""
    _factories[scheme] = factory


class UnavailableDriver:
    """What a job gets when no source database is configured: every fetch says so."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def fetch(self, spec: SourceSpec) -> Any:
        raise SourceError(spec.path, self.reason)

    async def close(self) -> None:
        return None


def open_driver(url: str | None) -> SourceDriver:
    """The driver for `url`; connections are opened lazily, on the first fetch."""
    if not url:
        return UnavailableDriver("sources are unavailable: SOURCES_DATABASE_URL is not set")
    scheme = urlsplit(url).scheme.split("+", 1)[0].lower()
    if scheme in _factories:
        return _factories[scheme](url)
    module = _MODULES.get(scheme, scheme)
    if not re.fullmatch(r"[a-z][a-z0-9_]*", module) or module in ("driver", "spec", "fetch"):
        raise ValueError(f"no source driver for URL scheme {scheme!r}")
    try:
        found = importlib.import_module(f"jobserver.sources.{module}")
    except ModuleNotFoundError:
        raise ValueError(f"no source driver for URL scheme {scheme!r}") from None
    factory: DriverFactory = found.create_driver
    return factory(url)
