"""Data sources: named lookups a job's templates read (`sources` with `useSources: true`).

`spec` parses the `sources` object, `driver` picks a backend by URL, `postgres` reads PostgreSQL,
`fetch_all` runs a job's lookups concurrently.
"""

from jobserver.sources.driver import SourceDriver, open_driver, register
from jobserver.sources.fetch import fetch_all
from jobserver.sources.spec import SOURCES_SCHEMA, SourceError, SourceSpec, parse_sources

__all__ = [
    "SOURCES_SCHEMA",
    "SourceDriver",
    "SourceError",
    "SourceSpec",
    "fetch_all",
    "open_driver",
    "parse_sources",
    "register",
]
