"""The outbound policy: which network addresses a job may reach, decided once, for every client.

Every integration that opens a connection (HTTP now; SMTP, SSH and webhooks next) asks
`resolve_and_check(host, port)` for the addresses it may connect to and connects to one of
those, never resolving the name again (a second lookup could answer differently: DNS rebinding).

Refused, for IPv4 and IPv6 alike: loopback, private (RFC 1918, unique local), link-local, CGNAT
(100.64.0.0/10), multicast, unspecified, reserved and documentation ranges, and the cloud
metadata addresses (169.254.169.254, fd00:ec2::254, ...). IPv6 forms that embed an IPv4 address
(IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, 6to4 `2002::/16`, NAT64
`64:ff9b::/96`) are judged by the embedded address; IPv6 outside global unicast (2000::/3) is
refused. A host name is refused when any of its addresses is.

The operator opens internal targets on purpose with two settings:
- `OUTBOUND_ALLOW_CIDRS`: comma-separated networks whose addresses are allowed;
- `OUTBOUND_ALLOW_HOSTS`: comma-separated host names (`*.example.internal` for subdomains) whose
  resolved addresses are all allowed (still connected to as checked).

A refusal raises `OutboundDenied` (a `PermanentError`: the attempt fails without retry, the
stored error starts with `outbound_denied`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from jobserver.registry import PermanentError

if TYPE_CHECKING:
    from jobserver.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutboundDenied(PermanentError):
    """The policy refused a target (its address, a header, a scheme)."""

    code = "outbound_denied"


def _nets(*rows: tuple[str, str]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(net), why) for net, why in rows)


# Checked first, so that the error names them for what they are.
METADATA = _nets(
    ("169.254.169.254/32", "a cloud metadata address"),  # AWS, GCP, Azure, OpenStack, ...
    ("169.254.170.2/32", "a cloud metadata address"),  # AWS ECS task metadata
    ("100.100.100.200/32", "a cloud metadata address"),  # Alibaba Cloud
    ("192.0.0.192/32", "a cloud metadata address"),  # Oracle Cloud
    ("168.63.129.16/32", "a cloud metadata address"),  # Azure wire server
    ("fd00:ec2::254/128", "a cloud metadata address"),  # AWS IPv6
    ("fd20:ce::254/128", "a cloud metadata address"),  # GCP IPv6
)

REFUSED_V4 = _nets(
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "reserved"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved"),
    ("198.51.100.0/24", "reserved"),
    ("203.0.113.0/24", "reserved"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # includes the broadcast 255.255.255.255
)

REFUSED_V6 = _nets(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "private"),  # local-use NAT64
    ("100::/64", "reserved"),  # discard-only
    ("2001::/23", "reserved"),  # IETF protocol assignments: Teredo, ORCHID, benchmarking, ...
    ("2001:db8::/32", "reserved"),  # documentation
    ("3fff::/20", "reserved"),  # documentation
    ("5f00::/16", "reserved"),  # SRv6
    ("fc00::/7", "private"),  # unique local
    ("fe80::/10", "link-local"),
    ("fec0::/10", "private"),  # site-local (deprecated)
    ("ff00::/8", "multicast"),
)

GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_v4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, 6to4, NAT64), if any."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in NAT64 or (addr in COMPATIBLE and int(addr) > 1):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def refusal(addr: IPAddress) -> str | None:
    """Why `addr` may not be reached ("loopback", ...), or None when it is a public address."""
    for net, why in METADATA:
        if addr.version == net.version and addr in net:
            return why
    if isinstance(addr, ipaddress.IPv6Address):
        inner = embedded_v4(addr)
        if inner is not None:
            inner_why = refusal(inner)
            return None if inner_why is None else f"{inner_why} (embedded {inner})"
        for net, why in REFUSED_V6:
            if addr in net:
                return why
        return None if addr in GLOBAL_UNICAST_V6 else "reserved"
    for net, why in REFUSED_V4:
        if addr in net:
            return why
    return None


def _host_key(host: str) -> str:
    return host.strip().rstrip(".").lower()


@dataclass(frozen=True)
class Policy:
    """The operator's allowlist (see the module docstring) and the HTTP client's limits."""

    allow_cidrs: tuple[Network, ...] = ()
    allow_hosts: frozenset[str] = frozenset()
    max_redirects: int = 5
    max_response_bytes: int = 1024 * 1024
    timeout_seconds: float = 300.0

    def host_allowed(self, host: str) -> bool:
        """Whether `host` is on OUTBOUND_ALLOW_HOSTS (exactly, or under a `*.` entry)."""
        key = _host_key(host)
        if key in self.allow_hosts:
            return True
        parts = key.split(".")
        return any("*." + ".".join(parts[i:]) in self.allow_hosts for i in range(1, len(parts)))

    def address_allowed(self, addr: IPAddress) -> bool:
        """Whether OUTBOUND_ALLOW_CIDRS opens `addr` (or the IPv4 address it embeds)."""
        candidates: list[IPAddress] = [addr]
        if isinstance(addr, ipaddress.IPv6Address):
            inner = embedded_v4(addr)
            if inner is not None:
                candidates.append(inner)
        return any(c.version == n.version and c in n for c in candidates for n in self.allow_cidrs)

    def check_address(self, addr: IPAddress, host: str) -> None:
        """Raise OutboundDenied unless `addr` (an address of `host`) may be reached."""
        why = refusal(addr)
        if why is not None and not self.address_allowed(addr):
            shown = f"{host} ({addr})" if host != str(addr) else str(addr)
            raise OutboundDenied(f"{shown} is {why}")


def parse_cidrs(raw: str) -> tuple[Network, ...]:
    """OUTBOUND_ALLOW_CIDRS: comma-separated networks; ValueError names the bad entry."""
    out: list[Network] = []
    for item in (p.strip() for p in raw.split(",")):
        if item:
            out.append(ipaddress.ip_network(item, strict=False))
    return tuple(out)


def parse_hosts(raw: str) -> frozenset[str]:
    return frozenset(_host_key(h) for h in raw.split(",") if h.strip())


def policy_from_settings(settings: Settings) -> Policy:
    return Policy(
        allow_cidrs=parse_cidrs(settings.outbound_allow_cidrs),
        allow_hosts=parse_hosts(settings.outbound_allow_hosts),
        max_redirects=settings.outbound_max_redirects,
        max_response_bytes=settings.outbound_max_response_bytes,
        timeout_seconds=settings.outbound_timeout_seconds,
    )


_configured: Policy | None = None


def configure(policy: Policy | None) -> None:
    """Set this process's policy (None: read it from the environment again on next use)."""
    global _configured
    _configured = policy
    _from_env.cache_clear()


