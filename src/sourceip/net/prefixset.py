"""PrefixSet: membership and longest-prefix match over many CIDRs at a cost independent of
their number (one hash probe per distinct prefix length present)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from sourceip.net.addr import IPAddress, IPNetwork, parse_ip, parse_network

V = TypeVar("V")


class PrefixMap(Generic[V]):
    """Maps CIDRs to values; ``lookup`` returns the value of the longest prefix containing an
    address. Lookup cost grows with the number of distinct prefix lengths, not of prefixes."""

    __slots__ = ("_tables", "_lengths", "_networks")

    def __init__(self, items: Iterable[tuple[IPNetwork | IPAddress | str, V]] = ()) -> None:
        # (version, prefixlen) -> {network int: value}
        self._tables: dict[tuple[int, int], dict[int, V]] = {}
        self._lengths: dict[int, list[int]] = {4: [], 6: []}
        self._networks: dict[IPNetwork, V] = {}
        for net, value in items:
            self.add(net, value)

    def add(self, net: IPNetwork | IPAddress | str, value: V) -> None:
        """Add (or replace) ``net`` (an address is a host prefix) with ``value``."""
        if isinstance(net, str):
            net = parse_network(net)
        elif not isinstance(net, IPNetwork.__args__):  # type: ignore[attr-defined]
            net = parse_network(str(net))
        key = (net.version, net.prefixlen)
        table = self._tables.get(key)
        if table is None:
            table = self._tables[key] = {}
            lengths = self._lengths[net.version]
            lengths.append(net.prefixlen)
            lengths.sort(reverse=True)
        table[int(net.network_address)] = value
        self._networks[net] = value

    def lookup(self, addr: IPAddress | str) -> V | None:
        """The value of the longest prefix containing ``addr``, or None."""
        if isinstance(addr, str):
            addr = parse_ip(addr)
        version = addr.version
        value = int(addr)
        bits = 32 if version == 4 else 128
        tables = self._tables
        for plen in self._lengths[version]:
            masked = (value >> (bits - plen)) << (bits - plen) if plen else 0
            hit = tables[(version, plen)].get(masked)
            if hit is not None:
                return hit
        return None

    def longest(self, addr: IPAddress | str) -> IPNetwork | None:
        """The longest prefix containing ``addr``, or None."""
        if isinstance(addr, str):
            addr = parse_ip(addr)
        version = addr.version
        value = int(addr)
        bits = 32 if version == 4 else 128
        for plen in self._lengths[version]:
            masked = (value >> (bits - plen)) << (bits - plen) if plen else 0
            if masked in self._tables[(version, plen)]:
                return parse_network(f"{type(addr)(masked)}/{plen}")
        return None

    def __len__(self) -> int:
        return len(self._networks)

    def __iter__(self) -> Iterator[IPNetwork]:
        return iter(self._networks)

    def items(self) -> Iterator[tuple[IPNetwork, V]]:
        return iter(self._networks.items())


class PrefixSet:
    """A set of CIDRs answering ``addr in s`` in time independent of how many CIDRs it holds."""

    __slots__ = ("_map",)

    def __init__(self, networks: Iterable[IPNetwork | IPAddress | str] = ()) -> None:
        self._map: PrefixMap[bool] = PrefixMap((n, True) for n in networks)

    def add(self, net: IPNetwork | IPAddress | str) -> None:
        self._map.add(net, True)

    def __contains__(self, addr: object) -> bool:
        if not isinstance(addr, str | IPAddress):
            return False
        return self._map.lookup(addr) is not None

    def longest(self, addr: IPAddress | str) -> IPNetwork | None:
        """The longest member containing ``addr``."""
        return self._map.longest(addr)

    def __len__(self) -> int:
        return len(self._map)

    def __iter__(self) -> Iterator[IPNetwork]:
        return iter(self._map)

    def __repr__(self) -> str:
        return f"PrefixSet({[str(n) for n in self]!r})"
