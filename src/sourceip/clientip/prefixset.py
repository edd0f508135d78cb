"""``PrefixSet``: membership of an address in a set of CIDRs, at a cost that does not grow with
the number of CIDRs.

Layout (per address family, on integers):

* Prefixes at least ``bucket_bits`` long are grouped by their top ``bucket_bits`` bits
  (IPv4: /16 buckets, IPv6: /32 buckets). Each bucket holds, per prefix length present *in that
  bucket*, a hash set of masked integers.
* Prefixes between ``expand_from`` and ``bucket_bits`` bits long are expanded into the buckets
  they cover, which become "fully covered" (IPv4: /8../15, IPv6: /24../31; at most 256 buckets
  each, and at most :data:`MAX_EXPANDED` buckets in total, beyond which they stay short).
* Shorter prefixes are kept as (mask, set) pairs per distinct length and probed always.

A lookup is one dict probe plus one set probe per distinct prefix length present in the
address's own bucket (usually one or two), plus one per distinct short length (usually none).
Ten CIDRs or ten thousand cost the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

from .addr import parse_token_fast
from .errors import ConfigError

__all__ = ["MAX_EXPANDED", "PrefixSet"]

MAX_EXPANDED = 1 << 16
"""Largest number of buckets created by expanding medium-length prefixes, per family."""

class _Family:
    """The index for one address family (all integers, no ipaddress objects)."""

    __slots__ = ("bits", "bucket_bits", "shift", "short", "buckets", "contains")

    def __init__(self, bits: int, bucket_bits: int, expand_from: int,
                 prefixes: list[tuple[int, int]]) -> None:
        self.bits = bits
        self.bucket_bits = bucket_bits
        self.shift = bits - bucket_bits
        full = (1 << bits) - 1
        short: dict[int, set[int]] = {}
        covered: set[int] = set()
        long_: dict[int, dict[int, set[int]]] = {}
        expanded = 0
        # Medium prefixes: expand into whole buckets if the budget allows.
        for value, plen in sorted(prefixes, key=lambda p: p[1]):
            if plen >= bucket_bits:
                long_.setdefault(value >> self.shift, {}).setdefault(plen, set()).add(value)
            elif plen >= expand_from and expanded + (1 << (bucket_bits - plen)) <= MAX_EXPANDED:
                first = value >> self.shift
                count = 1 << (bucket_bits - plen)
                covered.update(range(first, first + count))
                expanded += count
            else:
                short.setdefault(plen, set()).add(value)
        self.short: tuple[tuple[int, frozenset[int]], ...] = tuple(
            (full ^ ((1 << (bits - plen)) - 1), frozenset(vals))
            for plen, vals in sorted(short.items())
        )
        buckets: dict[int, bool | tuple[tuple[int, frozenset[int]], ...]] = {}
        for key in covered:
            buckets[key] = True
        for key, by_len in long_.items():
            if key in covered:
                continue
            buckets[key] = tuple(
                (full ^ ((1 << (bits - plen)) - 1), frozenset(vals))
                for plen, vals in sorted(by_len.items())
            )
        self.buckets = buckets
        self.contains: Callable[[int], bool] = _make_contains(self.short, buckets, self.shift)
        """True when an integer address lies in one of the family's prefixes."""


def _make_contains(short: tuple[tuple[int, frozenset[int]], ...],
                   buckets: dict[int, bool | tuple[tuple[int, frozenset[int]], ...]],
                   shift: int) -> Callable[[int], bool]:
    """A lookup closure over local variables (cheaper than attribute loads per call)."""
    get = buckets.get

    if not short:
        def contains(value: int) -> bool:
            b = get(value >> shift)
            if b is None:
                return False
            if b is True:
                return True
            for mask, vals in b:  # type: ignore[union-attr]
                if value & mask in vals:
                    return True
            return False

        return contains

    def contains_with_short(value: int) -> bool:
        for mask, vals in short:
            if value & mask in vals:
                return True
        b = get(value >> shift)
        if b is None:
            return False
        if b is True:
            return True
        for mask, vals in b:  # type: ignore[union-attr]
            if value & mask in vals:
                return True
        return False

    return contains_with_short


