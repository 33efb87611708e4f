"""The outbound policy's address rules, allowlists, URL redaction and the one-lookup property.

No network: `refusal` is a pure function, and `resolve_and_check` is driven through our own seam
`jobserver.outbound.policy.getaddrinfo` where a test needs a name to answer what it chooses.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from jobserver.config import ConfigError, Settings
from jobserver.outbound import policy as policy_mod
from jobserver.outbound.http import header_refusal
from jobserver.outbound.policy import (
    OutboundDenied,
    Policy,
    parse_cidrs,
    parse_hosts,
    policy_from_settings,
    refusal,
    resolve_and_check,
)
from jobserver.outbound.redact import redact_url
from jobserver.outbound.sessions import CheckingResolver
from jobserver.registry import PermanentError

REFUSED = {
    # IPv4
    "127.0.0.1": "loopback",
    "127.255.255.254": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "172.31.255.255": "private",
    "192.168.1.1": "private",
    "169.254.1.1": "link-local",
    "169.254.169.254": "a cloud metadata address",
    "169.254.170.2": "a cloud metadata address",
    "100.100.100.200": "a cloud metadata address",
    "100.64.0.1": "shared address space (CGNAT)",
    "100.127.255.255": "shared address space (CGNAT)",
    "0.0.0.0": "unspecified",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "192.0.2.1": "reserved",
    "198.18.0.1": "reserved",
    # IPv6
    "::1": "loopback",
    "::": "unspecified",
    "fe80::1": "link-local",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "fd00:ec2::254": "a cloud metadata address",
    "fd20:ce::254": "a cloud metadata address",
    "ff02::1": "multicast",
    "2001:db8::1": "reserved",
    "100::1": "reserved",
    "4000::1": "reserved",  # outside global unicast
    # IPv6 forms embedding a refused IPv4 address
    "::ffff:127.0.0.1": "loopback (embedded 127.0.0.1)",
    "::ffff:169.254.169.254": "a cloud metadata address (embedded 169.254.169.254)",
    "::ffff:10.0.0.1": "private (embedded 10.0.0.1)",
    "::127.0.0.1": "loopback (embedded 127.0.0.1)",  # IPv4-compatible
    "2002:7f00:1::": "loopback (embedded 127.0.0.1)",  # 6to4
    "2002:a9fe:a9fe::1": "a cloud metadata address (embedded 169.254.169.254)",
    "64:ff9b::7f00:1": "loopback (embedded 127.0.0.1)",  # NAT64
    "64:ff9b::a9fe:a9fe": "a cloud metadata address (embedded 169.254.169.254)",
    "64:ff9b:1::1": "private",
}

PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize(("text", "why"), REFUSED.items())
def test_internal_addresses_are_refused(text: str, why: str) -> None:
    assert refusal(ipaddress.ip_address(text)) == why


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_pass(text: str) -> None:
    assert refusal(ipaddress.ip_address(text)) is None


def test_allow_cidrs_open_internal_addresses_including_embedded_forms() -> None:
    p = Policy(allow_cidrs=parse_cidrs("127.0.0.0/8, 10.1.0.0/16"))
    for text in ("127.0.0.1", "10.1.2.3", "::ffff:127.0.0.1"):
        p.check_address(ipaddress.ip_address(text), text)
    for text in ("10.2.0.1", "::1", "169.254.169.254"):
        with pytest.raises(OutboundDenied):
            p.check_address(ipaddress.ip_address(text), text)


def test_allow_hosts_exact_and_wildcard() -> None:
    p = Policy(allow_hosts=parse_hosts("Svc.Internal., *.corp.example"))
    assert p.host_allowed("svc.internal")
    assert p.host_allowed("a.b.corp.example")
    assert not p.host_allowed("corp.example")
    assert not p.host_allowed("svc.internal.evil.com")


def test_settings_parse_and_refuse_bad_cidrs() -> None:
    s = Settings.from_env({"OUTBOUND_ALLOW_CIDRS": "127.0.0.1/32,::1", "OUTBOUND_ALLOW_HOSTS": "a"})
    p = policy_from_settings(s)
    assert p.max_redirects == 5 and p.max_response_bytes == 1024 * 1024
    assert [str(n) for n in p.allow_cidrs] == ["127.0.0.1/32", "::1/128"]
    assert p.allow_hosts == {"a"}
    with pytest.raises(ConfigError, match="OUTBOUND_ALLOW_CIDRS"):
        Settings.from_env({"OUTBOUND_ALLOW_CIDRS": "10.0.0.0/8,nonsense"})


def test_denial_is_a_permanent_error_named_outbound_denied() -> None:
    with pytest.raises(OutboundDenied) as e:
        Policy().check_address(ipaddress.ip_address("127.0.0.1"), "localhost")
    assert isinstance(e.value, PermanentError)
    assert str(e.value) == "outbound_denied: localhost (127.0.0.1) is loopback"


@pytest.mark.parametrize(
    "name",
    [
        *("Host", "host", "Connection", "Transfer-Encoding", "Upgrade", "TE", "Keep-Alive"),
        *("Proxy-Authorization", "proxy-connection", "Content-Length", "Trailer"),
    ],
)
def test_hop_by_hop_and_host_headers_are_refused(name: str) -> None:
    assert header_refusal(name) is not None


def test_ordinary_headers_pass() -> None:
    assert header_refusal("Authorization") is None and header_refusal("X-Api-Key") is None


def test_redact_url_hides_query_fragment_and_credentials() -> None:
    assert redact_url("https://u:pw@api.example/v1/x?api_key=SECRET#f") == (
        "https://api.example/v1/x?***"
    )
    assert redact_url("http://h:81/p") == "http://h:81/p"


# -- resolve_and_check through our own resolver seam ---------------------------------------


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Answers the fake getaddrinfo gives, one list per call, taken in order."""
    queue: list[list[str]] = []

    async def fake(host: str, port: int) -> list[tuple[int, str]]:
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, a) for a in queue.pop(0)]

    monkeypatch.setattr(policy_mod, "getaddrinfo", fake)
    return queue


