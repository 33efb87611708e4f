"""Conversions between the URL forms that asyncpg, SQLAlchemy and users write."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def asyncpg_url(url: str) -> str:
    """asyncpg accepts postgresql:// and postgres:// only."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "postgres":
        scheme = "postgresql"
    return urlunsplit((scheme, *parts[1:]))


def sqlalchemy_async_url(url: str) -> str:
    parts = urlsplit(asyncpg_url(url))
    return urlunsplit(("postgresql+asyncpg", *parts[1:]))


def with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))