class PrefixSet:
    """An immutable set of IPv4/IPv6 CIDRs with constant-cost membership tests.

    Built from CIDR strings (``"10.0.0.0/8"``), bare addresses (``"192.0.2.1"`` = /32) or
    :mod:`ipaddress` networks/addresses. Invalid entries raise :class:`ConfigError` at
    construction: empty strings, host bits set (``10.0.0.1/8``), leading-zero octets, zones.
    IPv4-mapped IPv6 networks (``::ffff:10.0.0.0/104``) are stored as IPv4, matching how
    addresses are unwrapped.
    """

    __slots__ = ("_v4", "_v6", "_networks", "contains_v4", "contains_v6")

    def __init__(self, cidrs: Iterable[str | IPv4Network | IPv6Network | IPv4Address
                                       | IPv6Address] = ()) -> None:
        if isinstance(cidrs, str | bytes):
            raise ConfigError(
                f"cidrs: expected an iterable of CIDRs, got the single string {cidrs!r}",
                code="bad-cidr")
        try:
            entries = iter(cidrs)
        except TypeError:
            raise ConfigError(
                f"cidrs: expected an iterable of CIDRs, got {type(cidrs).__name__} {cidrs!r}",
                code="bad-cidr") from None
        nets: list[IPv4Network | IPv6Network] = []
        for i, entry in enumerate(entries):
            nets.append(_to_network(entry, i))
        nets = _unwrap_mapped(nets)
        self._networks: tuple[IPv4Network | IPv6Network, ...] = tuple(
            sorted(set(nets), key=lambda n: (n.version, int(n.network_address), n.prefixlen)))
        v4 = [(int(n.network_address), n.prefixlen) for n in self._networks if n.version == 4]
        v6 = [(int(n.network_address), n.prefixlen) for n in self._networks if n.version == 6]
        self._v4 = _Family(32, 16, 8, v4)
        self._v6 = _Family(128, 32, 24, v6)
        self.contains_v4: Callable[[int], bool] = self._v4.contains
        """True when the IPv4 address given as an integer is in the set."""
        self.contains_v6: Callable[[int], bool] = self._v6.contains
        """True when the IPv6 address given as an integer is in the set."""

    def contains_int(self, version: int, value: int) -> bool:
        """True when the integer address of the given version (4 or 6) is in the set."""
        if version == 4:
            return self._v4.contains(value)
        return self._v6.contains(value)

    def __contains__(self, item: object) -> bool:
        """Membership of an address: str (strict token, port allowed) or ipaddress object.

        IPv4-mapped IPv6 addresses are matched as IPv4. Unparsable strings are not members.
        """
        if isinstance(item, IPv4Address):
            return self._v4.contains(int(item))
        if isinstance(item, IPv6Address):
            value = int(item)
            if value >> 32 == 0xFFFF:
                return self._v4.contains(value & 0xFFFFFFFF)
            return self._v6.contains(value)
        if isinstance(item, str):
            r = parse_token_fast(item.strip())
            if isinstance(r, str):
                return False
            return self.contains_int(r[0], r[1])
        return False

    def __iter__(self) -> Iterator[IPv4Network | IPv6Network]:
        return iter(self._networks)

    def __len__(self) -> int:
        return len(self._networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrefixSet) and self._networks == other._networks

    def __hash__(self) -> int:
        return hash(self._networks)

    def __repr__(self) -> str:
        shown = ", ".join(repr(str(n)) for n in self._networks[:8])
        more = f", ... ({len(self._networks)} total)" if len(self._networks) > 8 else ""
        return f"PrefixSet([{shown}{more}])"


def _to_network(entry: object, index: int) -> IPv4Network | IPv6Network:
    """Validate one configuration entry into a network; raise ConfigError naming it."""
    if isinstance(entry, IPv4Network | IPv6Network):
        return entry
    if isinstance(entry, IPv4Address | IPv6Address):
        return ip_network(entry)
    if not isinstance(entry, str):
        raise ConfigError(f"cidrs[{index}]: expected a CIDR string, got {type(entry).__name__}",
                          code="bad-cidr")
    text = entry.strip()
    if not text:
        raise ConfigError(f"cidrs[{index}]: empty entry would be ambiguous", code="bad-cidr")
    addr_part, slash, len_part = text.partition("/")
    r = parse_token_fast(addr_part)
    if isinstance(r, str) and r != "unspecified":
        raise ConfigError(f"cidrs[{index}]: {entry!r} is not an IPv4/IPv6 CIDR "
                          f"({'leading zero' if r == 'leading-zero' else r})", code="bad-cidr")
    if not isinstance(r, str) and r[3] is not None:
        raise ConfigError(f"cidrs[{index}]: {entry!r} has a port", code="bad-cidr")
    if "%" in addr_part:
        raise ConfigError(f"cidrs[{index}]: {entry!r} has a zone id", code="bad-cidr")
    if slash and not (len_part.isascii() and len_part.isdigit() and len(len_part) <= 3):
        raise ConfigError(f"cidrs[{index}]: {entry!r} has a bad prefix length", code="bad-cidr")
    try:
        return ip_network(text.strip("[]") if not slash else text, strict=True)
    except ValueError as exc:
        raise ConfigError(f"cidrs[{index}]: {entry!r} is not a valid CIDR ({exc})",
                          code="bad-cidr") from None


def _unwrap_mapped(nets: list[IPv4Network | IPv6Network]) -> list[IPv4Network | IPv6Network]:
    """Store ``::ffff:a.b.c.d/96+n`` as ``a.b.c.d/n`` (and ``::ffff:0:0/96`` as 0.0.0.0/0)."""
    out: list[IPv4Network | IPv6Network] = []
    for n in nets:
        value = int(n.network_address)
        if n.version == 6 and n.prefixlen >= 96 and value >> 32 == 0xFFFF:
            out.append(IPv4Network((value & 0xFFFFFFFF, n.prefixlen - 96)))
        else:
            out.append(n)
    return out
