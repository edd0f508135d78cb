"""The netfilter rule IR shared by iptables and nftables rulesets.

A ``Ruleset`` holds ``Table``s; a table holds ``Chain``s (and, for nftables, named sets and
verdict maps); a chain holds ``Rule``s. A rule is an ordered tuple of *matches* (all must hold)
followed by an ordered tuple of *actions* (statements such as a mark update, then at most one
verdict), plus an optional comment.

Conventions that keep ``parse(render(x)) == x``:

* A host address (a /32 or /128) is always an ``IPv4Address``/``IPv6Address``, never a network.
* ``Proto`` is one match; the iptables renderer writes it as ``-m tcp -p tcp`` (kube-proxy's
  form) and the iptables parser folds ``-p tcp ... -m tcp`` back into one ``Proto``.
* Comments are rule-level (``Rule.comment``), wherever the dump put them.
* What a parser does not understand becomes ``UnknownMatch`` / ``UnknownAction`` carrying the
  original text: kept and marked, never dropped. The evaluator reports such rules instead of
  guessing.

All values are frozen and hashable; ``==`` is structural.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from sourceip.net.addr import IPAddress, IPNetwork

Backend = Literal["iptables", "nftables"]
AddrLike = IPAddress | IPNetwork

# ----------------------------------------------------------------------------- matches


@dataclass(frozen=True, slots=True)
class Proto:
    """Layer-4 protocol is ``proto`` (``tcp``, ``udp``, ``sctp``, ``icmp``...)."""

    proto: str
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Addr:
    """Source or destination address is in ``nets`` (one entry for iptables ``-s``/``-d``;
    several form an nft anonymous set ``{ a, b }``)."""

    field: Literal["src", "dst"]
    nets: tuple[AddrLike, ...]
    negate: bool = False
    # nft distinguishes `ip daddr 10.0.0.0/8` from `ip daddr { 10.0.0.0/8 }`; iptables never
    # uses braces. Kept so that rendering reproduces the source text.
    braces: bool = False


@dataclass(frozen=True, slots=True)
class AddrRange:
    """iptables ``-m iprange [!] --src-range|--dst-range LO-HI``: the address lies in the
    inclusive range ``lo``..``hi`` (xt_iprange; the kernel compares in host byte order)."""

    field: Literal["src", "dst"]
    lo: IPAddress
    hi: IPAddress
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Port:
    """Source or destination port is one of ``ports`` (``(lo, hi)`` tuples are ranges).
    ``proto`` set: nft's ``tcp dport 80`` form, which also requires that layer-4 protocol
    (empty: ``th dport``, any protocol with ports)."""

    field: Literal["sport", "dport"]
    ports: tuple[int | tuple[int, int], ...]
    negate: bool = False
    proto: str = ""


@dataclass(frozen=True, slots=True)
class Iface:
    """Input or output interface is ``name`` (a trailing ``+`` matches a prefix)."""

    direction: Literal["in", "out"]
    name: str
    negate: bool = False


@dataclass(frozen=True, slots=True)
class AddrType:
    """iptables ``-m addrtype --src-type/--dst-type TYPE`` / nft ``fib saddr|daddr type TYPE``."""

    field: Literal["src", "dst"]
    type: str = "LOCAL"
    negate: bool = False
    limit_iface_out: bool = False


@dataclass(frozen=True, slots=True)
class Mark:
    """``(mark & mask) == value`` (negated: ``!=``). iptables ``-m mark --mark value/mask``;
    nft ``mark and mask == value``."""

    value: int
    mask: int = 0xFFFFFFFF
    negate: bool = False


@dataclass(frozen=True, slots=True)
class CtState:
    """Conntrack state is one of ``states`` (NEW, ESTABLISHED, RELATED, INVALID, DNAT, SNAT)."""

    states: tuple[str, ...]
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Statistic:
    """``-m statistic --mode random --probability P``; ``probability`` is the text as written
    (kube-proxy writes ten decimals), ``exact`` its exact value."""

    probability: str

    @property
    def exact(self) -> Fraction:
        return Fraction(self.probability)


@dataclass(frozen=True, slots=True)
class Recent:
    """``-m recent`` (session affinity): ``action`` is ``set``, ``rcheck`` or ``update``."""

    name: str
    action: Literal["set", "rcheck", "update"]
    seconds: int | None = None
    reap: bool = False
    mask: str = ""
    side: Literal["source", "dest"] = "source"


@dataclass(frozen=True, slots=True)
class Nfacct:
    """``-m nfacct --nfacct-name NAME``: a counter, always matches."""

    name: str


@dataclass(frozen=True, slots=True)
class SetLookup:
    """nft ``KEY [. KEY...] [!=] @set``: the packet's key is (not) an element of a named set.
    Keys are nft expressions such as ``ip saddr``, ``meta l4proto``, ``th dport``."""

    keys: tuple[str, ...]
    set_name: str
    negate: bool = False


@dataclass(frozen=True, slots=True)
class UnknownMatch:
    """A match the parser did not understand, kept verbatim; evaluation reports it."""

    text: str


Match = (
    Proto | Addr | AddrRange | Port | Iface | AddrType | Mark | CtState | Statistic | Recent
    | Nfacct | SetLookup | UnknownMatch
)

# ----------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Jump:
    chain: str


@dataclass(frozen=True, slots=True)
class Goto:
    chain: str


@dataclass(frozen=True, slots=True)
class Return:
    pass


@dataclass(frozen=True, slots=True)
class Accept:
    pass


@dataclass(frozen=True, slots=True)
class Drop:
    pass


@dataclass(frozen=True, slots=True)
class Reject:
    """``with_`` is the ICMP type as written (empty: the default)."""

    with_: str = ""


@dataclass(frozen=True, slots=True)
class Dnat:
    """Rewrite the destination to ``addr``[:``port``] (nft's ``meta l4proto tcp dnat to ...``
    is a ``Proto`` match followed by this action)."""

    addr: IPAddress
    port: int | None = None


@dataclass(frozen=True, slots=True)
class Snat:
    addr: IPAddress
    port: int | None = None
    random_fully: bool = False


@dataclass(frozen=True, slots=True)
class Masquerade:
    """SNAT to the primary address of the egress interface, chosen by the kernel.
    ``ports``: iptables ``--to-ports P[-Q]`` (source ports to use; the address is the same)."""

    random_fully: bool = False
    ports: str | None = None


@dataclass(frozen=True, slots=True)
class MarkSet:
    """Update the packet mark: ``or``/``xor``/``and`` with ``value``, or ``set``:
    ``mark = (mark & ~mask) ^ value`` (iptables ``--set-xmark value/mask``; with ``value``
    inside ``mask`` that sets the masked bits to ``value``). iptables ``-j MARK
    --or-mark/--xor-mark/--and-mark``; nft ``mark set mark or value``. ``mask`` is only
    meaningful for ``set``."""

    op: Literal["or", "xor", "and", "set"]
    value: int
    mask: int = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class SetUpdate:
    """nft ``update @set { KEY }`` (session affinity: remember the client)."""

    set_name: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Vmap:
    """nft ``KEY [. KEY...] vmap @map``: the verdict stored for the packet's key, if any."""

    keys: tuple[str, ...]
    map_name: str


