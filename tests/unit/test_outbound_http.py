"""`jobserver.outbound.http.fetch` against real aiohttp servers on loopback (127.0.0.1 and
127.0.0.2): denials before any connection, the allowlist, redirects re-checked, the body cap,
the time cap, and the checked address being the one connected to. No database.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from jobserver.outbound import policy as policy_mod
from jobserver.outbound.http import ResponseTooLarge, TooManyRedirects, fetch
from jobserver.outbound.policy import OutboundDenied, Policy, parse_cidrs
from jobserver.outbound.sessions import close_sessions

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Server:
    base: str
    port: int
    seen: list[web.Request] = field(default_factory=list)


ServerFactory = Callable[..., Awaitable[Server]]


@pytest.fixture
async def serve() -> AsyncIterator[ServerFactory]:
    runners: list[web.AppRunner] = []

    async def start(routes: dict[str, Handler], host: str = "127.0.0.1", port: int = 0) -> Server:
        server = Server("", 0)

        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            server.seen.append(request)
            return await handler(request)

        app = web.Application(middlewares=[record])
        for path, handler in routes.items():
            app.router.add_route("*", path, handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        runners.append(runner)
        server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        server.base = f"http://{host}:{server.port}"
        return server

    yield start
    for r in runners:
        await r.cleanup()


async def ok(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "method": request.method,
            "host": request.headers.get("Host"),
            "auth": request.headers.get("Authorization"),
        }
    )


LOOPBACK_1 = Policy(allow_cidrs=parse_cidrs("127.0.0.1/32"))


async def test_loopback_is_refused_before_connecting(serve: ServerFactory) -> None:
    internal = await serve({"/metrics": ok})
    with pytest.raises(OutboundDenied, match=re.escape("outbound_denied: 127.0.0.1 is loopback")):
        await fetch("GET", f"{internal.base}/metrics", policy=Policy())
    assert internal.seen == []


async def test_allow_cidrs_opens_a_loopback_target(serve: ServerFactory) -> None:
    internal = await serve({"/metrics": ok})
    resp = await fetch("GET", f"{internal.base}/metrics", policy=LOOPBACK_1)
    assert resp.status == 200 and b'"method": "GET"' in resp.body
    assert len(internal.seen) == 1


@pytest.mark.parametrize(
    "target", ["http://127.0.0.2:{port}/x", "http://[::ffff:127.0.0.2]:{port}/x"]
)
async def test_a_redirect_to_an_internal_address_is_refused(
    serve: ServerFactory, target: str
) -> None:
    internal = await serve({"/x": ok}, host="127.0.0.2")

    async def bounce(request: web.Request) -> web.Response:
        raise web.HTTPFound(target.format(port=internal.port))

    outside = await serve({"/r": bounce})  # the allowed "outside" host
    with pytest.raises(OutboundDenied, match=re.escape("127.0.0.2")):
        await fetch("GET", f"{outside.base}/r", policy=LOOPBACK_1)
    assert len(outside.seen) == 1 and internal.seen == []


async def test_redirects_are_followed_up_to_the_cap(serve: ServerFactory) -> None:
    async def hop(request: web.Request) -> web.Response:
        n = int(request.match_info.get("n", "0"))
        raise web.HTTPFound(f"/hop/{n + 1}") if n < 3 else web.HTTPOk(text="done")

    s = await serve({"/hop/{n}": hop})
    resp = await fetch("GET", f"{s.base}/hop/0", policy=LOOPBACK_1)
    assert resp.text() == "done" and resp.url.endswith("/hop/3")
    two = Policy(allow_cidrs=LOOPBACK_1.allow_cidrs, max_redirects=2)
    with pytest.raises(TooManyRedirects, match="more than 2 redirects"):
        await fetch("GET", f"{s.base}/hop/0", policy=two)


async def test_303_after_post_continues_as_get_and_credentials_stay_at_their_origin(
    serve: ServerFactory,
) -> None:
    other = await serve({"/done": ok})  # another port: another origin

    async def see_other(request: web.Request) -> web.Response:
        raise web.HTTPSeeOther(f"{other.base}/done")

    s = await serve({"/post": see_other})
    resp = await fetch(
        "POST",
        f"{s.base}/post",
        headers={"Authorization": "Bearer secret"},
        json={"a": 1},
        policy=LOOPBACK_1,
    )
    assert s.seen[0].headers.get("Authorization") == "Bearer secret"
    assert b'"method": "GET"' in resp.body and b'"auth": null' in resp.body


async def big(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()  # chunked: no Content-Length to refuse up front
    await resp.prepare(request)
    for _ in range(40):
        await resp.write(b"x" * 65536)
    await resp.write_eof()
    return resp


async def declared(request: web.Request) -> web.Response:
    return web.Response(body=b"y" * (2 * 1024 * 1024))


async def test_the_body_is_read_under_a_byte_cap(serve: ServerFactory) -> None:
    s = await serve({"/big": big, "/declared": declared})
    cap = Policy(allow_cidrs=LOOPBACK_1.allow_cidrs, max_response_bytes=1024 * 1024)
    with pytest.raises(ResponseTooLarge, match="response_too_large: the response is over"):
        await fetch("GET", f"{s.base}/big", policy=cap)
    with pytest.raises(ResponseTooLarge, match="declares 2097152 bytes"):
        await fetch("GET", f"{s.base}/declared", policy=cap)
    roomy = Policy(allow_cidrs=LOOPBACK_1.allow_cidrs, max_response_bytes=4 * 1024 * 1024)
    assert len((await fetch("GET", f"{s.base}/big", policy=roomy)).body) == 40 * 65536


async def test_the_policy_caps_the_time(serve: ServerFactory) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    s = await serve({"/slow": slow})
    capped = Policy(allow_cidrs=LOOPBACK_1.allow_cidrs, timeout_seconds=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            await fetch("GET", f"{s.base}/slow", timeout_seconds=60, policy=capped)
    finally:
        release.set()
    assert time.monotonic() - started < 10  # a hang detector, not a timing assertion


@pytest.mark.parametrize("header", ["Host", "Transfer-Encoding", "Proxy-Authorization"])
async def test_host_and_hop_by_hop_headers_are_refused(serve: ServerFactory, header: str) -> None:
    s = await serve({"/": ok})
    with pytest.raises(OutboundDenied, match="may not be set"):
        await fetch("GET", f"{s.base}/", headers={header: "x"}, policy=LOOPBACK_1)
    assert s.seen == []


async def test_an_allowed_host_keeps_its_name_for_the_host_header(serve: ServerFactory) -> None:
    s = await serve({"/": ok})
    resp = await fetch(
        "GET", f"http://localhost:{s.port}/", policy=Policy(allow_hosts=frozenset({"localhost"}))
    )
    assert f'"host": "localhost:{s.port}"'.encode() in resp.body


async def test_aiohttp_connects_to_the_checked_address_not_a_second_lookup(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rebind.test` exists only in our resolver seam: it answers 127.0.0.1 (allowed) first and
    127.0.0.2 after. The request reaches the 127.0.0.1 server, after exactly one lookup: aiohttp
    used the pinned answer (its own resolver would not know the name at all)."""
    s = await serve({"/": ok})
    later = await serve({"/": ok}, host="127.0.0.2", port=s.port)  # the rebound address
    answers = [["127.0.0.1"], ["127.0.0.2"], ["127.0.0.2"]]
    lookups: list[str] = []

    async def fake(host: str, port: int) -> list[tuple[int, str]]:
        lookups.append(host)
        return [(socket.AF_INET, a) for a in answers.pop(0)]

    monkeypatch.setattr(policy_mod, "getaddrinfo", fake)
    resp = await fetch("GET", f"http://rebind.test:{s.port}/", policy=LOOPBACK_1)
    assert resp.status == 200 and f'"host": "rebind.test:{s.port}"'.encode() in resp.body
    assert lookups == ["rebind.test"] and len(s.seen) == 1 and later.seen == []


