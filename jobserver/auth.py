"""API tokens: generation, hashing and creation.

A token is `js_` + 43 URL-safe characters (32 random bytes). Only its SHA-256 hex digest is
stored (`api_tokens.token_hash`) with a short display prefix; the plaintext is shown once.
Scopes: `view_jobs`, `manage_jobs`, `outbound`; none = a plain submit token (own jobs only).
`outbound` is a capability: submitting a job whose definition calls out (`call.api`, ...) needs
it or `manage_jobs`. Names and owners follow `jobserver.owners.TOKEN_NAME` and may not be a
reserved (internal) owner.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

import asyncpg

from jobserver.db.tokens import token_insert
from jobserver.owners import token_name_problem

TOKEN_PREFIX = "js_"
SCOPES = ("view_jobs", "manage_jobs", "outbound")
OUTBOUND = "outbound"


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()


def generate_token() -> tuple[str, str, str]:
    """(plaintext, sha256 hex hash, display prefix such as `js_AbC12`)."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return plaintext, hash_token(plaintext), plaintext[: len(TOKEN_PREFIX) + 5]


def check_scopes(scopes: Iterable[str]) -> list[str]:
    out = sorted(set(scopes))
    bad = [s for s in out if s not in SCOPES]
    if bad:
        raise ValueError(f"unknown scope {bad[0]!r}: expected one of {', '.join(SCOPES)}")
    return out


async def create_token(
    conn: asyncpg.Connection | asyncpg.Pool,
    name: str,
    scopes: Iterable[str],
    owner: str,
    *,
    max_running: int | None = None,
    max_queued: int | None = None,
) -> str:
    """Store a new token and return its plaintext (the only time it exists outside a client).

    `max_running` / `max_queued` are the owner's quotas (None: the OWNER_MAX_* defaults).
    Raises ValueError for unknown scopes, a malformed or reserved name or owner, a quota below 1,
    and
    asyncpg.UniqueViolationError for a taken name.
    """
    checked = check_scopes(scopes)
    problem = token_name_problem(name) or token_name_problem(owner, "token owner")
    if problem is not None:
        raise ValueError(problem)
    plaintext, digest, prefix = generate_token()
    for flag, value in (("--max-running", max_running), ("--max-queued", max_queued)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be at least 1")
    await token_insert(
        conn, name, digest, prefix, checked, owner, max_running=max_running, max_queued=max_queued
    )
    return plaintext
