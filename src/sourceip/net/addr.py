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


def host_port(addr: IPAddress, port: int) -> str:
    """``ip:port``, or ``[ip]:port`` for IPv6. The text of recent pairs is kept (a trace
    formats the same endpoints again and again; ``ipaddress`` formats in Python)."""
    key = (addr, port)
    got = _HOST_PORT.get(key)
    if got is None:
        got = f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"
        if len(_HOST_PORT) >= 65536:
            _HOST_PORT.clear()
        _HOST_PORT[key] = got
    return got


_HOST_PORT: dict[tuple[IPAddress, int], str] = {}


def family_of(addr: IPAddress | IPNetwork) -> int:
    """4 or 6."""
    return addr.version