async def test_a_name_with_any_internal_address_is_refused(answers: list[list[str]]) -> None:
    answers.append(["93.184.216.34", "10.0.0.5"])
    with pytest.raises(OutboundDenied, match="private"):
        await resolve_and_check("mixed.example", 80, Policy())


async def test_real_loopback_names_are_refused() -> None:
    with pytest.raises(OutboundDenied, match="loopback"):
        await resolve_and_check("localhost", 80, Policy())
    with pytest.raises(OutboundDenied, match="loopback"):
        await resolve_and_check("2130706433", 80, Policy())  # legacy numeric form of 127.0.0.1
    with pytest.raises(OutboundDenied, match="loopback"):
        await resolve_and_check("[::ffff:127.0.0.1]", 80, Policy())


async def test_allowed_host_may_resolve_to_loopback() -> None:
    addrs = await resolve_and_check("localhost", 80, Policy(allow_hosts=frozenset({"localhost"})))
    assert all(a.is_loopback for a in addrs)


async def test_rebinding_is_checked_on_every_new_connection(
    answers: list[list[str]],
) -> None:
    """A name that answers a public address, then a private one: the resolver aiohttp connects
    through checks every answer, so the first connection goes to the public address and the
    next one, rebound to loopback, is refused before any connection is made."""
    answers.extend([["93.184.216.34"], ["127.0.0.1"]])
    resolver = CheckingResolver(Policy())
    [got] = await resolver.resolve("rebind.example", 443)
    assert got["host"] == "93.184.216.34" and got["hostname"] == "rebind.example"
    with pytest.raises(OutboundDenied):
        await resolver.resolve("rebind.example", 443)
    assert answers == []  # each connection looked the name up exactly once