@dataclass(frozen=True, slots=True)
class NumgenVmap:
    """nft ``numgen random mod N vmap { 0 : V0 , 1 : V1 ... }``: each verdict with probability
    1/N (``targets[i]`` is the verdict for value i)."""

    mod: int
    targets: tuple[Jump | Goto, ...]


@dataclass(frozen=True, slots=True)
class NumgenDnatMap:
    """nft ``dnat ip addr . port to numgen random mod N map { 0 : A0 . P0 , 1 : A1 . P1 }``
    (kube-proxy 1.36+): DNAT to ``targets[i]`` (address, port) with probability 1/N."""

    mod: int
    targets: tuple[tuple[IPAddress, int], ...]


@dataclass(frozen=True, slots=True)
class Counter:
    pass


@dataclass(frozen=True, slots=True)
class UnknownAction:
    """An action the parser did not understand, kept verbatim; evaluation reports it."""

    text: str


Verdict = Jump | Goto | Return | Accept | Drop | Reject
Action = (
    Verdict | Dnat | Snat | Masquerade | MarkSet | SetUpdate | Vmap | NumgenVmap
    | NumgenDnatMap | Counter | UnknownAction
)

# ----------------------------------------------------------------------------- containers


@dataclass(frozen=True, slots=True)
class SourceLoc:
    """Where a rule was read from: the dump ``file``, its 1-based ``line`` (0 when the format
    has no lines, e.g. ``nft -j`` JSON: ``item`` then names it, ``nftables[12]``) and the
    rule's ``text`` exactly as the dump wrote it."""

    file: str
    line: int
    text: str
    item: str | None = None

    def where(self) -> str:
        """``node.rules:812`` (or ``ruleset.json nftables[12]``)."""
        if self.line:
            return f"{self.file}:{self.line}"
        return f"{self.file} {self.item}" if self.item else self.file

    def __str__(self) -> str:
        return f"{self.where()}: {self.text}"


