"""One pooled aiohttp session per event loop and policy: kept-alive connections for `fetch`.

A fresh session per request pays a TCP (and TLS) handshake each time; webhooks to one receiver
would spend most of their time there. Connections are therefore pooled, and the policy is
enforced where a connection is made: aiohttp asks the `CheckingResolver` for the addresses of
every new connection, and it resolves the name once and checks every address
(`resolve_and_check`), refusing the connection otherwise. A kept-alive connection was checked
when it was opened; a name that rebinds later is checked again on its next new connection.

Sessions have no cookie jar and ignore proxy settings from the environment. A change of policy
(`jobserver.outbound.configure`) gets a new session; `close_sessions()` closes this loop's at
shutdown.
"""

from __future__ import annotations

import asyncio
import socket
import weakref

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from jobserver.outbound.policy import Policy, resolve_and_check

MAX_CONNECTIONS = 512  # in the pool, all hosts together
KEEPALIVE_SECONDS = 15.0


class CheckingResolver(AbstractResolver):
    """Answers aiohttp's lookups with the addresses the policy accepts, looked up once per
    connection; a refused one raises `OutboundDenied` and nothing is connected."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        addrs = await resolve_and_check(host, port, self.policy)
        return [
            {
                "hostname": host,
                "host": str(a),
                "port": port,
                "family": socket.AF_INET if a.version == 4 else socket.AF_INET6,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for a in addrs
        ]

    async def close(self) -> None:
        return None


_sessions: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, tuple[Policy, aiohttp.ClientSession]
] = weakref.WeakKeyDictionary()
_closing: set[asyncio.Task[None]] = set()  # old sessions being closed (held until done)


def session_for(policy: Policy) -> aiohttp.ClientSession:
    """This loop's session for `policy` (a new one when the policy changed)."""
    loop = asyncio.get_running_loop()
    held = _sessions.get(loop)
    if held is not None and held[0] is policy and not held[1].closed:
        return held[1]
    if held is not None and not held[1].closed:
        task = loop.create_task(held[1].close())  # the old policy's connections go
        _closing.add(task)
        task.add_done_callback(_closing.discard)
    connector = aiohttp.TCPConnector(
        resolver=CheckingResolver(policy),
        use_dns_cache=False,
        family=socket.AF_UNSPEC,
        limit=MAX_CONNECTIONS,
        keepalive_timeout=KEEPALIVE_SECONDS,
    )
    session = aiohttp.ClientSession(
        connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
    )
    _sessions[loop] = (policy, session)
    return session


async def close_sessions() -> None:
    """Close this loop's session and its connections."""
    held = _sessions.pop(asyncio.get_running_loop(), None)
    if held is not None:
        await held[1].close()
