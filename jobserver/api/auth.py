"""Who is calling: bearer-token authentication and scope checks.

`authenticate(request, scope)` resolves the `Authorization: Bearer <token>` header to a
`Principal` (missing, unknown or revoked -> 401) and checks the route's scope (-> 403):
- "public": no token needed (a token, if sent, is ignored);
- "submit": any valid token; handlers restrict plain tokens to their own jobs;
- "view_jobs": tokens with view_jobs or manage_jobs;
- "manage_jobs": tokens with manage_jobs.
Submitting a job of an `outbound` definition also needs the `outbound` scope (or manage_jobs):
`Principal.can_call_out`, checked by the submission handlers.

A token whose owner is reserved (`jobserver.owners.is_reserved`: internal owners and the words
`scheduler`, `anonymous`, ...; tokens created before that rule) is refused as invalid (401)
and logged once per cache entry: it could otherwise read the jobs of those owners.

Token rows are cached in-process for `TOKEN_CACHE_TTL` seconds (also misses, so a flood of bad
tokens does not reach the database): a revocation takes effect within that TTL. `last_used_at`
is written at most once per `TOUCH_INTERVAL` per token. With JOBSERVER_AUTH=disabled every
request is `ANONYMOUS` (owner `system:anonymous`) with all scopes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from jobserver.api.errors import ApiError
from jobserver.auth import hash_token
from jobserver.db.tokens import token_get_by_hash, token_touch
from jobserver.owners import ANONYMOUS as ANONYMOUS_OWNER
from jobserver.owners import PUBLIC, is_reserved

log = logging.getLogger("jobserver.api.auth")

TOKEN_CACHE_TTL = 5.0
TOUCH_INTERVAL = 60.0
MAX_CACHE_ENTRIES = 10_000
MAX_TOKEN_LENGTH = 512


@dataclass(frozen=True)
class Principal:
    owner: str
    scopes: frozenset[str]
    token_name: str | None = None
    token_id: uuid.UUID | None = None
    # The owner's queued-jobs quota from its tokens (None: the OWNER_MAX_QUEUED default).
    max_queued: int | None = None

    @property
    def can_view_all(self) -> bool:
        return "view_jobs" in self.scopes or "manage_jobs" in self.scopes

    @property
    def can_manage(self) -> bool:
        return "manage_jobs" in self.scopes

    @property
    def can_call_out(self) -> bool:
        """May submit jobs of definitions that reach the network (`outbound=True`)."""
        return "outbound" in self.scopes or "manage_jobs" in self.scopes

    def owner_filter(self) -> str | None:
        """The owner to restrict job reads to; None when this principal sees every job."""
        return None if self.can_view_all else self.owner


ANONYMOUS = Principal(ANONYMOUS_OWNER, frozenset({"view_jobs", "manage_jobs", "outbound"}), None)
PUBLIC_PRINCIPAL = Principal(PUBLIC, frozenset(), None)


class TokenCache:
    """Token hash -> Principal (or None for unknown/revoked), each for a few seconds."""

    def __init__(self, ttl: float = TOKEN_CACHE_TTL) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._touched: dict[uuid.UUID, float] = {}
        self._loading: dict[str, asyncio.Future[Principal | None]] = {}

    async def lookup(self, pool: asyncpg.Pool, token_hash: str) -> Principal | None:
        now = time.monotonic()
        hit = self._entries.get(token_hash)
        if hit is not None and hit[0] > now:
            principal = hit[1]
        else:
            principal = await self._load(pool, token_hash)
        if principal is not None and principal.token_id is not None:
            last = self._touched.get(principal.token_id, 0.0)
            if now - last >= TOUCH_INTERVAL:
                self._touched[principal.token_id] = now
                await token_touch(pool, [principal.token_id])
        return principal

    async def _load(self, pool: asyncpg.Pool, token_hash: str) -> Principal | None:
        """One database read per token however many requests miss at once (a burst of
        requests when an entry expires waits for the same read)."""
        while True:
            loading = self._loading.get(token_hash)
            if loading is None:
                break
            try:
                return await asyncio.shield(loading)
            except asyncio.CancelledError:
                if not loading.cancelled():
                    raise  # we were cancelled, not the read
            # the read was abandoned: do our own
        loading = asyncio.get_running_loop().create_future()
        self._loading[token_hash] = loading
        try:
            row = await token_get_by_hash(pool, token_hash)
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                loading.cancel()
            else:
                loading.set_exception(e)
                loading.exception()  # retrieved here: no "never retrieved" warning
            raise
        finally:
            del self._loading[token_hash]
        principal = None
        if row is not None and row["revoked_at"] is None:
            if is_reserved(row["owner"]):
                log.warning(
                    "token refused: its owner is reserved; recreate it under another name",
                    extra={"tokenName": row["name"], "owner": row["owner"]},
                )
            else:
                principal = Principal(
                    row["owner"],
                    frozenset(row["scopes"]),
                    row["name"],
                    row["id"],
                    row["owner_max_queued"],
                )
        if len(self._entries) >= MAX_CACHE_ENTRIES:
            self._entries.clear()
        self._entries[token_hash] = (time.monotonic() + self.ttl, principal)
        loading.set_result(principal)
        return principal

    def clear(self) -> None:
        self._entries.clear()


def require_outbound(principal: Principal, key: str, version: int, where: str = "") -> None:
    """403 `forbidden` naming the capability when `principal` may not submit `key@version`,
    a definition that calls out (the caller checks the definition's `outbound` flag)."""
    if not principal.can_call_out:
        raise ApiError(
            403,
            "forbidden",
            f"{key}@{version} makes outbound requests: submitting it needs the outbound"
            " capability (a token created with --outbound, or manage_jobs)",
            f"{where}.definitionKey" if where else "definitionKey",
            {"capability": "outbound"},
        )


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > MAX_TOKEN_LENGTH:
        raise ApiError(401, "unauthorized", "expected 'Authorization: Bearer <token>'")
    return value


async def authenticate(
    request: web.Request,
    scope: str,
    *,
    pool: asyncpg.Pool,
    cache: TokenCache,
    enabled: bool,
) -> Principal:
    if not enabled:
        return ANONYMOUS
    if scope == "public":
        return PUBLIC_PRINCIPAL
    token = bearer_token(request)
    if token is None:
        raise ApiError(401, "unauthorized", "missing bearer token")
    principal = await cache.lookup(pool, hash_token(token))
    if principal is None:
        raise ApiError(401, "unauthorized", "invalid or revoked token")
    check_scope(principal, scope)
    return principal


def check_scope(principal: Principal, scope: str) -> None:
    """403 unless the authenticated `principal` holds `scope` (a route's, or the scope of the
    route a compatibility route translates to)."""
    if scope == "view_jobs" and not principal.can_view_all:
        raise ApiError(403, "forbidden", "this route needs the view_jobs scope")
    if scope == "manage_jobs" and not principal.can_manage:
        raise ApiError(403, "forbidden", "this route needs the manage_jobs scope")
