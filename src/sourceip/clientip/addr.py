"""Strict address tokens: ``1.2.3.4``, ``1.2.3.4:80``, ``2001:db8::1``, ``[2001:db8::1]:80``,
``fe80::1%eth0``.

Rules (the same for every header and for the socket peer):

* IPv4 is four decimal octets 0-255 **without leading zeros** (``010.1.1.1`` is rejected: it is
  octal to some parsers, CVE-2021-29921) and only ASCII digits.
* IPv6 is what :class:`ipaddress.IPv6Address` accepts (no zone inside), bare or in brackets.
  A port is only possible with brackets (a bare ``::1:80`` is an IPv6 address, not a port).
* A zone id (``%eth0``) is 1-:data:`MAX_ZONE_LEN` characters of ``[A-Za-z0-9._~-]``.
* A port is 1-5 ASCII digits with a value of at most 65535.
* IPv4-mapped IPv6 (``::ffff:1.2.3.4``) is unwrapped to IPv4, so it matches IPv4 prefixes and
  yields one rate-limit key.
* The unspecified addresses ``0.0.0.0`` and ``::`` are not client addresses and are rejected.

The hot path (:func:`parse_token_fast`) returns tuples and never raises; :func:`parse_address`
builds the validated :class:`Address` value or raises :class:`AddressError` with a ``code``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from .errors import AddressError

__all__ = [
    "MAX_TOKEN_LEN",
    "MAX_ZONE_LEN",
    "Address",
    "format_ip",
    "parse_address",
    "parse_ip",
    "parse_token_cached",
    "parse_token_fast",
]

MAX_ZONE_LEN = 64
"""Longest zone id accepted after ``%`` (Linux interface names are at most 15 bytes)."""

MAX_TOKEN_LEN = 128
"""Longest address token accepted (``[v6%zone]:port`` fits easily)."""

_OCTETS: dict[str, int] = {str(i): i for i in range(256)}
_ZONE_RE = re.compile(r"[A-Za-z0-9._~\-]{1,64}\Z")  # 64 == MAX_ZONE_LEN
_V6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_MAPPED_HI = 0xFFFF
_V4_MAX = 0xFFFFFFFF

# A parsed token: (version, integer value, canonical ip text, port or None).
Parsed = tuple[int, int, str, "int | None"]


def _v4(text: str) -> int | None:
    """Integer value of a strict dotted quad, or None."""
    o = _OCTETS
    try:
        a, b, c, d = text.split(".")
        return (o[a] << 24) | (o[b] << 16) | (o[c] << 8) | o[d]
    except (ValueError, KeyError):
        return None


def _port(text: str) -> int | None:
    """Port value of 1-5 ASCII digits <= 65535, or None."""
    if 0 < len(text) <= 5 and text.isascii() and text.isdigit():
        value = int(text)
        if value <= 65535:
            return value
    return None


def format_ip(version: int, value: int) -> str:
    """Canonical text of an integer address (dotted quad, or RFC 5952 for IPv6)."""
    if version == 4:
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
    return str(IPv6Address(value))


def _v6(text: str) -> tuple[int, int, str] | str:
    """Parse IPv6 text with optional ``%zone``: (version, value, canonical) or an error code."""
    zone = None
    pct = text.find("%")
    if pct >= 0:
        zone = text[pct + 1 :]
        text = text[:pct]
        if _ZONE_RE.match(zone) is None:
            return "bad-zone"
    if not text or not _V6_CHARS.issuperset(text):
        return "not-an-ip"
    try:
        value = int(IPv6Address(text))
    except ValueError:
        return "not-an-ip"
    if value >> 32 == _MAPPED_HI:
        if zone is not None:
            return "bad-zone"
        value &= _V4_MAX
        if value == 0:
            return "unspecified"
        return (4, value, format_ip(4, value))
    if value == 0:
        return "unspecified"
    canonical = str(IPv6Address(value))
    if zone is not None:
        canonical = f"{canonical}%{zone}"
    return (6, value, canonical)


def parse_token_fast(token: str) -> Parsed | str:
    """Parse one address token; return ``(version, value, ip_text, port)`` or an error code.

    Never raises. ``token`` must already be stripped of surrounding whitespace.
    Error codes: ``empty``, ``too-long``, ``not-an-ip``, ``leading-zero``, ``bad-port``,
    ``bad-zone``, ``unspecified``.
    """
    if not token:
        return "empty"
    if len(token) > MAX_TOKEN_LEN:
        return "too-long"
    colon = token.find(":")
    if colon < 0:
        # IPv4 without port: the hot path.
        v = _v4(token)
        if v is None:
            return _v4_error(token)
        if v == 0:
            return "unspecified"
        return (4, v, token, None)
    if token[0] == "[":
        end = token.find("]")
        if end < 0:
            return "not-an-ip"
        rest = token[end + 1 :]
        port: int | None = None
        if rest:
            if rest[0] != ":":
                return "not-an-ip"
            port = _port(rest[1:])
            if port is None:
                return "bad-port"
        r6 = _v6(token[1:end])
        if isinstance(r6, str):
            return r6
        return (r6[0], r6[1], r6[2], port)
    if token.find(":", colon + 1) < 0:
        # exactly one colon: IPv4:port
        v = _v4(token[:colon])
        if v is None:
            return _v4_error(token[:colon])
        if v == 0:
            return "unspecified"
        port = _port(token[colon + 1 :])
        if port is None:
            return "bad-port"
        return (4, v, token[:colon], port)
    r6 = _v6(token)
    if isinstance(r6, str):
        return r6
    return (r6[0], r6[1], r6[2], None)


_CACHE: dict[str, Parsed | str] = {}
CACHE_SIZE = 4096
"""Entries kept by :func:`parse_token_cached` before the cache is cleared (bounded memory)."""


def parse_token_cached(token: str) -> Parsed | str:
    """:func:`parse_token_fast` with a bounded memo (peers and proxies repeat a lot).

    The cache is cleared when it reaches :data:`CACHE_SIZE` entries, so hostile tokens cost a
    parse and a dict insert each, never unbounded memory.
    """
    r = _CACHE.get(token)
    if r is None:
        r = parse_token_fast(token)
        if len(_CACHE) >= CACHE_SIZE:
            _CACHE.clear()
        _CACHE[token] = r
    return r


def _v4_error(text: str) -> str:
    """Explain why ``text`` is not a strict dotted quad."""
    parts = text.split(".")
    if (
        len(parts) == 4
        and all(p.isascii() and p.isdigit() and int(p) <= 255 for p in parts if p)
        and all(parts)
    ):
        return "leading-zero"
    return "not-an-ip"


_MESSAGES = {
    "empty": "empty address",
    "too-long": f"address token longer than {MAX_TOKEN_LEN} characters",
    "not-an-ip": "not an IPv4 or IPv6 address",
    "leading-zero": "IPv4 octet with a leading zero (ambiguous: octal to some parsers)",
    "bad-port": "port is not 1-5 digits in 0-65535",
    "bad-zone": f"zone id is not 1-{MAX_ZONE_LEN} characters of [A-Za-z0-9._~-]",
    "unspecified": "unspecified address (0.0.0.0 or ::) is not a client address",
    "port-not-allowed": "a port is not allowed here",
}


def error_message(code: str) -> str:
    """The human sentence for an address error code."""
    return _MESSAGES.get(code, code)


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    """A validated IP address, as found in a header token, a socket peer or a PROXY header.

    ``ip`` is canonical text: dotted quad for IPv4 (IPv4-mapped IPv6 is unwrapped), RFC 5952 for
    IPv6, with ``%zone`` appended when present. ``value`` is the address as an integer.
    """

    ip: str
    version: int
    value: int
    port: int | None = None

    def __post_init__(self) -> None:
        if self.version not in (4, 6):
            raise AddressError(f"version: {self.version!r} is not 4 or 6", code="bad-version")
        top = _V4_MAX if self.version == 4 else (1 << 128) - 1
        if not isinstance(self.value, int) or not 0 < self.value <= top:
            raise AddressError(f"value: {self.value!r} is out of range", code="bad-value")
        if self.port is not None and not (
            isinstance(self.port, int) and 0 <= self.port <= 65535
        ):
            raise AddressError(f"port: {self.port!r} is outside 0-65535", code="bad-port")
        bare = self.ip.partition("%")[0]
        if format_ip(self.version, self.value) != bare:
            raise AddressError(
                f"ip: {self.ip!r} is not the canonical text of value {self.value}",
                code="not-canonical",
            )

    @property
    def zone(self) -> str | None:
        """The IPv6 zone id, or None."""
        _, pct, zone = self.ip.partition("%")
        return zone if pct else None

    @property
    def address(self) -> IPv4Address | IPv6Address:
        """The address as an :mod:`ipaddress` object (zone kept as ``scope_id``)."""
        return ip_address(self.ip)

    def __str__(self) -> str:
        return self.ip


def parse_address(token: str, *, allow_port: bool = True) -> Address:
    """Parse one strict address token (surrounding spaces and tabs are ignored).

    Returns the :class:`Address`; raises :class:`AddressError` whose ``code`` is one of
    ``empty``, ``too-long``, ``not-an-ip``, ``leading-zero``, ``bad-port``, ``bad-zone``,
    ``unspecified``, ``port-not-allowed``. Raises nothing else, whatever ``token`` is.
    """
    if not isinstance(token, str):
        raise AddressError(f"expected str, got {type(token).__name__}", code="not-an-ip")
    r = parse_token_fast(token.strip(" \t"))
    if isinstance(r, str):
        raise AddressError(f"{token[:80]!r}: {error_message(r)}", code=r)
    if r[3] is not None and not allow_port:
        raise AddressError(f"{token[:80]!r}: {error_message('port-not-allowed')}",
                           code="port-not-allowed")
    return Address(ip=r[2], version=r[0], value=r[1], port=r[3])


def parse_ip(text: str) -> Address:
    """Parse a bare IP literal (no port, no brackets); raises :class:`AddressError`."""
    if isinstance(text, str) and text.startswith("["):
        raise AddressError(f"{text[:80]!r}: brackets are not allowed here", code="not-an-ip")
    return parse_address(text, allow_port=False)
