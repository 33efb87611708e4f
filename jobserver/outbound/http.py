"""HTTP requests under the outbound policy, on aiohttp: what every HTTP integration calls.

`fetch(method, url, ...)` does one request the way the policy wants it:
- connections come from one pooled session per event loop (`jobserver.outbound.sessions`):
  each new connection's host is resolved once and every address checked
  (`resolve_and_check`) by the resolver aiohttp connects through (the host name is kept for
  SNI, certificate checks and the `Host` header), so no second lookup can rebind the name;
  a kept-alive connection was checked when it was opened. aiohttp never asks a resolver about
  an address literal (`http://10.0.0.1/`), so `fetch` checks those itself before each request;
- redirects are not followed by aiohttp: each `Location` is checked like the first URL, at most
  `max_redirects` times (OUTBOUND_MAX_REDIRECTS), http and https only; a 303 (or a 301/302
  after a POST) continues as a GET without a body; credentials (Authorization, Cookie, and
  the caller's `secret_headers`) are dropped when a redirect leaves the origin;
- `Host`, `Content-Length` and hop-by-hop headers (Connection, Transfer-Encoding, Upgrade, TE,
  Trailer, Keep-Alive, Proxy-*) may not be set by the caller;
- the body is streamed under a byte cap (OUTBOUND_MAX_RESPONSE_BYTES; past it
  `ResponseTooLarge`), the whole exchange under a time cap (OUTBOUND_TIMEOUT_SECONDS at most);
- no proxy from the environment, no cookie jar.

The `Response` holds the final status, URL, headers (in order, repeated names kept), body and
the time the whole exchange took (`elapsed_ms`: redirects and reading the body included).

Refusals (`OutboundDenied`), an oversized body and a redirect loop are `PermanentError`s: the
attempt fails without retry. Network errors stay ordinary exceptions (retried).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from jobserver.outbound.policy import OutboundDenied, Policy, current_policy, resolve_and_check
from jobserver.outbound.redact import redact_url
from jobserver.outbound.sessions import session_for
from jobserver.registry import PermanentError

REDIRECTS = frozenset({301, 302, 303, 307, 308})
FORBIDDEN_HEADERS = frozenset(
    {"host", "content-length", "connection", "transfer-encoding", "upgrade", "te", "trailer"}
    | {"keep-alive"}
)
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie"})
CHUNK = 64 * 1024


class ResponseTooLarge(PermanentError):
    code = "response_too_large"


class TooManyRedirects(PermanentError):
    code = "too_many_redirects"


def header_refusal(name: str) -> str | None:
    """Why a caller may not set header `name`, or None."""
    key = name.strip().lower()
    if key in FORBIDDEN_HEADERS or key.startswith("proxy-"):
        return f"header {name!r} may not be set"
    return None


def check_headers(headers: Mapping[str, str]) -> None:
    for name in headers:
        why = header_refusal(name)
        if why is not None:
            raise OutboundDenied(why)


@dataclass(frozen=True)
class Response:
    status: int
    url: str  # the final URL, after redirects (raw: redact before showing it)
    content_type: str
    charset: str | None
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()  # as received, in order (raw: redact to show)
    elapsed_ms: float = 0.0  # from the first connection to the last byte, redirects included

    def text(self) -> str:
        return self.body.decode(self.charset or "utf-8", errors="replace")


def _target(url: URL) -> tuple[str, int]:
    if url.scheme not in ("http", "https"):
        raise OutboundDenied(f"scheme {url.scheme!r} is not allowed (http and https only)")
    if not url.host or url.port is None:
        raise OutboundDenied(f"{redact_url(str(url))} has no host")
    return url.host, url.port


# IPv4 in the other spellings inet_aton reads (2130706433, 0x7f.1, 0177.0.0.1): never a name
_NUMERIC_HOST = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+))*\.?")


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    if resp.content_length is not None and resp.content_length > cap:
        raise ResponseTooLarge(f"the response declares {resp.content_length} bytes (cap {cap})")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > cap:
            raise ResponseTooLarge(f"the response is over {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _same_origin(a: URL, b: URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


async def fetch(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    data: str | bytes | None = None,
    json: Any = None,
    timeout_seconds: float | None = None,
    policy: Policy | None = None,
    secret_headers: Iterable[str] = (),
) -> Response:
    """One request under the outbound policy (see the module docstring); `json` is sent as
    JSON, `data` as is. A 3xx without `Location` (or past the redirect cap: TooManyRedirects)
    is returned like any answer. `secret_headers` (lower-case names) are dropped, like
    Authorization and Cookie, when a redirect leaves the origin."""
    dropped = CREDENTIAL_HEADERS.union(secret_headers)
    started = time.monotonic()
    p = current_policy() if policy is None else policy
    sent = dict(headers or {})
    check_headers(sent)
    total = p.timeout_seconds
    if timeout_seconds is not None:
        total = min(timeout_seconds, total)
    session = session_for(p)
    timeout = aiohttp.ClientTimeout(total=total)
    current = URL(url)
    async with asyncio.timeout(total):
        for _ in range(p.max_redirects + 1):
            host, port = _target(current)
            if _is_ip_literal(host):  # aiohttp connects to an address without asking the resolver
                await resolve_and_check(host, port, p)
            elif _NUMERIC_HOST.fullmatch(host):
                raise OutboundDenied(f"{host} is an address in a non-canonical form")
            async with session.request(
                method,
                current,
                headers=sent,
                data=data,
                json=json,
                allow_redirects=False,
                timeout=timeout,
            ) as resp:
                location = resp.headers.get("Location") if resp.status in REDIRECTS else None
                if location is None:
                    cap = p.max_response_bytes
                    body = b"" if method == "HEAD" else await _read_capped(resp, cap)
                    return Response(
                        resp.status,
                        str(current),
                        resp.headers.get("Content-Type", ""),
                        resp.charset,
                        body,
                        tuple(resp.headers.items()),
                        (time.monotonic() - started) * 1000.0,
                    )
                status = resp.status
            try:
                following = current.join(URL(location))
            except ValueError as e:
                raise OutboundDenied(f"redirect to an invalid URL: {e}") from None
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, data, json = ("HEAD" if method == "HEAD" else "GET"), None, None
            if not _same_origin(current, following):
                sent = {k: v for k, v in sent.items() if k.lower() not in dropped}
            current = following
    last = redact_url(str(current))
    raise TooManyRedirects(f"more than {p.max_redirects} redirects, last to {last}")
