"""ipset membership: what iptables' ``-m set --match-set NAME FLAGS`` decides for a packet
when the set's contents are known (an ``ipset save`` dump).

The one place these semantics live; ``evaluate.Evaluator(..., ipsets={name: IPSet})`` asks
``set_match`` and forks the walk when it answers None (set not given, type or option not
modelled). Semantics, from ipset's documentation (ipset(8), https://ipset.netfilter.org/
ipset.man.html, sections "SET TYPES" and "OTHER OPTIONS"; iptables-extensions(8) "set") and
the kernel's ``ip_set_test`` (net/netfilter/ipset/ip_set_core.c):

* ``FLAGS`` is one ``src``/``dst`` per dimension of the set type, in order (``dst,dst`` for
  ``hash:ip,port`` means destination address and destination port). Fewer flags than the type
  has dimensions: never matches (``opt->dim < set->type->dimension`` returns 0); extra flags
  are ignored (list:set passes them on to its members).
* A set of the other family (``family inet6`` for an IPv4 packet) never matches.
* ``hash:ip`` / ``bitmap:ip``: the address is an element (a network given as an element stands
  for each of its addresses, as ``ipset add`` expands it).
* ``hash:net``: the longest element prefix containing the address decides; an element added
  with ``nomatch`` is an exception ("the longest prefix wins, nomatch elements do not match").
  ``--return-nomatch`` reverses it: a nomatch element matches, a plain one does not.
  The same holds per dimension of ``hash:net,port``, ``hash:net,net``, ``hash:ip,port,net``.
* ``hash:ip,port`` / ``hash:net,port``: the port dimension is ``PROTO:PORT`` (``tcp`` when the
  element omits it); only protocols with ports (tcp, udp, sctp, udplite) are decided here.
  ``hash:ip,port,ip`` and ``hash:ip,port,net`` add a third address dimension.
* ``bitmap:port``: the port of a packet with ports (the protocol is not stored).
* ``list:set``: the member sets are tried in order; the first that matches matches.
* Counter conditions (``--packets-gt`` ...) depend on runtime state: not decided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from sourceip.net.addr import IPAddress, IPNetwork, parse_ip, parse_network
from sourceip.net.packet import FiveTuple
from sourceip.net.prefixset import PrefixMap

PORT_PROTOS = frozenset({"tcp", "udp", "sctp", "udplite"})
_NETS = (IPv4Network, IPv6Network)

# Dimension kinds of each set type modelled here ("ip": an address, "net": an address in a
# prefix, "port": PROTO:PORT, "bport": a bare port number).
SET_TYPES: dict[str, tuple[str, ...]] = {
    "hash:ip": ("ip",),
    "bitmap:ip": ("ip",),
    "hash:net": ("net",),
    "hash:ip,port": ("ip", "port"),
    "hash:net,port": ("net", "port"),
    "hash:net,net": ("net", "net"),
    "hash:ip,port,ip": ("ip", "port", "ip"),
    "hash:ip,port,net": ("ip", "port", "net"),
    "bitmap:port": ("bport",),
}

Member = (IPAddress | IPNetwork | int | tuple[int, int] | str
          | tuple[IPAddress | IPNetwork | str | int, ...])


@dataclass(frozen=True, slots=True)
class IPSet:
    """One ipset: ``type`` as ``ipset create`` names it, ``family`` ``inet``/``inet6``.

    ``members`` by type: ``hash:ip``/``bitmap:ip``/``hash:net``: addresses or networks;
    ``hash:ip,port``/``hash:net,port``: ``(addr, proto, port)``; ``hash:ip,port,ip`` /
    ``hash:ip,port,net``: ``(addr, proto, port, addr)``; ``hash:net,net``: ``(net, net)``;
    ``bitmap:port``: ports or ``(lo, hi)`` ranges; ``list:set``: set names. ``nomatch``: the
    elements added with the ``nomatch`` flag (net types). ``IPSet.from_text`` reads elements as
    ``ipset save`` writes them."""

    name: str
    type: str
    members: tuple[Member, ...] = ()
    family: str = "inet"
    nomatch: tuple[Member, ...] = ()
    _index: list[object] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def from_text(cls, name: str, type_: str, elements: Iterable[str],
                  family: str = "inet") -> IPSet:
        """Elements as in ``add NAME ELEMENT [options]`` lines (``10.0.0.1,tcp:80``,
        ``10.0.0.0/8 nomatch``, ``80``, ``1000-2000``, ``other-set``). Raises ValueError on an
        element the type cannot hold."""
        members: list[Member] = []
        nomatch: list[Member] = []
        for text in elements:
            words = text.split()
            if not words:
                continue
            m = parse_member(type_, words[0])
            (nomatch if "nomatch" in words[1:] else members).append(m)
        return cls(name=name, type=type_, members=tuple(members), family=family,
                   nomatch=tuple(nomatch))


def parse_member(type_: str, text: str) -> Member:
    """One element of a set of type ``type_`` as ``ipset save`` writes it."""
    if type_ == "list:set":
        return text
    if type_ == "bitmap:port":
        lo, sep, hi = text.partition("-")
        return (int(lo), int(hi)) if sep else int(text)
    dims = SET_TYPES.get(type_)
    if dims is None:
        return text  # kept; such a set is not decided
    parts = text.split(",")
    if len(parts) != len(dims):
        raise ValueError(f"{text!r} is not an element of a {type_} set")
    out: list[IPAddress | IPNetwork | str | int] = []
    for kind, part in zip(dims, parts, strict=True):
        if kind == "port":
            proto, sep, port = part.rpartition(":")
            out += [proto.lower() if sep else "tcp", int(port)]
        elif "/" in part:
            net = parse_network(part)
            out.append(net.network_address if net.prefixlen == net.max_prefixlen else net)
        else:
            out.append(parse_ip(part))
    return out[0] if len(out) == 1 else tuple(out)


@dataclass(frozen=True, slots=True)
class SetMatch:
    """``-m set [!] --match-set NAME FLAGS [--return-nomatch]`` as parsed from a rule."""

    name: str
    flags: tuple[str, ...]
    negate: bool = False
    return_nomatch: bool = False


_IGNORED = frozenset({"--update-counters", "--update-subcounters"})


def parse_set_match(text: str) -> SetMatch | None:
    """The ``-m set`` module text of an ``UnknownMatch``; None when it is not one, or has an
    option whose outcome depends on runtime state (counters)."""
    words = [w[1:-1] if len(w) > 1 and w[0] == w[-1] == '"' else w for w in text.split()]
    if words[:2] != ["-m", "set"]:
        return None
    name: str | None = None
    flags: tuple[str, ...] = ()
    negate = return_nomatch = pending_neg = False
    i = 2
    while i < len(words):
        w = words[i]
        if w == "!":
            pending_neg = True
            i += 1
            continue
        if w in ("--match-set", "--set") and i + 2 < len(words) and name is None:
            name, raw = words[i + 1], words[i + 2]
            flags = tuple(raw.split(","))
            if not flags or any(f not in ("src", "dst") for f in flags):
                return None
            negate, i = pending_neg, i + 3
        elif w == "--return-nomatch" and not pending_neg:
            return_nomatch, i = True, i + 1
        elif w in _IGNORED:  # counter bookkeeping only
            i += 1
        else:
            return None
        pending_neg = False
    if name is None:
        return None
    return SetMatch(name=name, flags=flags, negate=negate, return_nomatch=return_nomatch)


def set_match(m: SetMatch, sets: Mapping[str, IPSet], t: FiveTuple) -> bool | None:
    """Does ``-m set`` match packet ``t``? None when it cannot be decided."""
    got = _test(m.name, m.flags, m.return_nomatch, sets, t, 0)
    return None if got is None else got != m.negate


def _test(name: str, flags: tuple[str, ...], return_nomatch: bool,
          sets: Mapping[str, IPSet], t: FiveTuple, depth: int) -> bool | None:
    s = sets.get(name)
    if s is None or depth > 8:
        return None
    if s.type == "list:set":
        undecided = False
        for member in s.members:
            got = _test(str(member), flags, return_nomatch, sets, t, depth + 1)
            if got:
                return True
            undecided = undecided or got is None
        return None if undecided else False
    dims = SET_TYPES.get(s.type)
    if dims is None:
        return None
    if len(flags) < len(dims):
        return False
    if (s.family == "inet6") != (t.src.version == 6):
        return False
    key: list[object] = []
    for kind, flag in zip(dims, flags, strict=False):
        src = flag == "src"
        if kind in ("ip", "net"):
            key.append(t.src if src else t.dst)
        else:
            if t.proto not in PORT_PROTOS:
                return None
            port = t.sport if src else t.dport
            key += [port] if kind == "bport" else [t.proto, port]
    hit = _lookup(s, dims, tuple(key))
    if hit is None:
        return False
    if hit is False:  # a nomatch element: matches only with --return-nomatch
        return return_nomatch
    return not return_nomatch


SetPredicate = Callable[[FiveTuple], "bool | None"]


def compile_set_match(m: SetMatch, sets: Mapping[str, IPSet]) -> SetPredicate:
    """A predicate that answers what ``set_match(m, sets, t)`` answers for every packet ``t``,
    with what does not depend on the packet done once. For a set of exact elements only
    (kube-proxy's ``hash:ip,port`` and ``hash:ip,port,ip`` sets: no network, no nomatch, all
    of the set's family) the packet's key is looked up with its addresses as integers (an
    ``ipaddress`` object's hash is computed in Python each time); other sets go through
    ``set_match``. ``sets`` must not change afterwards."""
    s = sets.get(m.name)
    if s is None or s.type == "list:set" or SET_TYPES.get(s.type) not in _EXACT_DIMS:
        return lambda t: set_match(m, sets, t)
    dims = SET_TYPES[s.type]
    if dims == ("bport",):  # bitmap:port (KUBE-HEALTH-CHECK-NODE-PORT, KUBE-NODE-PORT-*)
        built = _index(s, dims)
        assert isinstance(built, tuple)
        ports: frozenset[tuple[int]] = built[0]
        if built[1]:  # ranges
            return lambda t: set_match(m, sets, t)
        bcls = IPv6Address if s.family == "inet6" else IPv4Address
        singles = frozenset(p for (p,) in ports)
        b_hit, b_miss = (not m.return_nomatch) != m.negate, m.negate
        use_src = m.flags[0] == "src"

        def port(t: FiveTuple) -> bool | None:
            if type(t.src) is not bcls or t.proto not in PORT_PROTOS:
                return set_match(m, sets, t)
            return b_hit if (t.sport if use_src else t.dport) in singles else b_miss

        return port
    if len(m.flags) < len(dims):  # never matches (see _test)
        return lambda t: set_match(m, sets, t)
    idx = _index(s, dims)
    if not isinstance(idx, tuple) or idx[1]:
        return lambda t: set_match(m, sets, t)
    version = 6 if s.family == "inet6" else 4
    cls = IPv6Address if version == 6 else IPv4Address
    members: set[tuple[object, ...]] = set()
    for key in idx[0]:
        a = key[0]
        b = key[3] if len(key) > 3 else a
        if (not isinstance(a, _ADDRS) or not isinstance(b, _ADDRS) or a.version != version
                or b.version != version):
            return lambda t: set_match(m, sets, t)
        members.add((int(a), *key[1:3], *((int(b),) if len(key) > 3 else ())))
    exact = frozenset(members)
    # A found element matches unless --return-nomatch; then the rule's negation.
    on_hit, on_miss = (not m.return_nomatch) != m.negate, m.negate
    src1, srcp = m.flags[0] == "src", m.flags[1] == "src"
    if len(dims) == 2:
        def two(t: FiveTuple) -> bool | None:
            if type(t.src) is not cls:  # the other family (or an address subclass)
                return set_match(m, sets, t)
            proto = t.proto
            if proto not in PORT_PROTOS:
                return None
            k = (int(t.src if src1 else t.dst), proto, t.sport if srcp else t.dport)
            return on_hit if k in exact else on_miss

        return two
    src3 = m.flags[2] == "src"

    def three(t: FiveTuple) -> bool | None:
        if type(t.src) is not cls:
            return set_match(m, sets, t)
        proto = t.proto
        if proto not in PORT_PROTOS:
            return None
        k = (int(t.src if src1 else t.dst), proto, t.sport if srcp else t.dport,
             int(t.src if src3 else t.dst))
        return on_hit if k in exact else on_miss

    return three


# Set types whose elements can all be exact keys (compile_set_match's fast path).
_EXACT_DIMS = (("ip", "port"), ("ip", "port", "ip"), ("bport",))
_ADDRS = (IPv4Address, IPv6Address)


def _index(s: IPSet, dims: tuple[str, ...]) -> object:
    if not s._index:
        s._index.append(_build(s, dims))
    return s._index[0]


def _lookup(s: IPSet, dims: tuple[str, ...], key: tuple[object, ...]) -> bool | None:
    """True: a plain element holds ``key``; False: the most specific element holding it is
    ``nomatch``; None: no element holds it."""
    idx = _index(s, dims)
    if isinstance(idx, PrefixMap):  # one address dimension
        return idx.lookup(key[0])  # type: ignore[arg-type]
    if isinstance(idx, tuple):  # exact keys, port ranges
        exact, ranges = idx
        if key in exact:
            return True
        port = key[0]
        return True if any(lo <= port <= hi for lo, hi in ranges) else None  # type: ignore[operator]
    # general: (member, plain?) pairs; the most specific holding element decides
    best: tuple[int, ...] | None = None
    verdict: bool | None = None
    for member, plain in idx:  # type: ignore[attr-defined]
        spec = _holds(member, key)
        if spec is not None and (best is None or spec > best):
            best, verdict = spec, plain
    return verdict


def _build(s: IPSet, dims: tuple[str, ...]) -> object:
    if dims in (("ip",), ("net",)):
        pm: PrefixMap[bool] = PrefixMap()
        for m in s.members:
            pm.add(m, True)  # type: ignore[arg-type]
        for m in s.nomatch if dims == ("net",) else ():
            pm.add(m, False)  # type: ignore[arg-type]
        return pm
    if dims == ("bport",):
        exact = frozenset((m,) for m in s.members if isinstance(m, int))
        ranges = tuple(m for m in s.members if isinstance(m, tuple))
        return (exact, ranges)
    if not s.nomatch and not any(isinstance(x, _NETS) for m in s.members
                                 for x in (m if isinstance(m, tuple) else (m,))):
        # Only exact elements (no network, no nomatch: kube-proxy's hash:ip,port sets): a
        # hash lookup instead of a scan (same answer: the element equal to the key holds it).
        return (frozenset(m if isinstance(m, tuple) else (m,) for m in s.members), ())
    return [(m if isinstance(m, tuple) else (m,), True) for m in s.members] + \
        [(m if isinstance(m, tuple) else (m,), False) for m in s.nomatch]


def _holds(member: tuple[object, ...], key: tuple[object, ...]) -> tuple[int, ...] | None:
    """The prefix lengths of ``member``'s networks when it holds ``key`` (its specificity),
    None when it does not."""
    if len(member) != len(key):
        return None
    spec: list[int] = []
    for want, got in zip(member, key, strict=True):
        if isinstance(want, _NETS):
            if not (getattr(got, "version", None) == want.version and got in want):
                return None
            spec.append(want.prefixlen)
        elif want != got:
            return None
        elif hasattr(want, "max_prefixlen"):
            spec.append(want.max_prefixlen)  # type: ignore[attr-defined]
    return tuple(spec)