@lru_cache(maxsize=1)
def _from_env() -> Policy:
    from jobserver.config import Settings

    return policy_from_settings(Settings.from_env())


def current_policy() -> Policy:
    """The process's policy: the one `configure`d, else read once from the environment (the
    settings a worker process started with)."""
    return _configured if _configured is not None else _from_env()


def _parse_address(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)


async def getaddrinfo(host: str, port: int) -> list[tuple[int, str]]:
    """(family, address) of every TCP address `host` resolves to: the one lookup per connection.

    A module-level function so that a test can stand in for the resolver (our seam)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [(int(family), str(sockaddr[0])) for family, _, _, _, sockaddr in infos]


def _literal(name: str) -> IPAddress | None:
    """`name` as an address when it is one in canonical form (`10.0.0.1`, `::1`), else None;
    other numeric spellings (`0x7f.1`, `2130706433`) go to the resolver, which reads them."""
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _unique(addrs: Iterable[IPAddress]) -> list[IPAddress]:
    return list(dict.fromkeys(addrs))


async def resolve_and_check(host: str, port: int, policy: Policy | None = None) -> list[IPAddress]:
    """The addresses of `host` a client may connect to (in resolver order), or OutboundDenied.

    Resolves once; every address is checked (a host with one refused address is refused, so a
    name cannot mix a public and an internal answer). Connect only to what this returns.
    A name that does not resolve raises OSError (socket.gaierror), a transient failure.
    """
    p = current_policy() if policy is None else policy
    name = host.strip("[]")
    if not name:
        raise OutboundDenied("empty host")
    literal = _literal(name)
    if literal is not None:  # an address needs no lookup (a thread hop per request otherwise)
        addrs = [literal]
    else:
        addrs = _unique(_parse_address(a) for _, a in await getaddrinfo(name, port))
    if not addrs:
        raise OSError(f"{name} has no address")
    if p.host_allowed(name):
        return addrs
    for addr in addrs:
        p.check_address(addr, name)
    return addrs
