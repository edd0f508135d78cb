"""Strategies: each one states what it trusts and turns (socket peer, request headers) into a
:class:`ClientIP`.

Contract shared by every strategy:

* Construction validates everything and raises :class:`ConfigError` (bad CIDR, header name,
  hop count). ``resolve`` never raises for any peer or header content: a hostile or broken request
  yields a result whose ``ip`` is None (fail closed) or the peer, with ``code`` saying why.
* ``headers`` is a mapping from **lower-case** header names to the field lines in the order
  received (``str`` means one line); see :func:`headers_from_pairs` and the WSGI/ASGI shells.
* Header strategies check the socket peer first: when it is not a trusted proxy, headers are
  ignored and the peer is the answer (``code="untrusted-peer"``). A peer that is not an IP
  (Unix socket: None or a path) is untrusted unless ``trust_non_ip_peer=True``.
* When every list entry is a trusted proxy the answer is None (``all-trusted``), not the leftmost
  entry: that entry could have been sent by the client and forwarded verbatim.

Hops are counted from the right: hop 0 is the rightmost entry, appended by the proxy nearest to
the application.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import NamedTuple, Protocol

from .addr import _CACHE, CACHE_SIZE, parse_token_cached, parse_token_fast
from .errors import ConfigError
from .headers import (
    DEFAULT_MAX_HOPS,
    DEFAULT_MAX_LENGTH,
    WEB_SCHEMES,
    _node_fast,
    _parse_pairs,
    split_forwarded,
    valid_header_name,
    valid_host,
)
from .prefixset import PrefixSet

__all__ = [
    "NON_PUBLIC",
    "Chain",
    "ClientIP",
    "ForwardedInfo",
    "HeaderMap",
    "RemoteAddress",
    "RightmostTrustedCount",
    "RightmostTrustedRange",
    "SingleIPHeader",
    "Strategy",
    "TrustedForwardedInfo",
    "UnsafeLeftmostNonPrivate",
    "headers_from_pairs",
]

HeaderMap = Mapping[str, "str | Sequence[str]"]
CIDRs = PrefixSet | Iterable["str | IPv4Network | IPv6Network | IPv4Address | IPv6Address"]

# Pinned special-purpose table (IANA IPv4/IPv6 special-purpose registries, multicast and
# reserved space). Not ipaddress.is_private/is_global, whose answers change between Python
# versions (CVE-2024-4032).
NON_PUBLIC = PrefixSet([
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/127", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
    "2002::/16", "3fff::/20", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
])
"""Addresses that are never a public client: private, loopback, link-local, CGNAT, documentation,
benchmarking, multicast, reserved, ULA, Teredo/6to4/NAT64 and friends."""

_LIST_HEADERS = frozenset({"x-forwarded-for", "forwarded"})

_REASONS: dict[str, str] = {
    "peer": "the socket peer; this strategy trusts no header",
    "peer-not-ip": "the socket peer is not an IP address (e.g. a Unix socket)",
    "untrusted-peer": "the socket peer is not a trusted proxy, so {detail} was ignored",
    "single-header": "{header} as set by the trusted proxy in front (the socket peer)",
    "rightmost-untrusted": "the rightmost {header} entry that is not a trusted proxy "
                           "(hop {hop} from the right)",
    "trusted-count": "the {header} entry at hop {hop} from the right, after the trusted hops",
    "leftmost-non-private": "UNSAFE: the leftmost non-private {header} entry (hop {hop} from "
                            "the right); any client can choose it",
    "no-header": "{header} is absent although the peer is a trusted proxy",
    "invalid-hop": "{header} entry at hop {hop} from the right is not a valid address "
                   "({detail})",
    "not-an-ip-hop": "{header} entry at hop {hop} from the right is a valid node but not an IP "
                     "({detail})",
    "all-trusted": "every {header} entry is a trusted proxy; refusing to guess",
    "too-few-hops": "{header} has {detail} entries, fewer than the trusted hop count",
    "too-long": "{header} is longer than the configured limit",
    "too-many-hops": "{header} has more entries than the configured limit",
    "invalid-header": "{header} is not a single valid address ({detail})",
    "no-public": "no non-private address in {header}",
    "chain-empty": "no strategy in the chain produced an address",
}


class ClientIP(NamedTuple):
    """The outcome of a strategy: which IP, from where, and why (immutable).

    ``ip`` is canonical text (IPv4-mapped unwrapped, RFC 5952 IPv6) or None when no client IP
    could be determined safely. ``header`` is the lower-case header the IP came from (None for
    the socket peer); ``hop`` counts entries from the right (0 = nearest proxy's entry).
    ``code`` is a stable machine-readable reason; :attr:`reason` is the sentence. ``peer`` is
    the socket peer as given; ``detail`` adds specifics (an address error code, a count).

    A NamedTuple rather than a frozen dataclass: one is built per request and a tuple is
    several times cheaper to build; it is only ever built by the strategies here.
    """

    ip: str | None
    code: str
    peer: str | None = None
    port: int | None = None
    header: str | None = None
    hop: int | None = None
    detail: str | None = None

    @property
    def reason(self) -> str:
        """A human sentence explaining ``code``."""
        template = _REASONS.get(self.code, self.code)
        return template.format(header=self.header or "the header", hop=self.hop,
                               detail=self.detail)

    @property
    def address(self) -> IPv4Address | IPv6Address | None:
        """``ip`` as an :mod:`ipaddress` object, or None."""
        return None if self.ip is None else ip_address(self.ip)

    @property
    def from_peer(self) -> bool:
        """True when the IP is the socket peer rather than a header entry."""
        return self.ip is not None and self.header is None

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict of every field plus ``reason``."""
        return {"ip": self.ip, "port": self.port, "header": self.header, "hop": self.hop,
                "code": self.code, "reason": self.reason, "detail": self.detail,
                "peer": self.peer}


class Strategy(Protocol):
    """Anything with ``resolve(peer, headers) -> ClientIP`` and the header names it reads."""

    @property
    def header_names(self) -> frozenset[str]: ...

    def resolve(self, peer: str | None, headers: HeaderMap) -> ClientIP: ...


def headers_from_pairs(pairs: Iterable[tuple[str | bytes, str | bytes]],
                       names: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Build a header map (lower-case name -> lines in order) from (name, value) pairs.

    Bytes are decoded as latin-1 (as HTTP/1.1 servers do). Names containing ``_`` are dropped
    (they can be smuggled as ``-`` by CGI-style servers). ``names`` restricts the map.
    """
    wanted = None if names is None else frozenset(n.lower() for n in names)
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        name = name.lower()
        if "_" in name or (wanted is not None and name not in wanted):
            continue
        out.setdefault(name, []).append(value)
    return out


def _prefixset(value: object, what: str) -> PrefixSet:
    if isinstance(value, PrefixSet):
        return value
    if value is None:
        raise ConfigError(f"{what}: required (a list of CIDRs such as ['10.0.0.0/8'])",
                          code="bad-config")
    try:
        return PrefixSet(value)  # type: ignore[arg-type]
    except ConfigError as exc:
        if exc.args and str(exc.args[0]).startswith("cidrs"):  # name the parameter
            raise ConfigError(what + str(exc.args[0])[len("cidrs"):], code=exc.code) from None
        raise


def _header(name: object, what: str = "header") -> str:
    if not isinstance(name, str) or not valid_header_name(name):
        raise ConfigError(f"{what}: {name!r} is not an HTTP header name", code="bad-header")
    return name.lower()


def _check_limits(max_length: object, max_hops: object) -> None:
    for label, v in (("max_length", max_length), ("max_hops", max_hops)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{label}: {v!r} is not a positive integer", code="bad-config")


def _peer(peer: object) -> tuple[int, int, str, int | None] | None:
    """Parse the socket peer (never raises)."""
    if not isinstance(peer, str):
        return None
    r = parse_token_cached(peer)
    return None if isinstance(r, str) else r


def _safe_get(headers: HeaderMap, name: str) -> object:
    try:
        return headers.get(name)
    except Exception:  # noqa: BLE001 - a hostile mapping must not break resolution
        return None


def _lines(headers: HeaderMap, name: str) -> str | None:
    """Joined field lines of a list header, or None when absent/empty (never raises)."""
    try:
        value = headers.get(name)
    except Exception:  # noqa: BLE001 - a hostile mapping must not break resolution
        return None
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip(" \t") else None
    try:
        parts = [v for v in value if isinstance(v, str) and v.strip(" \t")]
    except TypeError:
        return None
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else ",".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteAddress:
    """Trust nothing but the socket peer. ``ip`` is the peer, or None if it is not an IP."""

    header_names: frozenset[str] = field(default=frozenset(), init=False)

    def resolve(self, peer: str | None, headers: HeaderMap | None = None) -> ClientIP:
        """The socket peer (``code="peer"``) or None (``peer-not-ip``)."""
        p = _peer(peer)
        if p is None:
            return ClientIP(ip=None, code="peer-not-ip", peer=peer)
        return ClientIP(ip=p[2], code="peer", peer=peer, port=p[3])


class _PeerCheck:
    """Mixin logic: is the peer a trusted proxy?"""

    __slots__ = ()

    @staticmethod
    def untrusted(peer: str | None, trusted: PrefixSet, trust_non_ip_peer: bool,
                  header: str) -> ClientIP | None:
        """The result to return when the peer is not trusted, else None (go on)."""
        p = _peer(peer)
        if p is None:
            if trust_non_ip_peer:
                return None
            return ClientIP(ip=None, code="peer-not-ip", peer=peer, header=header)
        if trusted.contains_int(p[0], p[1]):
            return None
        return ClientIP(ip=p[2], code="untrusted-peer", peer=peer, port=p[3], detail=header)


@dataclass(frozen=True, slots=True, kw_only=True)
class SingleIPHeader:
    """Trust one single-address header (X-Real-IP, CF-Connecting-IP, True-Client-IP, ...) set by
    the one proxy in front, which must be the socket peer and in ``trusted_proxies``.

    The **last** field line is used (a proxy that adds a line adds it last). X-Forwarded-For and
    Forwarded are refused: they are lists, use a rightmost strategy.
    """

    header: str = "x-real-ip"
    trusted_proxies: CIDRs
    trust_non_ip_peer: bool = False
    header_names: frozenset[str] = field(default=frozenset(), init=False)

    def __post_init__(self) -> None:
        name = _header(self.header)
        if name in _LIST_HEADERS:
            raise ConfigError(f"header: {name} is a list header; use RightmostTrustedRange or "
                              "RightmostTrustedCount", code="bad-header")
        object.__setattr__(self, "header", name)
        object.__setattr__(self, "trusted_proxies",
                           _prefixset(self.trusted_proxies, "trusted_proxies"))
        object.__setattr__(self, "header_names", frozenset({name}))

    def resolve(self, peer: str | None, headers: HeaderMap) -> ClientIP:
        """The header's address, the peer if it is untrusted, or None with the reason."""
        name = self.header
        bad = _PeerCheck.untrusted(peer, self.trusted_proxies,  # type: ignore[arg-type]
                                   self.trust_non_ip_peer, name)
        if bad is not None:
            return bad
        try:
            value = headers.get(name)
        except Exception:  # noqa: BLE001
            value = None
        if isinstance(value, str):
            last = value
        elif value is None:
            last = ""
        else:
            try:
                seq = [v for v in value if isinstance(v, str) and v.strip(" \t")]
            except TypeError:
                seq = []
            last = seq[-1] if seq else ""
        last = last.strip(" \t")
        if not last:
            return ClientIP(ip=None, code="no-header", peer=peer, header=name)
        r = parse_token_cached(last) if "," not in last else "list"
        if isinstance(r, str):
            return ClientIP(ip=None, code="invalid-header", peer=peer, header=name, detail=r)
        return ClientIP(ip=r[2], code="single-header", peer=peer, port=r[3], header=name, hop=0)


def _hops(headers: HeaderMap, name: str, max_length: int, max_hops: int,
          peer: str | None) -> list[str] | ClientIP:
    """Raw entries of a list header (leftmost first), or a failure result."""
    joined = _lines(headers, name)
    if joined is None:
        return ClientIP(ip=None, code="no-header", peer=peer, header=name)
    if len(joined) > max_length:
        return ClientIP(ip=None, code="too-long", peer=peer, header=name)
    if name == "forwarded":
        parts = _forwarded_for_values(joined)
    else:
        parts = joined.split(",")
    if len(parts) > max_hops:
        return ClientIP(ip=None, code="too-many-hops", peer=peer, header=name)
    return parts


def _forwarded_for_values(joined: str) -> list[str]:
    """The ``for=`` value of each Forwarded element (``"\\x00"`` + code when unusable)."""
    out = []
    for text, _broken in split_forwarded(joined):
        pairs = _parse_pairs(text.strip(" \t"))
        if isinstance(pairs, str):
            out.append("\x00" + pairs)
            continue
        value = next((v for n, v in pairs if n == "for"), None)
        out.append("\x00no-for" if value is None else value)
    return out


def _parse_hop(name: str, raw: str) -> tuple[int, int, str, int | None] | str:
    """Parse one hop of ``name`` (XFF token or Forwarded node) without raising."""
    if name == "forwarded":
        if raw[:1] == "\x00":
            return raw[1:]
        return _node_fast(raw)
    return parse_token_cached(raw.strip(" \t"))


@dataclass(frozen=True, slots=True, kw_only=True)
class RightmostTrustedRange:
    """The rightmost entry of a list header that is not in ``trusted_proxies``.

    The socket peer must be in ``trusted_proxies`` (else the peer is the answer). Walking from
    the right, trusted entries are skipped; the first other entry must be a valid IP, else the
    answer is None (``invalid-hop``). All entries trusted: None (``all-trusted``). This is the
    recommended strategy when the proxies' addresses are known.
    """

    header: str = "x-forwarded-for"
    trusted_proxies: CIDRs
    trust_non_ip_peer: bool = False
    max_length: int = DEFAULT_MAX_LENGTH
    max_hops: int = DEFAULT_MAX_HOPS
    header_names: frozenset[str] = field(default=frozenset(), init=False)
    _peer_memo: dict[str, ClientIP | bool] = field(default_factory=dict, init=False,
                                                    repr=False, compare=False)

    def _judge_peer(self, peer: str | None) -> ClientIP | bool:
        """True when the peer is a trusted proxy, else the (immutable) result to return."""
        p = _peer(peer)
        if p is None:
            if self.trust_non_ip_peer:
                return True
            return ClientIP(None, "peer-not-ip", peer, None, self.header)
        if self.trusted_proxies.contains_int(p[0], p[1]):  # type: ignore[union-attr]
            return True
        return ClientIP(p[2], "untrusted-peer", peer, p[3], None, None, self.header)

    def __post_init__(self) -> None:
        name = _header(self.header)
        if name not in _LIST_HEADERS:
            raise ConfigError(f"header: {name} is not a list header (x-forwarded-for or "
                              "forwarded); use SingleIPHeader", code="bad-header")
        _check_limits(self.max_length, self.max_hops)
        ps = _prefixset(self.trusted_proxies, "trusted_proxies")
        if not ps:
            raise ConfigError("trusted_proxies: empty; with no trusted proxy no header can be "
                              "believed (use RemoteAddress)", code="bad-config")
        object.__setattr__(self, "header", name)
        object.__setattr__(self, "trusted_proxies", ps)
        object.__setattr__(self, "header_names", frozenset({name}))

    def resolve(self, peer: str | None, headers: HeaderMap) -> ClientIP:
        """See the class docstring; never raises."""
        # Hot path, deliberately inlined: cached token parses, one split, no allocations
        # besides the split list and the result.
        name = self.header
        trusted: PrefixSet = self.trusted_proxies  # type: ignore[assignment]
        memo = self._peer_memo
        verdict = memo.get(peer) if peer.__class__ is str else None  # type: ignore[arg-type]
        if verdict is None:
            verdict = self._judge_peer(peer)
            if peer.__class__ is str:
                if len(memo) >= CACHE_SIZE:
                    memo.clear()
                memo[peer] = verdict  # type: ignore[index]
        if verdict is not True:
            return verdict  # type: ignore[return-value]
        if name == "x-forwarded-for":
            value = headers.get(name) if headers.__class__ is dict else _safe_get(headers, name)
            if value.__class__ is str and value:
                joined: str | None = value  # type: ignore[assignment]
            else:
                joined = _lines(headers, name)
            if joined is None:
                return ClientIP(None, "no-header", peer, None, name)
            if len(joined) > self.max_length:
                return ClientIP(None, "too-long", peer, None, name)
            parts = joined.split(",")
            if len(parts) > self.max_hops:
                return ClientIP(None, "too-many-hops", peer, None, name)
            c4 = trusted.contains_v4
            c6 = trusted.contains_v6
            cache_get = _CACHE.get
            last = len(parts) - 1
            for i in range(last, -1, -1):
                tok = parts[i].strip(" \t")
                r = cache_get(tok)
                if r is None:
                    r = parse_token_fast(tok)
                    if len(_CACHE) >= CACHE_SIZE:
                        _CACHE.clear()
                    _CACHE[tok] = r
                if isinstance(r, str):
                    if last == 0 and r == "empty":  # a whitespace-only header
                        return ClientIP(None, "no-header", peer, None, name)
                    return ClientIP(None, "invalid-hop", peer, None, name, last - i, r)
                if not (c4 if r[0] == 4 else c6)(r[1]):
                    return ClientIP(r[2], "rightmost-untrusted", peer, r[3], name, last - i)
            return ClientIP(None, "all-trusted", peer, None, name)
        parts_or = _hops(headers, name, self.max_length, self.max_hops, peer)
        if isinstance(parts_or, ClientIP):
            return parts_or
        contains = trusted.contains_int
        last = len(parts_or) - 1
        for i in range(last, -1, -1):
            r2 = _parse_hop(name, parts_or[i])
            if isinstance(r2, str):
                code = "not-an-ip-hop" if r2 in ("unknown", "obfuscated") else "invalid-hop"
                return ClientIP(None, code, peer, None, name, last - i, r2)
            if not contains(r2[0], r2[1]):
                return ClientIP(r2[2], "rightmost-untrusted", peer, r2[3], name, last - i)
        return ClientIP(None, "all-trusted", peer, None, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class RightmostTrustedCount:
    """The entry at hop ``trusted_hops - 1`` from the right of a list header.

    ``trusted_hops`` is the number of reverse proxies in front of the application, each of
    which appends the address it received the connection from. Fewer entries, or an invalid
    entry at that hop: None. With ``trusted_proxies`` the socket peer must be in it (else the
    peer is the answer); without it, the application MUST only be reachable through those
    proxies (e.g. a NetworkPolicy), because the count alone cannot see a direct client.
    """

    header: str = "x-forwarded-for"
    trusted_hops: int
    trusted_proxies: CIDRs | None = None
    trust_non_ip_peer: bool = False
    max_length: int = DEFAULT_MAX_LENGTH
    max_hops: int = DEFAULT_MAX_HOPS
    header_names: frozenset[str] = field(default=frozenset(), init=False)

    def __post_init__(self) -> None:
        name = _header(self.header)
        if name not in _LIST_HEADERS:
            raise ConfigError(f"header: {name} is not a list header", code="bad-header")
        n = self.trusted_hops
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"trusted_hops: {n!r} is not an integer >= 1", code="bad-config")
        _check_limits(self.max_length, self.max_hops)
        if n > self.max_hops:
            raise ConfigError(f"trusted_hops: {n} exceeds max_hops {self.max_hops}",
                              code="bad-config")
        object.__setattr__(self, "header", name)
        if self.trusted_proxies is not None:
            object.__setattr__(self, "trusted_proxies",
                               _prefixset(self.trusted_proxies, "trusted_proxies"))
        object.__setattr__(self, "header_names", frozenset({name}))

    def resolve(self, peer: str | None, headers: HeaderMap) -> ClientIP:
        """See the class docstring; never raises."""
        name = self.header
        if self.trusted_proxies is not None:
            bad = _PeerCheck.untrusted(peer, self.trusted_proxies,  # type: ignore[arg-type]
                                       self.trust_non_ip_peer, name)
            if bad is not None:
                return bad
        parts = _hops(headers, name, self.max_length, self.max_hops, peer)
        if isinstance(parts, ClientIP):
            return parts
        hop = self.trusted_hops - 1
        if len(parts) <= hop:
            return ClientIP(ip=None, code="too-few-hops", peer=peer, header=name,
                            detail=str(len(parts)))
        r = _parse_hop(name, parts[len(parts) - 1 - hop])
        if isinstance(r, str):
            code = "not-an-ip-hop" if r in ("unknown", "obfuscated") else "invalid-hop"
            return ClientIP(ip=None, code=code, peer=peer, header=name, hop=hop, detail=r)
        return ClientIP(ip=r[2], code="trusted-count", peer=peer, port=r[3], header=name,
                        hop=hop)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnsafeLeftmostNonPrivate:
    """UNSAFE, spoofable: the leftmost valid entry that is not in :data:`NON_PUBLIC`.

    Any client can put any address on the left of X-Forwarded-For, so never use this for
    security decisions (allow-lists, rate limits, audit logs). It exists for analytics-style
    "best guess" use and for comparison with python-ipware's default. No peer check is made.
    """

    header: str = "x-forwarded-for"
    max_length: int = DEFAULT_MAX_LENGTH
    max_hops: int = DEFAULT_MAX_HOPS
    header_names: frozenset[str] = field(default=frozenset(), init=False)

    def __post_init__(self) -> None:
        name = _header(self.header)
        if name not in _LIST_HEADERS:
            raise ConfigError(f"header: {name} is not a list header", code="bad-header")
        _check_limits(self.max_length, self.max_hops)
        object.__setattr__(self, "header", name)
        object.__setattr__(self, "header_names", frozenset({name}))

    def resolve(self, peer: str | None, headers: HeaderMap) -> ClientIP:
        """See the class docstring; never raises."""
        name = self.header
        parts = _hops(headers, name, self.max_length, self.max_hops, peer)
        if isinstance(parts, ClientIP):
            return parts
        last = len(parts) - 1
        for i, raw in enumerate(parts):
            r = _parse_hop(name, raw)
            if isinstance(r, str) or NON_PUBLIC.contains_int(r[0], r[1]):
                continue
            return ClientIP(ip=r[2], code="leftmost-non-private", peer=peer, port=r[3],
                            header=name, hop=last - i)
        return ClientIP(ip=None, code="no-public", peer=peer, header=name)


class Chain:
    """Try strategies in order; the first result with an IP wins.

    If none has one, the last strategy's result is returned (so its reason is kept). Typical:
    ``Chain(RightmostTrustedRange(...), RemoteAddress())`` to fall back to the peer.
    """

    __slots__ = ("strategies", "header_names")

    def __init__(self, *strategies: Strategy) -> None:
        if not strategies:
            raise ConfigError("Chain: needs at least one strategy", code="bad-config")
        for i, s in enumerate(strategies):
            if not callable(getattr(s, "resolve", None)):
                raise ConfigError(f"strategies[{i}]: {s!r} has no resolve()", code="bad-config")
        self.strategies: tuple[Strategy, ...] = tuple(strategies)
        names: set[str] = set()
        for s in strategies:
            names |= s.header_names
        self.header_names: frozenset[str] = frozenset(names)

    def resolve(self, peer: str | None, headers: HeaderMap) -> ClientIP:
        """The first result with an IP, else the last result; never raises."""
        result = None
        for s in self.strategies:
            result = s.resolve(peer, headers)
            if result.ip is not None:
                return result
        assert result is not None
        return result

    def __repr__(self) -> str:
        return f"Chain({', '.join(map(repr, self.strategies))})"


# --- scheme / host / port -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardedInfo:
    """Scheme, host and port as reported by a trusted proxy (each None when not trusted/valid).

    ``notes`` lists why a value was not taken (``"x-forwarded-proto: bad-proto"``).
    """

    scheme: str | None = None
    host: str | None = None
    port: int | None = None
    trusted: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustedForwardedInfo:
    """Opt-in trust of the scheme/host/port a proxy reports, separate from the client IP.

    Each of ``proto``, ``host`` and ``port`` is its own decision (default: none). Values come
    from ``X-Forwarded-Proto/-Host/-Port`` (``source="x-forwarded"``) or from the ``proto=`` and
    ``host=`` of RFC 7239 Forwarded (``source="forwarded"``; the port comes from ``host``),
    taking entry ``hops - 1`` from the right, and only when the socket peer is in
    ``trusted_proxies``. Schemes other than http/https/ws/wss and malformed hosts are ignored.
    """

    trusted_proxies: CIDRs
    proto: bool = False
    host: bool = False
    port: bool = False
    source: str = "x-forwarded"
    hops: int = 1
    trust_non_ip_peer: bool = False
    header_names: frozenset[str] = field(default=frozenset(), init=False)

    def __post_init__(self) -> None:
        if self.source not in ("x-forwarded", "forwarded"):
            raise ConfigError(f"source: {self.source!r} is not 'x-forwarded' or 'forwarded'",
                              code="bad-config")
        if not isinstance(self.hops, int) or isinstance(self.hops, bool) or self.hops < 1:
            raise ConfigError(f"hops: {self.hops!r} is not an integer >= 1", code="bad-config")
        object.__setattr__(self, "trusted_proxies",
                           _prefixset(self.trusted_proxies, "trusted_proxies"))
        if self.source == "forwarded":
            names = {"forwarded"}
        else:
            names = {f"x-forwarded-{k}" for k in ("proto", "host", "port")
                     if getattr(self, k)}
        object.__setattr__(self, "header_names", frozenset(names))

    def resolve(self, peer: str | None, headers: HeaderMap) -> ForwardedInfo:
        """The trusted values; never raises."""
        p = _peer(peer)
        if p is None:
            if not self.trust_non_ip_peer:
                return ForwardedInfo(notes=("peer-not-ip",))
        elif not self.trusted_proxies.contains_int(p[0], p[1]):  # type: ignore[union-attr]
            return ForwardedInfo(notes=("untrusted-peer",))
        notes: list[str] = []
        if self.source == "forwarded":
            return self._forwarded(headers, notes)
        scheme = host = port = None
        if self.proto:
            v = self._entry(headers, "x-forwarded-proto", notes)
            if v is not None:
                if v.lower() in WEB_SCHEMES:
                    scheme = v.lower()
                else:
                    notes.append("x-forwarded-proto: bad-proto")
        if self.host:
            v = self._entry(headers, "x-forwarded-host", notes)
            if v is not None:
                if valid_host(v):
                    host = v
                else:
                    notes.append("x-forwarded-host: bad-host")
        if self.port:
            v = self._entry(headers, "x-forwarded-port", notes)
            if v is not None:
                if 0 < len(v) <= 5 and v.isascii() and v.isdigit() and 0 < int(v) <= 65535:
                    port = int(v)
                else:
                    notes.append("x-forwarded-port: bad-port")
        return ForwardedInfo(scheme=scheme, host=host, port=port, trusted=True,
                             notes=tuple(notes))

    def _entry(self, headers: HeaderMap, name: str, notes: list[str]) -> str | None:
        joined = _lines(headers, name)
        if joined is None:
            notes.append(f"{name}: missing")
            return None
        if len(joined) > DEFAULT_MAX_LENGTH:
            notes.append(f"{name}: too-long")
            return None
        parts = joined.rsplit(",", self.hops)
        if len(parts) < self.hops:
            notes.append(f"{name}: too-few-hops")
            return None
        return parts[-self.hops].strip(" \t")

    def _forwarded(self, headers: HeaderMap, notes: list[str]) -> ForwardedInfo:
        joined = _lines(headers, "forwarded")
        if joined is None or len(joined) > DEFAULT_MAX_LENGTH:
            notes.append("forwarded: missing" if joined is None else "forwarded: too-long")
            return ForwardedInfo(trusted=True, notes=tuple(notes))
        elements = split_forwarded(joined)
        if len(elements) < self.hops:
            notes.append("forwarded: too-few-hops")
            return ForwardedInfo(trusted=True, notes=tuple(notes))
        pairs = _parse_pairs(elements[-self.hops][0].strip(" \t"))
        if isinstance(pairs, str):
            notes.append(f"forwarded: {pairs}")
            return ForwardedInfo(trusted=True, notes=tuple(notes))
        d = dict(pairs)
        scheme = host = port = None
        if self.proto and "proto" in d:
            if d["proto"].lower() in WEB_SCHEMES:
                scheme = d["proto"].lower()
            else:
                notes.append("forwarded: bad-proto")
        if (self.host or self.port) and "host" in d:
            if valid_host(d["host"]):
                h = d["host"]
                if self.host:
                    host = h
                if self.port:
                    bracket = h.rfind("]")
                    colon = h.rfind(":")
                    if colon > bracket and colon >= 0:
                        port = int(h[colon + 1 :]) or None
            else:
                notes.append("forwarded: bad-host")
        return ForwardedInfo(scheme=scheme, host=host, port=port, trusted=True,
                             notes=tuple(notes))