async def test_the_response_carries_its_headers_in_order_and_the_time_taken(
    serve: ServerFactory,
) -> None:
    async def cookies(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)  # the server is slow: the duration must show it
        resp = web.Response(text="c", headers={"X-One": "1"})
        resp.set_cookie("a", "1")
        resp.set_cookie("b", "2")
        return resp

    s = await serve({"/c": cookies})
    resp = await fetch("GET", f"{s.base}/c", policy=LOOPBACK_1)
    assert ("X-One", "1") in resp.headers
    assert [v.split(";")[0] for k, v in resp.headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert resp.elapsed_ms >= 50


async def test_connections_are_kept_alive_and_new_ones_are_checked_again(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three requests to one name: the first two share one connection (one lookup, one client
    port at the server); once the pool is closed, the name rebinds to a refused address and
    the next connection is refused without a request reaching anything."""
    s = await serve({"/": ok})
    answers = [["127.0.0.1"], ["127.0.0.2"]]

    async def fake(host: str, port: int) -> list[tuple[int, str]]:
        return [(socket.AF_INET, a) for a in answers.pop(0)]

    monkeypatch.setattr(policy_mod, "getaddrinfo", fake)
    url = f"http://pooled.test:{s.port}/"
    for _ in range(2):
        assert (await fetch("GET", url, policy=LOOPBACK_1)).status == 200
    assert len({r.transport.get_extra_info("peername")[1] for r in s.seen if r.transport}) == 1
    assert answers == [["127.0.0.2"]]  # one lookup for both requests
    await close_sessions()
    with pytest.raises(OutboundDenied, match=r"127\.0\.0\.2"):
        await fetch("GET", url, policy=LOOPBACK_1)
    assert len(s.seen) == 2
