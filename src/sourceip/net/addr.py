"""Strict parsing of IP addresses, networks and ports; errors name the bad value."""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PROTOCOLS = ("tcp", "udp", "sctp")


@lru_cache(maxsize=65536)
def parse_ip(text: str) -> IPAddress:
    """Return the address written in ``text``; raises ``ValueError`` naming it when invalid."""
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a valid IP address") from None


def ip_from_text(text: str) -> IPAddress:
    """The address written in ``text`` exactly (no stripping), for parsers of large dumps:
    dotted quads take a fast path (``inet_pton`` is as strict as ``ipaddress``: four decimal
    parts, no leading zeros), anything else goes to ``ipaddress.ip_address``. Raises
    ``ValueError`` for a text that is not an address."""
    try:
        return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))
    except OSError:
        return ipaddress.ip_address(text)


@lru_cache(maxsize=16384)
def parse_network(text: str, *, strict: bool = False) -> IPNetwork:
    """Return the network ``text`` denotes (a bare address is a /32 or /128).

    With ``strict`` host bits must be zero; otherwise they are masked off.
    """
    try:
        return ipaddress.ip_network(text.strip(), strict=strict)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid CIDR ({exc})") from None


def parse_port(value: object, *, allow_zero: bool = False) -> int:
    """Return ``value`` as a port number in 1-65535 (0 too with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        else:
            raise ValueError(f"{value!r} is not a port number")
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise ValueError(f"{value} is outside {low}-65535")
    return value


def join_host_port(host: str, port: int | str) -> str:
    """Go's ``net.JoinHostPort``: ``host:port``, or ``[host]:port`` when the host text holds a
    colon (an IPv6 address)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_port(addr: IPAddress, port: int) -> str:
    """``ip:port``, or ``[ip]:port`` for IPv6. The text of recent IPv4 pairs is kept (a trace
    formats the same endpoints again and again); an IPv6 pair is formatted each time, which
    ``ip_text`` makes cheaper than a lookup keyed by an IPv6 address (whose hash and equality
    run in Python)."""
    if addr.version == 6:
        return f"[{ip_text(addr)}]:{port}"
    key = (addr, port)
    got = _HOST_PORT.get(key)
    if got is None:
        got = f"{ip_text(addr)}:{port}"
        if len(_HOST_PORT) >= 65536:
            _HOST_PORT.clear()
        _HOST_PORT[key] = got
    return got


_HOST_PORT: dict[tuple[IPAddress, int], str] = {}  # IPv4 pairs only


_IPV4, _IPV6 = ipaddress.IPv4Address, ipaddress.IPv6Address
_AF_INET, _AF_INET6 = socket.AF_INET, socket.AF_INET6
_ntop = socket.inet_ntop


def ip_text(addr: IPAddress) -> str:
    """``str(addr)``, formatted in C (``inet_ntop``; ``ipaddress`` formats in Python, ~15 us for
    an IPv6 address). Same text for every address: inet_ntop compresses the longest run of
    zero groups (the first of equal runs, never a single group) as RFC 5952 and ``ipaddress``
    do; the addresses it writes with a dotted IPv4 tail (top 96 bits 0 or ::ffff:0:0/96) and
    scoped ones are left to ``str``."""
    kind = type(addr)
    if kind is _IPV4:
        return _ntop(_AF_INET, addr.packed)
    if kind is _IPV6:
        # the slots behind int(addr) / addr.scope_id / addr.packed, read directly (2x faster)
        n: int = addr._ip  # type: ignore[union-attr]
        if (n >> 32) not in (0, 0xFFFF) and addr._scope_id is None:  # type: ignore[union-attr]
            return _ntop(_AF_INET6, n.to_bytes(16, "big"))
    return str(addr)


def family_of(addr: IPAddress | IPNetwork) -> int:
    """4 or 6."""
    return addr.version
