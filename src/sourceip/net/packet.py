"""Five-tuples and packets as the tracer moves them: immutable, rewritten by replacement."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sourceip.net.addr import PROTOCOLS, IPAddress, host_port, parse_ip


@dataclass(frozen=True, slots=True, kw_only=True)
class FiveTuple:
    """Protocol, source and destination address and port of one direction of a connection."""

    proto: str
    src: IPAddress
    sport: int
    dst: IPAddress
    dport: int

    def __post_init__(self) -> None:
        if self.proto not in PROTOCOLS:
            raise ValueError(f"proto: {self.proto!r} is not one of {', '.join(PROTOCOLS)}")
        if self.src.version != self.dst.version:
            raise ValueError("src and dst must be of the same IP family")
        for name in ("sport", "dport"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ValueError(f"{name}: {port} is outside 0-65535")

    @classmethod
    def of(cls, proto: str, src: str, sport: int, dst: str, dport: int) -> FiveTuple:
        """Build from text addresses."""
        return cls(proto=proto, src=parse_ip(src), sport=sport, dst=parse_ip(dst), dport=dport)

    def reversed(self) -> FiveTuple:
        """The tuple of the reply direction."""
        return FiveTuple(
            proto=self.proto, src=self.dst, sport=self.dport, dst=self.src, dport=self.sport
        )

    def __str__(self) -> str:
        return f"{self.proto} {host_port(self.src, self.sport)} -> " \
            f"{host_port(self.dst, self.dport)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Packet:
    """A packet at one point of its path: its tuple, interfaces, and netfilter mark."""

    tuple: FiveTuple
    iif: str | None = None
    oif: str | None = None
    mark: int = 0

    def with_(self, **changes: object) -> Packet:
        """A copy with ``changes`` applied (fields of Packet)."""
        if not changes.keys() <= _PACKET_FIELDS:
            return replace(self, **changes)  # type: ignore[arg-type]  # raises TypeError
        return Packet(
            tuple=changes.get("tuple", self.tuple),  # type: ignore[arg-type]
            iif=changes.get("iif", self.iif),  # type: ignore[arg-type]
            oif=changes.get("oif", self.oif),  # type: ignore[arg-type]
            mark=changes.get("mark", self.mark),  # type: ignore[arg-type]
        )

    @property
    def src(self) -> IPAddress:
        return self.tuple.src

    @property
    def dst(self) -> IPAddress:
        return self.tuple.dst


_PACKET_FIELDS = frozenset({"tuple", "iif", "oif", "mark"})