@dataclass(frozen=True, slots=True)
class Rule:
    """All ``matches`` must hold; then ``actions`` run in order. ``loc`` is where a parser
    read the rule (None for rules sourceip built); it takes no part in ``==``."""

    matches: tuple[Match, ...] = ()
    actions: tuple[Action, ...] = ()
    comment: str | None = None
    loc: SourceLoc | None = field(default=None, compare=False)

    @property
    def verdict(self) -> Action | None:
        """The last action (the one that decides where the packet goes), if any."""
        return self.actions[-1] if self.actions else None


@dataclass(frozen=True, slots=True)
class SetElement:
    """An element of an nft set or map: ``key`` has one item per key type (an address or
    network, a protocol name, a port number); ``value`` is the verdict of a map element."""

    key: tuple[AddrLike | str | int, ...]
    value: Verdict | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class NftSet:
    """A named nft set (``value_type`` None) or map (``value_type`` ``verdict``)."""

    name: str
    key_types: tuple[str, ...]
    value_type: str | None = None
    flags: tuple[str, ...] = ()
    timeout: int | None = None
    comment: str | None = None
    elements: tuple[SetElement, ...] = ()

    @property
    def is_map(self) -> bool:
        return self.value_type is not None


@dataclass(frozen=True, slots=True)
class Chain:
    """A chain. Base chains have a ``hook`` (prerouting, input, forward, output, postrouting);
    for nftables also a ``type`` (filter, nat) and ``priority``; iptables built-in chains have
    a ``policy``."""

    name: str
    rules: tuple[Rule, ...] = ()
    hook: str | None = None
    type: str | None = None
    priority: int | None = None
    policy: str | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """iptables: ``name`` is filter/nat/mangle/raw and ``family`` ``ip``/``ip6``.
    nftables: any name (kube-proxy's is ``kube-proxy``), family ``ip``/``ip6``/``inet``."""

    name: str
    family: str = "ip"
    chains: tuple[Chain, ...] = ()
    sets: tuple[NftSet, ...] = ()
    comment: str | None = None

    def chain(self, name: str) -> Chain | None:
        for c in self.chains:
            if c.name == name:
                return c
        return None

    def set(self, name: str) -> NftSet | None:
        for s in self.sets:
            if s.name == name:
                return s
        return None


@dataclass(frozen=True, slots=True)
class Ruleset:
    """Every table one backend holds on one node."""

    backend: Backend
    tables: tuple[Table, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)

    def table(self, name: str, family: str | None = None) -> Table | None:
        for t in self.tables:
            if t.name == name and (family is None or t.family == family):
                return t
        return None
