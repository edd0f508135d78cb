"""Evaluate a ruleset on one packet at one netfilter hook.

``Evaluator(ruleset, local)`` binds a ruleset to the addresses the node owns (what
``addrtype LOCAL`` / ``fib ... type local`` match). ``run_hook(hook, packet, ...)`` walks, in
priority order, every base chain of the hook (iptables: the built-in chains of the nat and
filter tables; nftables: base chains by priority) and returns every *branch* the packet can take:
random load balancing (``statistic``, ``numgen``) is enumerated, never sampled, each branch with
its exact probability.

Three-valued matching: a rule whose matches the evaluator cannot decide (an ``UnknownMatch``
such as ``-m physdev --physdev-is-bridged``, ``-m bpf``, ``-m cgroup``, an unknown nft
expression; ``-m physdev --physdev-is-in`` for a packet received when the node's bridges are not
known (``Evaluator(bridges=...)``); ``-i``/``-o`` on an interface whose real name is unknown
(``Evaluator(ifaces=...)``: a dump's stand-in node, whose uplink name is a guess); ``-m set`` for a
set whose contents were not given; an nft set lookup it cannot key) *forks* the walk: one
branch where the rule matches, one where it does not. The fork does not split probability:
both branches keep the parent's, and each records an ``Assumption`` (the rule as written,
which way it was taken). A branch's probability is therefore its probability *given its
assumptions*; the branches consistent with any one answer for every undecided rule sum to 1
(docs/json.md). The same rule met again with the same packet on the same branch is not forked
twice: the earlier assumption holds (``run_hook(..., assumed=...)`` carries them across hooks
and nodes). ``-m set`` is decided exactly when ``ipsets`` holds the set (``netfilter.ipset``).
Rules without undecidable matches take the same path as before: no fork, no extra work.

Chains with many rules (kube-proxy's ``KUBE-SERVICES``) are indexed by (destination, protocol,
port) so that finding a service's rule does not walk the chain; rule order is preserved by
merging the indexed candidates with the rules the index cannot key, by position.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from itertools import count
from typing import Any, Literal, cast

from sourceip.net.addr import IPAddress, IPNetwork, host_port
from sourceip.net.packet import FiveTuple, Packet
from sourceip.net.prefixset import PrefixSet
from sourceip.netfilter.ipset import (
    IPSet,
    SetMatch,
    SetPredicate,
    compile_set_match,
    parse_set_match,
)
from sourceip.netfilter.ir import (
    Accept,
    Action,
    Addr,
    AddrRange,
    AddrType,
    Chain,
    Counter,
    CtState,
    Dnat,
    Drop,
    Goto,
    Iface,
    Jump,
    Mark,
    MarkSet,
    Masquerade,
    Match,
    Nfacct,
    NftSet,
    NumgenDnatMap,
    NumgenVmap,
    Port,
    Proto,
    Recent,
    Reject,
    Return,
    Rule,
    Ruleset,
    SetLookup,
    SetUpdate,
    Snat,
    Statistic,
    Table,
    UnknownAction,
    UnknownMatch,
    Verdict,
    Vmap,
)

ONE = Fraction(1)


@lru_cache(maxsize=4096)
def _fraction(text: str) -> Fraction:
    return Fraction(text)


@lru_cache(maxsize=4096)
def _complement(p: Fraction) -> Fraction:
    return 1 - p


Hook = Literal["prerouting", "input", "forward", "output", "postrouting"]
HOOKS: tuple[Hook, ...] = ("prerouting", "input", "forward", "output", "postrouting")

# iptables built-in chains: (table, chain, priority) per hook, as the kernel orders them.
_IPT_HOOKS: dict[str, list[tuple[str, str, int]]] = {
    "prerouting": [("nat", "PREROUTING", -100)],
    "input": [("filter", "INPUT", 0), ("nat", "INPUT", 100)],
    "forward": [("filter", "FORWARD", 0)],
    "output": [("nat", "OUTPUT", -100), ("filter", "OUTPUT", 0)],
    "postrouting": [("nat", "POSTROUTING", 100)],
}

Disposition = Literal["accept", "drop", "reject"]


@dataclass(frozen=True, slots=True)
class Step:
    """One rule that matched (or a note), with the effect it had.

    ``rule`` is None for notes (e.g. a chain policy). ``effect`` (``"jump KUBE-SVC-..."``,
    ``"DNAT to 10.0.0.1:80"``...), ``rewrites`` (``(field, old, new)``) and ``text`` (the rule as
    iptables-save / nft lists it) are formatted on demand: evaluation only records ``kind`` and
    its raw ``arg``."""

    table: str
    chain: str
    index: int
    rule: Rule | None
    kind: str
    backend: str = "iptables"
    family: str = "ip"
    arg: object = None

    @property
    def effect(self) -> str:
        k = self.kind
        a: Any = self.arg
        if k in ("jump", "goto", "unknown action"):
            return f"{k} {a}"
        if k == "vmap":
            return f"vmap @{a} hit"
        if k == "remember":
            return f"remember client in @{a}"
        if k == "mark":
            op, value, _old, _new = a
            return f"mark {op} {value:#x}"
        if k == "DNAT":
            _t, addr, port = a
            return f"DNAT to {host_port(addr, port)}"
        if k == "SNAT":
            _src, addr = a
            return f"SNAT to {addr}"
        return k

    @property
    def rewrites(self) -> tuple[tuple[str, str, str], ...]:
        k = self.kind
        a: Any = self.arg
        if k == "mark":
            _op, _value, old, new = a
            return (("mark", f"{old:#x}", f"{new:#x}"),)
        if k == "DNAT":
            t, addr, port = a
            return (("dst", host_port(t.dst, t.dport), host_port(addr, port)),)
        if k == "SNAT":
            src, addr = a
            return (("src", str(src), str(addr)),)
        return ()

    @property
    def text(self) -> str:
        if self.rule is None:
            return ""
        return render_rule(self.backend, self.family, self.table, self.chain, self.rule)


@dataclass(frozen=True, slots=True)
class Assumption:
    """A rule the evaluator could not decide, and which way a branch took it: ``rule`` is the
    rule as the dump wrote it with ``(file:line)`` when the rule carries its source location
    (else as iptables-save / nft lists it); ``matches`` the answer this branch assumes;
    ``undecided`` the matches of the rule that could not be decided. ``key`` identifies the
    decision (evaluator, rule, packet): the same key is answered once per branch."""

    rule: str
    matches: bool
    undecided: tuple[str, ...] = ()
    key: tuple[object, ...] = field(default=(), compare=False, repr=False)

    def __str__(self) -> str:
        if self.matches and self.undecided and all(u.startswith("action ")
                                                   for u in self.undecided):
            return f"{self.rule} doing nothing (its action is not modelled)"
        return f"{self.rule} {'matching' if self.matches else 'not matching'}"


@dataclass(frozen=True, slots=True)
class Branch:
    """One way through a hook: its probability, the packet after the hook, the verdict, the
    rules it matched, and what it did (DNAT/SNAT/masquerade)."""

    probability: Fraction
    packet: Packet
    disposition: Disposition
    steps: tuple[Step, ...]
    masquerade: bool = False
    snat_to: IPAddress | None = None
    dnat: bool = False
    affinity: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    assumptions: tuple[Assumption, ...] = ()


_TEXTS: dict[tuple[str, str, str, str, int], tuple[Rule, str]] = {}


def render_rule(backend: str, family: str, table: str, chain: str, rule: Rule) -> str:
    """One rule as its tool lists it (``-A CHAIN ...`` or ``add rule FAMILY TABLE CHAIN ...``).
    Rendered once per rule object (steps of shared compiled chains recur in many traces)."""
    key = (backend, family, table, chain, id(rule))
    got = _TEXTS.get(key)
    if got is not None and got[0] is rule:
        return got[1]
    text = _render_rule(backend, family, table, chain, rule)
    if len(_TEXTS) >= 16384:
        _TEXTS.clear()
    _TEXTS[key] = (rule, text)
    return text


def _render_rule(backend: str, family: str, table: str, chain: str, rule: Rule) -> str:
    if backend == "nftables":
        from sourceip.netfilter.render_nft import render_nft_rule

        return render_nft_rule(Table(name=table, family=family), chain, rule)
    from sourceip.netfilter.render_iptables import render_iptables_rule

    return render_iptables_rule(chain, rule)


# ----------------------------------------------------------------------------- matching


@dataclass(slots=True)
class _State:
    """Mutable per-branch state while walking chains."""

    prob: Fraction
    pkt: Packet
    steps: list[Step]
    masq: bool = False
    snat_to: IPAddress | None = None
    dnat: bool = False
    affinity: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    assumed: list[Assumption] = field(default_factory=list)

    def fork(self, prob: Fraction) -> _State:
        a, u, d = self.affinity, self.unknown, self.assumed
        return _State(prob, self.pkt, self.steps.copy(), self.masq, self.snat_to, self.dnat,
                      a.copy() if a else [], u.copy() if u else [], d.copy() if d else [])


@dataclass(frozen=True, slots=True)
class _Env:
    local: PrefixSet
    ct_state: frozenset[str]
    # The node's bridge devices (a packet whose ``iif`` is one entered through a bridge
    # port); None: not known, ``-m physdev --physdev-is-in`` forks.
    bridges: frozenset[str] | None = None
    # ``-i``/``-o`` against the packet's interface: None compares names exactly; else the
    # answer (None: unknown, the rule forks) of ``IfaceQuestion``.
    ifaces: IfaceQuestion | None = None


IfaceQuestion = Callable[[str, str], "bool | None"]
"""Whether an interface named (as the packet carries it) ``current`` is matched by a rule's
``-i``/``-o`` name ``pattern`` (a trailing ``+`` matches a prefix); None when it cannot be told
(the packet's name stands for an interface whose real name is unknown)."""


def iface_matches(current: str, pattern: str) -> bool:
    """iptables' interface match (``xt_match`` ``ifname_compare``; nft ``iifname``/``oifname``
    with a ``*`` suffix written ``+`` here): ``pattern`` equals ``current``, or ends with ``+``
    and ``current`` starts with the rest."""
    if pattern.endswith("+"):
        return current.startswith(pattern[:-1])
    return current == pattern


MatchFn = Callable[[Packet, _Env], bool]


_NET_TYPES = (IPv4Network, IPv6Network)


def _addr_in(nets: tuple[IPAddress | IPNetwork, ...]) -> Callable[[IPAddress], bool]:
    hosts = frozenset(n for n in nets if not isinstance(n, _NET_TYPES))
    networks = tuple(n for n in nets if isinstance(n, _NET_TYPES))
    if not networks and len(hosts) == 1:
        (only,) = hosts
        return only.__eq__  # type: ignore[return-value]
    if not networks:
        return hosts.__contains__
    if not hosts and len(networks) == 1:
        # one network (`! -s 127.0.0.0/8`, `-s <clusterCIDR>`): the network's own test (False
        # for the other family, as below)
        return networks[0].__contains__  # type: ignore[return-value]
    if len(networks) > 8:
        ps = PrefixSet(networks)

        def many(a: IPAddress) -> bool:
            return a in hosts or a in ps

        return many

    def some(a: IPAddress) -> bool:
        if a in hosts:
            return True
        v = a.version
        for n in networks:
            if n.version == v and a in n:
                return True
        return False

    return some


_MATCH_FNS: dict[Match, MatchFn | None] = {}


def _match_fn(m: Match) -> MatchFn | None:
    """``_compile_match(m)``, shared between equal matches (protocols, ports, marks,
    conntrack states, the cluster CIDR recur in every rule and ruleset; one predicate each)."""
    try:
        return _MATCH_FNS[m]
    except TypeError:  # an unhashable value inside the match
        return _compile_match(m)
    except KeyError:
        fn = _MATCH_FNS[m] = _compile_match(m)
        if len(_MATCH_FNS) > 65536:
            _MATCH_FNS.clear()
        return fn


def _compile_match(m: Match) -> MatchFn | None:
    """A predicate for ``m``, or None when the match cannot be evaluated."""
    if isinstance(m, Proto):
        proto, neg = m.proto, m.negate
        return lambda p, e: (p.tuple.proto == proto) != neg
    if isinstance(m, Addr):
        neg = m.negate
        nets = m.nets
        if len(nets) == 1 and not isinstance(nets[0], _NET_TYPES):
            only = nets[0]
            if m.field == "src":
                return lambda p, e: (p.tuple.src == only) != neg
            return lambda p, e: (p.tuple.dst == only) != neg
        test = _addr_in(nets)
        if m.field == "src":
            return lambda p, e: test(p.tuple.src) != neg
        return lambda p, e: test(p.tuple.dst) != neg
    if isinstance(m, AddrRange):  # xt_iprange: lo <= addr <= hi, same family only
        lo, hi, neg, is_src = m.lo, m.hi, m.negate, m.field == "src"

        def in_range(p: Packet, e: _Env) -> bool:
            a = p.tuple.src if is_src else p.tuple.dst
            return (a.version == lo.version and lo <= a <= hi) != neg  # type: ignore[operator]

        return in_range
    if isinstance(m, Port):
        singles = frozenset(x for x in m.ports if isinstance(x, int))
        ranges = tuple(x for x in m.ports if isinstance(x, tuple))
        neg = m.negate
        is_d = m.field == "dport"
        need = m.proto  # nft `tcp dport N`: the protocol must match too

        def port_ok(p: Packet, e: _Env) -> bool:
            if need and p.tuple.proto != need:
                return False
            v = p.tuple.dport if is_d else p.tuple.sport
            hit = v in singles or any(lo <= v <= hi for lo, hi in ranges)
            return hit != neg

        return port_ok
    if isinstance(m, AddrType):
        if m.type.upper() != "LOCAL":
            return None
        neg, is_src = m.negate, m.field == "src"
        return lambda p, e: ((p.tuple.src if is_src else p.tuple.dst) in e.local) != neg
    if isinstance(m, Mark):
        value, mask, neg = m.value, m.mask, m.negate
        return lambda p, e: ((p.mark & mask) == value) != neg
    if isinstance(m, CtState):
        states = frozenset(s.upper() for s in m.states)
        neg = m.negate
        return lambda p, e: (not states.isdisjoint(e.ct_state)) != neg
    if isinstance(m, Nfacct):
        return lambda p, e: True
    return None  # Statistic, Recent, SetLookup: handled by the walker; UnknownMatch: unknown


# ----------------------------------------------------------------------------- probabilities

_MUL: dict[tuple[int, int], tuple[Fraction, Fraction, Fraction]] = {}


def mul_prob(a: Fraction, b: Fraction) -> Fraction:
    """``a * b``. No arithmetic when either is the ``ONE`` object; otherwise the product of
    the same two operand objects is computed once and the same result object returned
    (branch probabilities are built from the same few fractions trace after trace, so their
    products are too). The cache holds its operands, so their ids cannot be reused."""
    if a is ONE:
        return b
    if b is ONE:
        return a
    k = (id(a), id(b))
    hit = _MUL.get(k)
    if hit is not None and hit[0] is a and hit[1] is b:
        return hit[2]
    r = a * b
    if len(_MUL) >= 4096:
        _MUL.clear()
    _MUL[k] = (a, b, r)
    return r


# ----------------------------------------------------------------------------- chain index

# Action opcodes of a compiled rule (``_Act``): the walker dispatches on small ints.
_JUMP, _GOTO, _RETURN, _ACCEPT, _DROP, _REJECT = 0, 1, 2, 3, 4, 5
_MARK, _DNAT, _MASQ, _SNAT, _SETUPD = 6, 7, 8, 9, 10
_VMAP, _NUMGEN, _UNKACT, _UNSUP = 11, 12, 13, 14
_OUTCOME = {_RETURN: "return", _ACCEPT: "accept", _DROP: "drop", _REJECT: "reject"}

# Special-match kinds (``_Spec``): evaluated after the plain matches, in rule order.
_S_STAT, _S_NEVER, _S_RECENT_SET, _S_RECENT_MISS, _S_SET, _S_UNKNOWN, _S_IPSET = range(7)
_S_PHYSDEV_IN = 7
_S_TCP_SYN = 8  # -m tcp --tcp-flags / --syn: decided for the SYN of a new connection
_S_IFACE = 9  # -i / -o: decided unless the packet's interface name is unknown (_Env.ifaces)

# (opcode, argument, step recorded when the action runs (None: built at run time; numgen:
# the share of each target), extra)
_Act = tuple[int, Any, Any, Any]
# (kind, argument, extra)
_Spec = tuple[int, Any, Any]


class _CompiledRule:
    """A rule ready to walk: plain match predicates, special matches and actions
    pre-dispatched, and the steps that do not depend on the packet built once."""

    __slots__ = ("index", "rule", "fns", "special", "src_is", "dst_is", "acts", "matched",
                 "vacts", "where")

    def __init__(self, index: int, rule: Rule, fns: tuple[MatchFn, ...],
                 special: tuple[_Spec, ...], src_is: IPAddress | None,
                 dst_is: IPAddress | None, where: tuple[str, str, str, str]) -> None:
        self.index = index
        self.rule = rule
        self.fns = fns
        self.special = special
        # Plain ``-s HOST`` / ``-d HOST`` matches, tested inline (no predicate object).
        self.src_is = src_is
        self.dst_is = dst_is
        # (table, chain, backend, family) for steps: strings only, so no reference cycle
        # through the chain and nothing for the cyclic GC to follow.
        self.where = where
        # Actions are compiled when the rule first matches (many rules never do).
        self.acts: tuple[_Act, ...] | None = None
        self.matched: Step | None = None
        self.vacts: dict[Verdict, _Act] | None = None

    def compile_acts(self) -> tuple[_Act, ...]:
        acts: list[_Act] = []
        for a in self.rule.actions:
            if isinstance(a, Counter):
                continue
            acts.append(self.act(a))
        if not self.rule.actions:
            # A rule without actions records that it matched.
            self.matched = self.step("matched")
        self.acts = tuple(acts)
        return self.acts

    def step(self, kind: str, arg: object = None) -> Step:
        table, chain, backend, family = self.where
        return new_step(table, chain, self.index, self.rule, kind, backend, family, arg)

    def act(self, a: Action) -> _Act:
        """``a`` as an opcode tuple (``Counter`` included, as a no-op)."""
        idx = self.index
        chain = self.where[1]
        if isinstance(a, Jump):
            return (_JUMP, a.chain, self.step("jump", a.chain), None)
        if isinstance(a, Goto):
            return (_GOTO, a.chain, self.step("goto", a.chain), None)
        if isinstance(a, Return):
            return (_RETURN, None, self.step("return"), None)
        if isinstance(a, Accept):
            return (_ACCEPT, None, self.step("accept"), None)
        if isinstance(a, Drop):
            return (_DROP, None, self.step("drop"), None)
        if isinstance(a, Reject):
            return (_REJECT, None, self.step("reject"), None)
        if isinstance(a, MarkSet):
            return (_MARK, a, None, None)
        if isinstance(a, Dnat):
            return (_DNAT, a, None, None)
        if isinstance(a, Masquerade):
            return (_MASQ, None, self.step("MASQUERADE"), None)
        if isinstance(a, Snat):
            return (_SNAT, a.addr, None, None)
        if isinstance(a, SetUpdate):
            return (_SETUPD, f"update @{a.set_name}", self.step("remember", a.set_name), None)
        if isinstance(a, Counter):
            return (_UNSUP, None, None, None)
        if isinstance(a, Vmap):
            return (_VMAP, a, self.step("vmap", a.map_name), None)
        if isinstance(a, NumgenVmap):
            if not a.targets or a.mod <= 0:
                return (_NUMGEN, None, None, None)
            n = len(a.targets)
            rest = Fraction(a.mod - n, a.mod) if n < a.mod else None
            return (_NUMGEN, tuple(self.act(t) for t in a.targets), Fraction(1, a.mod), rest)
        if isinstance(a, NumgenDnatMap):  # one DNAT branch per map entry, 1/mod each
            if not a.targets or a.mod <= 0:
                return (_NUMGEN, None, None, None)
            n = len(a.targets)
            rest = Fraction(a.mod - n, a.mod) if n < a.mod else None
            return (_NUMGEN, tuple((_DNAT, Dnat(ip, port), None, None) for ip, port in a.targets),
                    Fraction(1, a.mod), rest)
        if isinstance(a, UnknownAction):
            return (_UNKACT, f"{chain}[{idx}]: cannot evaluate action {a.text}; ignored",
                    self.step("unknown action", a.text), None)
        return (_UNSUP, f"{chain}[{idx}]: unsupported action {a!r}", None, None)

    def verdict_act(self, v: Verdict) -> _Act:
        """The opcode tuple of a verdict found in a map, built once per verdict."""
        if self.vacts is None:
            self.vacts = {}
        got = self.vacts.get(v)
        if got is None:
            got = self.vacts[v] = self.act(v)
        return got


_Key = tuple["IPAddress | None", str, int]


def _rule_key(rule: Rule) -> _Key | None:
    """(destination, protocol, port) a rule needs, the destination None when it names none
    (``KUBE-NODEPORTS``' and ``KUBE-EXTERNAL-SERVICES``' per-port rules); None when the rule
    does not pin protocol and port."""
    dst: IPAddress | None = None
    proto: str | None = None
    dport: int | None = None
    for m in rule.matches:
        if isinstance(m, Addr) and m.field == "dst" and not m.negate and len(m.nets) == 1:
            n = m.nets[0]
            if not isinstance(n, _NET_TYPES):
                dst = n
        elif isinstance(m, Proto) and not m.negate:
            proto = m.proto
        elif (isinstance(m, Port) and m.field == "dport" and not m.negate and len(m.ports) == 1
              and isinstance(m.ports[0], int)):
            dport = m.ports[0]
    if proto is None or dport is None:
        return None
    return (dst, proto, dport)


class _CompiledChain:
    """A chain ready to walk. Chains of ``_INDEX_THRESHOLD`` rules or more are indexed by
    (destination, protocol, port) -- rules that name no destination by (None, protocol,
    port) -- and their rules are compiled when first a candidate."""

    __slots__ = ("chain", "where", "rules", "by_key", "generic", "generic_rules", "merged")

    def __init__(self, chain: Chain, table: Table, backend: str) -> None:
        self.chain = chain
        self.where = (table.name, chain.name, backend, table.family)
        n = len(chain.rules)
        self.by_key: dict[_Key, list[int]] | None = None
        self.generic: list[int] = _NO_RULES
        self.generic_rules: list[_CompiledRule] = _NO_RULES
        self.merged: dict[_Key, list[_CompiledRule]] | None = None
        if n < _INDEX_THRESHOLD:
            self.rules: list[_CompiledRule | None] = [self._compile(i) for i in range(n)]
            return
        self.generic = []
        self.merged = {}
        self.rules = [None] * n
        by_key: dict[_Key, list[int]] = {}
        for i, rule in enumerate(chain.rules):
            key = _rule_key(rule)
            if key is None:
                self.generic.append(i)
            else:
                got = by_key.get(key)
                if got is None:
                    by_key[key] = [i]
                else:
                    got.append(i)
        self.by_key = by_key
        self.generic_rules = [self.rule(i) for i in self.generic]

    def _compile(self, i: int) -> _CompiledRule:
        rule = self.chain.rules[i]
        matches = rule.matches
        got = _MATCHES.get(id(matches))
        if got is not None and got[0] is matches:
            _m, fns_t, special_t, src, dst = got
            return _CompiledRule(i, rule, fns_t, special_t, src, dst, self.where)
        fns: list[MatchFn] = []
        special: list[_Spec] = []
        src_is = dst_is = None
        for m in rule.matches:
            if (type(m) is Addr and not m.negate and len(m.nets) == 1
                    and not isinstance(m.nets[0], _NET_TYPES)):
                if m.field == "src" and src_is is None:
                    src_is = m.nets[0]
                    continue
                if m.field == "dst" and dst_is is None:
                    dst_is = m.nets[0]
                    continue
            if isinstance(m, _SPECIAL_TYPES):
                spec = _compile_special(m)
                if not (spec[0] == _S_STAT and spec[1] is None):
                    special.append(spec)
                continue
            fn = _match_fn(m)
            if fn is None:
                special.append((_S_UNKNOWN, _match_text(self.where, m), None))
            else:
                fns.append(fn)
        if len(special) > 1:
            # Interface matches first: decided ones end the rule before a statistic forks.
            special.sort(key=lambda sp: sp[0] != _S_IFACE)
        fns_t, special_t = _intern(tuple(fns)), _intern(tuple(special))
        # Nothing in it names this chain: reusable for every rule with these matches (the
        # builders share one matches tuple between alike rules).
        if len(_MATCHES) >= 65536:
            _MATCHES.clear()
        _MATCHES[id(matches)] = (matches, fns_t, special_t, src_is, dst_is)
        return _CompiledRule(i, rule, fns_t, special_t, src_is, dst_is,  # type: ignore[arg-type]
                             self.where)

    def rule(self, i: int) -> _CompiledRule:
        cr = self.rules[i]
        if cr is None:
            cr = self.rules[i] = self._compile(i)
        return cr

    def candidates(self, t: FiveTuple) -> list[_CompiledRule]:
        """The rules that can match ``t``, in chain order (the list must not be modified)."""
        if self.by_key is None:
            return self.rules  # type: ignore[return-value]  # all compiled
        key = (t.dst, t.proto, t.dport)
        got = self.merged.get(key)  # type: ignore[union-attr]
        if got is not None:
            return got
        keyed = self.by_key.get(key)
        any_dst = self.by_key.get((None, t.proto, t.dport))
        if not keyed and not any_dst:
            return self.generic_rules
        rule = self.rule
        indices = (keyed or _NO_RULES) + (any_dst or _NO_RULES) + self.generic
        got = [rule(i) for i in sorted(indices)]  # indices: chain order
        if len(self.merged) < 65536:  # type: ignore[arg-type]
            self.merged[key] = got  # type: ignore[index]
        return got


_INDEX_THRESHOLD = 16
_INTERNED: dict[tuple[int, ...], tuple[Any, ...]] = {}
# id(matches tuple) -> (that tuple, predicates, specials, -s HOST, -d HOST); holds the tuple,
# so its id is not reused while the entry exists.
_MATCHES: dict[int, tuple[Any, ...]] = {}
_STAT_SPECS: dict[str, _Spec] = {}


def _intern(t: tuple[Any, ...]) -> tuple[Any, ...]:
    """One object per distinct tuple of predicates or special matches (most rules share
    them): fewer long-lived objects for the cyclic GC to scan."""
    if not t:
        return ()
    # Keyed by the elements' identities (predicates and specials are shared objects; the
    # stored tuple holds them, so their ids are not reused while the entry exists).
    k = tuple(map(id, t))
    got = _INTERNED.get(k)
    if got is None:
        if len(_INTERNED) >= 65536:
            _INTERNED.clear()
        got = _INTERNED[k] = t
    return got
_NO_RULES: list[Any] = []  # shared, never modified
_SHARE_MAX_RULES = 8
_SPECIAL_TYPES = (Statistic, Recent, SetLookup, UnknownMatch, Iface)
# Small compiled chains shared by every evaluator of the process: (backend, family, table,
# chain name) -> the variants of that chain seen (kube-proxy's fixed chains recur in every
# node's ruleset; a Service's chains recur on every node whose rules are built for it).
# Looked up by name, then by ``==`` (identity first): no hashing of whole chains.
_SHARED: dict[tuple[str, str, str, str], _CompiledChain | list[_CompiledChain]] = {}
_SHARED_VARIANTS = 4


def _same_chain(a: Chain, b: Chain) -> bool:
    """Whether a compiled ``a`` may stand for ``b``: equal rules read from the same places.
    ``Rule ==`` ignores ``loc``, so two dumps with an alike small chain (azure-npm's
    AZURE-NPM-ACCEPT, KUBE-MARK-MASQ) would otherwise share one compiled chain and the second
    dump's steps would name the first dump's file and lines."""
    if a is b:
        return True
    return a == b and all(x.loc == y.loc for x, y in zip(a.rules, b.rules, strict=True))


def _compile_special(m: Match) -> _Spec:
    if isinstance(m, Iface):
        flag = "-i" if m.direction == "in" else "-o"
        return (_S_IFACE, (m.direction == "in", m.name, m.negate),
                f"{'! ' if m.negate else ''}{flag} {m.name}")
    if isinstance(m, Statistic):
        spec = _STAT_SPECS.get(m.probability)
        if spec is None:
            p = _fraction(m.probability)
            if p.numerator <= 0:
                spec = (_S_NEVER, None, None)
            elif p.numerator < p.denominator:
                spec = (_S_STAT, p, _complement(p))
            else:
                spec = (_S_STAT, None, None)  # always matches
            if len(_STAT_SPECS) < 4096:
                _STAT_SPECS[m.probability] = spec
        return spec
    if isinstance(m, Recent):
        if m.action == "rcheck" or m.action == "update":
            # A first connection has no affinity entry yet.
            return (_S_RECENT_MISS, None, None)
        return (_S_RECENT_SET, f"recent --name {m.name} --set", None)
    if isinstance(m, SetLookup):
        neg = "!= " if m.negate else ""
        return (_S_SET, m, f"{' . '.join(m.keys)} {neg}@{m.set_name}")
    text = m.text if isinstance(m, UnknownMatch) else repr(m)
    sm = parse_set_match(text)
    if sm is not None:
        return (_S_IPSET, sm, text)
    words = text.split()
    if words in (_PHYSDEV_IS_IN, _NOT_PHYSDEV_IS_IN):
        return (_S_PHYSDEV_IN, words[2] == "!", text)
    syn = _syn_answer(words)
    if syn is not None:
        return (_S_TCP_SYN, syn, text)
    return (_S_UNKNOWN, text, None)


# TCP flags of a connection's first packet (what a trace follows): SYN alone. ECE/CWR may be
# set too (an ECN-setup SYN, RFC 3168 6.1.1), so masks naming them stay undecided.
_TCP_FLAGS = frozenset({"FIN", "SYN", "RST", "PSH", "ACK", "URG"})


def _syn_answer(words: list[str]) -> bool | None:
    """For ``-m tcp [!] --tcp-flags MASK COMP`` or ``-m tcp [!] --syn`` alone: whether a
    connection's first packet (flags SYN) matches (xt_tcpudp.c ``tcp_mt``: ``(flags & mask)
    == comp``; ``--syn`` is ``--tcp-flags SYN,RST,ACK,FIN SYN``). None: another form."""
    if len(words) < 3 or words[:2] != ["-m", "tcp"]:
        return None
    rest = words[2:]
    neg = rest[0] == "!"
    if neg:
        rest = rest[1:]
    if rest == ["--syn"]:
        return not neg
    if len(rest) != 3 or rest[0] != "--tcp-flags":
        return None
    mask, comp = set(rest[1].split(",")), set(rest[2].split(","))
    comp.discard("NONE")
    if not mask <= _TCP_FLAGS or not comp <= _TCP_FLAGS:
        return None  # ALL, ECE, CWR or an unknown name
    return ((mask & {"SYN"}) == comp) != neg


# ``-m physdev [!] --physdev-is-in`` alone (kube-proxy's externalIP rules): decided from the
# input interface when the node's bridges are known. Other physdev options stay undecided.
_PHYSDEV_IS_IN = ["-m", "physdev", "--physdev-is-in"]
_NOT_PHYSDEV_IS_IN = ["-m", "physdev", "!", "--physdev-is-in"]


def _physdev_is_in(pkt: Packet, env: _Env) -> bool | None:
    """Whether ``pkt`` entered through a bridge port (``--physdev-is-in``), None when unknown.
    Linux ``net/netfilter/xt_physdev.c`` ``physdev_mt``: a packet without bridge info
    (``!nf_bridge_info_exists(skb)``: sent by the node itself, or received on a device that is
    not a bridge port) does not match ``--physdev-is-in`` and matches its negation; a packet
    br_netfilter passed up from a bridge port has a ``physindev`` and matches. A packet the
    node sends has no input interface (``iif`` None): decided even when the bridges are not
    known. Bridge CNIs need ``bridge-nf-call-iptables=1`` (kubeadm's preflight check; loading
    xt_physdev requests br_netfilter), assumed here."""
    iif = pkt.iif
    if iif is None:
        return False
    bridges = env.bridges
    if bridges is None:
        return None
    return iif in bridges


# Targets that neither end the walk nor touch the packet: iptables LOG/NFLOG/ULOG/TRACE
# (xt_LOG.c, xt_NFLOG.c: XT_CONTINUE) and nft's log statement, kept as UnknownAction text.
_INERT_TARGETS = ("-j LOG", "-j NFLOG", "-j ULOG", "-j TRACE", "log")


def _inert_text(t: str) -> bool:
    """An unknown action's text names a logging target (no verdict, packet untouched)."""
    return t.startswith('{"log"') or any(t == x or t.startswith(x + " ") for x in _INERT_TARGETS)


def _inert(rule: Rule, chains: Mapping[str, Chain] | None = None,
           seen: frozenset[str] = frozenset()) -> bool:
    """Whether the rule's actions cannot change the packet or the verdict: none at all,
    counters, logging targets only, or (given the table's ``chains``) a jump to a chain whose
    every rule is such a rule or a RETURN (Docker's empty filter ``DOCKER`` chain behind
    ``-o docker0 -j DOCKER``): the walk comes back unchanged. Such a rule's undecidable match
    needs no fork."""
    for a in rule.actions:
        if isinstance(a, Counter) or isinstance(a, UnknownAction) and _inert_text(a.text):
            continue
        if chains is not None and isinstance(a, Jump) and a.chain not in seen:
            target = chains.get(a.chain)
            inner = seen | {a.chain}
            if target is not None and all(
                    all(isinstance(x, Return) for x in r.actions) and r.actions
                    or _inert(r, chains, inner) for r in target.rules):
                continue
        return False
    return True


def _iface_implies(fname: str, fmatches: bool, name: str) -> bool | None:
    """Whether an interface matches pattern ``name``, knowing whether it matches ``fname``
    (``fmatches``); None when that does not tell. Patterns as ``iface_matches`` compares
    them: a trailing ``+`` matches every name with that prefix (``lxc+`` matches ``lxc`` and
    ``lxc12ab``), else the whole name."""
    fp, p = fname.endswith("+"), name.endswith("+")
    fs, s = (fname[:-1] if fp else fname), (name[:-1] if p else name)
    if fmatches:
        if not fp:  # the interface is fs
            return fs.startswith(s) if p else fs == s
        if p and fs.startswith(s):
            return True  # every name starting with fs starts with s
        return None if s.startswith(fs) else False
    if not fp:  # the interface is not fs
        return False if (not p and s == fs) else None
    return False if s.startswith(fs) else None  # it does not start with fs


def _packet_lit(text: str, pkt: Packet) -> tuple[object, ...]:
    """What an undecided set or physdev match's answer depends on: its text and the packet's
    addresses, ports and interfaces; its mark only when the match reads the mark (a set
    tested twice around a ``MARK`` rule, as weave-npc does, is the same question)."""
    return ("m", text, pkt.tuple, pkt.iif, pkt.oif, pkt.mark if "mark" in text else None)


def _match_text(where: tuple[str, str, str, str], m: Match) -> str:
    """A match the evaluator has no predicate for, as its tool writes it."""
    table, chain, backend, family = where
    try:
        text = render_rule(backend, family, table, chain, Rule(matches=(m,)))
    except Exception:  # noqa: BLE001 - a description only
        return repr(m)
    if backend == "nftables":
        return text.split(f" {chain} ", 1)[-1].strip()
    return text.split(f"-A {chain} ", 1)[-1].strip()


# ----------------------------------------------------------------------------- evaluator


class _TableCtx:
    """One table of an evaluator: its chains by name, compiled on first visit."""

    __slots__ = ("table", "chains", "compiled", "_sets")

    def __init__(self, table: Table) -> None:
        self.table = table
        self.chains: dict[str, Chain] = {c.name: c for c in table.chains}
        self.compiled: dict[str, _CompiledChain] = {}
        self._sets: dict[str, _SetIndex] | None = None

    @property
    def sets(self) -> dict[str, _SetIndex]:
        s = self._sets
        if s is None:
            s = self._sets = {x.name: _SetIndex(x) for x in self.table.sets}
        return s


@dataclass(frozen=True, slots=True)
class _BaseChain:
    table: Table
    chain: Chain
    priority: int
    ctx: _TableCtx


# Outcomes of walking a chain: (state, "accept" | "drop" | "reject" | "return" | "continue").
_Out = list[tuple["_State", str]]


_UIDS = count()


class Evaluator:
    """Evaluates one node's ruleset. ``local`` holds the addresses the node owns; ``ipsets``
    the contents of ipsets (by name) that ``-m set`` rules test; ``bridges`` the node's bridge
    devices, all of them (``-m physdev --physdev-is-in`` is decided from the packet's input
    interface; None: not known, such rules fork for packets received from elsewhere);
    ``ifaces`` answers ``-i``/``-o`` matches (default: the packet's interface names are the
    node's real ones, compared exactly)."""

    def __init__(self, ruleset: Ruleset,
                 local: PrefixSet | Iterable[IPAddress | IPNetwork | str], *,
                 ipsets: Mapping[str, IPSet] | None = None,
                 bridges: Iterable[str] | None = None,
                 ifaces: IfaceQuestion | None = None) -> None:
        self.ruleset = ruleset
        self.bridges = None if bridges is None else frozenset(bridges)
        self.ifaces = ifaces
        # ipset contents by set name (an ``ipset save`` dump): ``-m set`` matches on these
        # sets are decided; on any other set they fork (see the module docstring).
        self.ipsets = ipsets
        self._set_fns: dict[int, tuple[SetMatch, SetPredicate]] = {}
        self._uid = next(_UIDS)
        self.backend = ruleset.backend
        self.local = local if isinstance(local, PrefixSet) else PrefixSet(local)
        self._envs: dict[frozenset[str], tuple[_Env, _Env]] = {}
        self._ctx: dict[tuple[str, str], _TableCtx] = {}
        self._hooks: dict[str, list[_BaseChain]] = {h: [] for h in HOOKS}
        self._plans: dict[tuple[str, str | None],
                          list[tuple[_TableCtx, _CompiledChain, Step | None]]] = {}
        iptables = ruleset.backend == "iptables"
        for t in ruleset.tables:
            ctx = self._ctx[(t.family, t.name)] = _TableCtx(t)
            for c in t.chains:
                if len(c.rules) >= _INDEX_THRESHOLD:
                    # Index big chains (kube-proxy's KUBE-SERVICES) with the ruleset, not on
                    # the first packet; their rules are still compiled on first use.
                    self._compiled_chain(ctx, c)
                if c.hook is None or c.hook not in self._hooks:
                    continue
                if iptables:
                    prio = next((p for tb, ch, p in _IPT_HOOKS[c.hook]
                                 if tb == t.name and ch == c.name), None)
                    if prio is None:
                        continue
                else:
                    prio = c.priority if c.priority is not None else 0
                self._hooks[c.hook].append(_BaseChain(t, c, prio, ctx))
        for chains in self._hooks.values():
            chains.sort(key=lambda b: b.priority)

    def compile_all(self) -> Evaluator:
        """Compile every chain and rule now instead of on first use (for many traces through
        one ruleset: the first trace of each Service then costs what later ones do)."""
        for ctx in self._ctx.values():
            for c in ctx.table.chains:
                cc = self._compiled_chain(ctx, c)
                for i in range(len(c.rules)):
                    cr = cc.rule(i)
                    if cr.acts is None:
                        cr.compile_acts()
        return self

    def base_chains(self, hook: str, table_type: str | None = None) -> list[tuple[Table, Chain]]:
        """The base chains of ``hook`` in kernel order; ``table_type`` keeps only nat or filter
        (iptables table name, nft chain type)."""
        return [(b.table, b.chain) for b in self._base(hook, table_type)]

    def _base(self, hook: str, table_type: str | None) -> list[_BaseChain]:
        out = []
        for b in self._hooks.get(hook, []):
            kind = b.table.name if self.ruleset.backend == "iptables" else (b.chain.type or "")
            if table_type is None or kind == table_type:
                out.append(b)
        return out

    def _plan(self, hook: str, table_type: str | None
              ) -> list[tuple[_TableCtx, _CompiledChain, Step | None]]:
        """The base chains of a hook, compiled, each with its ``policy DROP`` step (None when
        the policy is not DROP)."""
        plan = []
        for b in self._base(hook, table_type):
            drop = None
            if (b.chain.policy or "").upper() == "DROP":
                drop = Step(b.table.name, b.chain.name, -1, None, "policy DROP", self.backend,
                            b.table.family, None)
            plan.append((b.ctx, self._compiled_chain(b.ctx, b.chain), drop))
        self._plans[(hook, table_type)] = plan
        return plan

    def run_hook(
        self,
        hook: str,
        packet: Packet,
        *,
        ct_state: Iterable[str] = frozenset({"NEW"}),
        table_type: str | None = None,
        assumed: Sequence[Assumption] = (),
    ) -> list[Branch]:
        """Every branch ``packet`` can take through ``hook`` (only chains of ``table_type`` —
        ``nat`` or ``filter`` — when given). Probabilities of the branches sum to 1, or, when
        undecidable rules forked the walk, to 1 among the branches consistent with any one
        answer for each (``Branch.assumptions``). ``assumed``: answers taken before this hook
        (earlier hooks or nodes of the same packet's path), kept by every branch."""
        base_state = ct_state if isinstance(ct_state, frozenset) else frozenset(ct_state)
        envs = self._envs.get(base_state)
        if envs is None:
            upper = frozenset(s.upper() for s in base_state)
            envs = self._envs[base_state] = (
                _Env(self.local, upper, self.bridges, self.ifaces),
                _Env(self.local, upper | {"DNAT"}, self.bridges, self.ifaces))
        env, env_dnat = envs
        plan = self._plans.get((hook, table_type))
        if plan is None:
            plan = self._plan(hook, table_type)
        states = [_State(ONE, packet, [], assumed=list(assumed)) if assumed else
                  _State(ONE, packet, [])]
        results: list[Branch] = []
        walk = self._walk
        for ctx, cc, drop in plan:
            next_states: list[_State] = []
            for st in states:
                out: _Out = []
                walk(ctx, cc, cc.candidates(st.pkt.tuple), 0, st,
                     env_dnat if st.dnat else env, 0, out)
                for st2, verdict in out:
                    if drop is not None and (verdict == "return" or verdict == "continue"):
                        st2.steps.append(drop)
                        verdict = "drop"
                    if verdict == "drop" or verdict == "reject":
                        results.append(_branch(st2, verdict))
                    else:
                        next_states.append(st2)
            states = next_states
        for st in states:
            results.append(_branch(st, "accept"))
        return results

    def _compiled_chain(self, ctx: _TableCtx, chain: Chain) -> _CompiledChain:
        cc = ctx.compiled.get(chain.name)
        if cc is None:
            table = ctx.table
            if len(chain.rules) <= _SHARE_MAX_RULES:
                key = (self.backend, table.family, table.name, chain.name)
                got = _SHARED.get(key)
                if got is None:
                    if len(_SHARED) >= 65536:
                        _SHARED.clear()
                    cc = _SHARED[key] = _CompiledChain(chain, table, self.backend)
                elif type(got) is _CompiledChain:
                    if _same_chain(got.chain, chain):
                        cc = got
                    else:
                        cc = _CompiledChain(chain, table, self.backend)
                        _SHARED[key] = [got, cc]
                else:
                    assert isinstance(got, list)
                    for v in got:
                        if _same_chain(v.chain, chain):
                            cc = v
                            break
                    else:
                        cc = _CompiledChain(chain, table, self.backend)
                        if len(got) >= _SHARED_VARIANTS:
                            del got[0]
                        got.append(cc)
            else:
                cc = _CompiledChain(chain, table, self.backend)
            ctx.compiled[chain.name] = cc
        return cc

    def _walk(self, ctx: _TableCtx, cc: _CompiledChain, rules: list[_CompiledRule], i: int,
              st: _State, env: _Env, depth: int, out: _Out) -> None:
        """Walk ``rules`` (candidates of ``cc``) from ``i``; appends (state, outcome) to
        ``out``, outcome one of ``accept``, ``drop``, ``reject`` (terminal) or ``return`` /
        ``continue`` (fell off / returned)."""
        n = len(rules)
        while i < n:
            cr = rules[i]
            i += 1
            pkt = st.pkt
            a = cr.dst_is
            if a is not None and a != pkt.tuple.dst:
                continue
            a = cr.src_is
            if a is not None and a != pkt.tuple.src:
                continue
            matched = True
            for fn in cr.fns:
                if not fn(pkt, env):
                    matched = False
                    break
            if not matched:
                continue
            if cr.special and not self._special(ctx, cc, cr, rules, i, st, env, depth, out):
                continue
            acts = cr.acts
            if acts is None:
                acts = cr.compile_acts()
            res = None
            for act in acts:
                if act[0] > _GOTO:
                    res = self._do(ctx, cc, cr, act, st, env, depth)
                    if res is not None:
                        break
                    continue
                # jump / goto, inline: walk the target, then go on here with what returns
                st.steps.append(act[2])
                target = act[1]
                tcc = ctx.compiled.get(target)
                if tcc is None:
                    chain = ctx.chains.get(target)
                    if chain is None:
                        verb = "jump" if act[0] == _JUMP else "goto"
                        st.unknown.append(f"{cc.chain.name}: {verb} to missing chain {target}")
                        res = [(st, "continue")]
                        break
                    tcc = self._compiled_chain(ctx, chain)
                sub: _Out = []
                if depth >= 64:
                    st.unknown.append(f"chain recursion deeper than 64 at {target}")
                    sub.append((st, "drop"))
                elif not tcc.rules:  # an empty chain: straight back
                    if act[0] == _JUMP:
                        break
                    out.append((st, "return"))
                    return
                else:
                    self._walk(ctx, tcc, tcc.candidates(st.pkt.tuple), 0, st, env, depth + 1,
                               sub)
                jump = act[0] == _JUMP
                if len(sub) == 1:
                    st2, r = sub[0]
                    if r != "return" and r != "continue":
                        out.append((st2, r))
                        return
                    if not jump:
                        out.append((st2, "return"))
                        return
                    st = st2  # back from the jump: on to the next rule
                    break
                for st2, r in sub:
                    if r != "return" and r != "continue":
                        out.append((st2, r))
                    elif jump:
                        self._walk(ctx, cc, rules, i, st2, env, depth, out)
                    else:
                        out.append((st2, "return"))
                return
            else:
                if res is None:
                    if cr.matched is not None:
                        st.steps.append(cr.matched)
                    continue
            if res is None:  # a jump returned
                continue
            last = len(res) - 1
            for k, (st2, outcome) in enumerate(res):
                if outcome != "continue":
                    out.append((st2, outcome))
                elif k == last:
                    st = st2  # the last branch goes on with the next rule here
                    break
                else:
                    self._walk(ctx, cc, rules, i, st2, env, depth, out)
            else:
                return
        out.append((st, "continue"))

    def _special(self, ctx: _TableCtx, cc: _CompiledChain, cr: _CompiledRule,
                 rules: list[_CompiledRule], i: int, st: _State, env: _Env, depth: int,
                 out: _Out) -> bool:
        """Evaluate the rule's special matches in order; False when one does not match.
        A random match forks: the branch where it does not match walks on from ``i``."""
        undecided: list[str] | None = None
        # The undecided matches that are functions of the packet alone (-i/-o on a name the
        # evaluator cannot tell, set membership, physdev): the same one met again on this
        # branch (weave-npc tests a set in two rules in a row; kube-router's physdev twins)
        # takes the answer given the first time.
        lits: tuple[tuple[object, ...], ...] = ()
        for kind, a, b in cr.special:
            if kind == _S_STAT:
                # Branch: the rule does not match with probability 1 - p.
                miss = st.fork(mul_prob(st.prob, b))
                self._walk(ctx, cc, rules, i, miss, env, depth, out)
                st.prob = mul_prob(st.prob, a)
            elif kind == _S_NEVER or kind == _S_RECENT_MISS:
                return False
            elif kind == _S_RECENT_SET:
                st.affinity.append(a)
            elif kind == _S_TCP_SYN:
                if "NEW" in env.ct_state and "ESTABLISHED" not in env.ct_state:
                    if not a:
                        return False
                else:  # a later packet of the connection: its flags are not known
                    if undecided is None:
                        undecided = []
                    undecided.append(b)
            elif kind == _S_IFACE:
                is_in, pattern, neg = a
                cur = st.pkt.iif if is_in else st.pkt.oif
                if cur is None:  # no input (sent by the node) / output interface yet
                    hit: bool | None = False
                elif env.ifaces is None:
                    hit = iface_matches(cur, pattern)
                else:
                    hit = env.ifaces(cur, pattern)
                    if hit is None:
                        hit = self._iface_known(st, is_in, cur, pattern)
                if hit is None:
                    if undecided is None:
                        undecided = []
                    undecided.append(b)
                    lits += (("if", is_in, cur, pattern, neg),)
                elif hit == neg:
                    return False
            elif kind == _S_PHYSDEV_IN or kind == _S_SET or kind == _S_IPSET:
                if kind == _S_PHYSDEV_IN:
                    entered = _physdev_is_in(st.pkt, env)
                    # is-in and entered, or ! is-in (a) and not entered
                    res = None if entered is None else entered != a
                elif kind == _S_SET:
                    res = self._set_lookup(ctx, a, st.pkt)
                else:
                    got = self._set_fns.get(id(a))
                    if got is None or got[0] is not a:
                        got = self._set_fn(a)
                    res = got[1](st.pkt.tuple)
                if res is None:
                    lit = _packet_lit(b, st.pkt)
                    res = self._lit_known(st, lit)
                    if res is None:
                        if undecided is None:
                            undecided = []
                        undecided.append(b)
                        lits += (lit,)
                        continue
                if not res:
                    return False
            else:  # unknown match
                if a.startswith("-m physdev "):  # a function of the packet's bridge ports
                    lit = _packet_lit(a, st.pkt)
                    known = self._lit_known(st, lit)
                    if known is not None:
                        if not known:
                            return False
                        continue
                    lits += (lit,)
                if undecided is None:
                    undecided = []
                undecided.append(a)
        if undecided is not None:
            if len(lits) == len(undecided) and self._refuted(st, lits):
                return False
            # Every decidable match holds: whether the rule matches is unknown. Fork.
            return self._undecided(ctx, cc, cr, rules, i, st, env, depth, out,
                                   tuple(undecided), lits)
        return True

    def _facts(self, st: _State) -> Iterable[tuple[tuple[object, ...], bool]]:
        """(literal, whether it holds) for what this branch's earlier answers on this
        evaluator tell about single matches (``_undecided``'s ``lits``): a rule assumed to
        match makes each of its undecided matches hold; a rule assumed not to, with one
        undecided match, makes that one fail."""
        for asm in st.assumed:
            k = asm.key
            if len(k) != 6 or k[0] != self._uid:
                continue
            lits = cast("tuple[tuple[object, ...], ...]", k[5])
            if asm.matches:
                for lit in lits:
                    yield lit, True
            elif len(lits) == 1 and len(asm.undecided) == 1:
                yield lits[0], False

    def _lit_known(self, st: _State, lit: tuple[object, ...]) -> bool | None:
        """Whether the undecided match ``lit`` holds on this branch, None: not answered."""
        for got, holds in self._facts(st):
            if got == lit:
                return holds
        return None

    def _iface_known(self, st: _State, is_in: bool, cur: str, name: str) -> bool | None:
        """Whether the interface ``cur`` (input when ``is_in``), whose real name the evaluator
        cannot tell, matches ``name``, as far as this branch's earlier answers about the same
        interface tell; None when they do not: after ``-i wt0`` was assumed to match, ``-i
        wt0`` matches and ``-i ens5`` does not; after ``-o eth+`` was assumed not to, ``-o
        eth1`` does not."""
        for lit, holds in self._facts(st):
            if lit[0] != "if" or lit[1] != is_in or lit[2] != cur:
                continue
            got = _iface_implies(str(lit[3]), holds != lit[4], name)
            if got is not None:
                return got
        return None

    def _refuted(self, st: _State, lits: tuple[tuple[object, ...], ...]) -> bool:
        """Whether this branch already assumed that an earlier rule asking only some of
        ``lits`` did not match: then they do not all hold (the same `-i X ! -o Y` pair in two
        chains)."""
        want = set(lits)
        for asm in st.assumed:
            k = asm.key
            if asm.matches or len(k) != 6 or k[0] != self._uid:
                continue
            theirs = cast("tuple[tuple[object, ...], ...]", k[5])
            if len(theirs) == len(asm.undecided) and want.issuperset(theirs):
                return True
        return False

    def _set_fn(self, m: SetMatch) -> tuple[SetMatch, SetPredicate]:
        """``-m set`` match ``m`` against this evaluator's ipsets, compiled once
        (``ipset.compile_set_match``); without ipsets: always undecided."""
        sets = self.ipsets
        got = (m, (lambda t: None) if sets is None else compile_set_match(m, sets))
        if len(self._set_fns) >= 65536:
            self._set_fns.clear()
        self._set_fns[id(m)] = got  # holds m: its id is not reused while the entry exists
        return got

    def _undecided(self, ctx: _TableCtx, cc: _CompiledChain, cr: _CompiledRule,
                   rules: list[_CompiledRule], i: int, st: _State, env: _Env, depth: int,
                   out: _Out, undecided: tuple[str, ...],
                   lits: tuple[tuple[object, ...], ...] = ()) -> bool:
        """The rule's ``undecided`` matches cannot be decided: the branch where the rule does
        not match walks on from ``i`` (same probability), and this one goes on as matched —
        unless this branch already answered the same question (same rule, same packet).
        ``lits``: those of the undecided matches that depend on the packet alone (``_special``),
        kept in the assumption's key so that later rules asking the same agree with it."""
        if _inert(cr.rule, ctx.chains):
            # Matching or not, nothing changes (no target, only logging, a jump to such a
            # chain): no fork.
            return False
        key: tuple[object, ...] = (self._uid, cr.where, cr.index, st.pkt, env.ct_state)
        if lits:
            key += (lits,)
        for asm in st.assumed:
            if asm.key == key:
                return asm.matches
        label = self._label(ctx, cc, cr)
        miss = st.fork(st.prob)
        miss.assumed.append(Assumption(label, False, undecided, key))
        self._walk(ctx, cc, rules, i, miss, env, depth, out)
        st.assumed.append(Assumption(label, True, undecided, key))
        return True

    def _rests_on(self, ctx: _TableCtx, cc: _CompiledChain, cr: _CompiledRule, st: _State,
                  what: str) -> None:
        """The branch went on past an action it could not apply (``what``, starting with
        ``action ``): its outcome is uncertain and names the rule — once per branch."""
        key = (self._uid, cr.where, cr.index, "action")
        if not any(a.key == key for a in st.assumed):
            st.assumed.append(Assumption(self._label(ctx, cc, cr), True, (what,), key))

    def _label(self, ctx: _TableCtx, cc: _CompiledChain, cr: _CompiledRule) -> str:
        """The rule as the dump wrote it, with ``(file:line)`` when the rule knows where it
        was read (``Rule.loc``); else as iptables-save / nft lists it. Taken from this
        evaluator's own chain (compiled chains are shared between equal chains, and ``==``
        ignores where a rule came from)."""
        table, name, backend, family = cc.where
        chain = ctx.chains.get(name)
        rule = cr.rule
        if chain is not None and cr.index < len(chain.rules):
            rule = chain.rules[cr.index]
        loc = getattr(rule, "loc", None) or getattr(rule, "source", None)
        try:
            text = render_rule(backend, family, table, name, rule)
        except ValueError:  # not expressible by its tool: say where it is
            text = f"{table} {name} rule {cr.index + 1}"
        if loc is None:
            return text
        where = loc.where() if hasattr(loc, "where") else str(loc)
        return f"{getattr(loc, 'text', None) or text} ({where})"

    def _do(self, ctx: _TableCtx, cc: _CompiledChain, cr: _CompiledRule, act: _Act,
            st: _State, env: _Env, depth: int) -> _Out | None:
        """Run one action. None: it did not end the rule's effect on flow (go on with the
        rule's next action, then the next rule)."""
        op, arg, step, extra = act
        if op <= _GOTO:  # jump / goto
            st.steps.append(step)
            tcc = ctx.compiled.get(arg)
            if tcc is None:
                target = ctx.chains.get(arg)
                if target is None:
                    verb = "jump" if op == _JUMP else "goto"
                    st.unknown.append(f"{cc.chain.name}: {verb} to missing chain {arg}")
                    return [(st, "continue")]
                tcc = self._compiled_chain(ctx, target)
            sub: _Out = []
            if depth >= 64:
                st.unknown.append(f"chain recursion deeper than 64 at {arg}")
                sub.append((st, "drop"))
            else:
                self._walk(ctx, tcc, tcc.candidates(st.pkt.tuple), 0, st, env, depth + 1, sub)
            fell = "continue" if op == _JUMP else "return"
            if len(sub) == 1:
                s1, r1 = sub[0]
                if r1 == "return" or r1 == "continue":
                    sub[0] = (s1, fell)
                return sub
            return [(s, fell if (r == "return" or r == "continue") else r) for s, r in sub]
        if op <= _REJECT:
            st.steps.append(step)
            return [(st, _OUTCOME[op])]
        if op == _MARK:
            a: MarkSet = arg
            old = st.pkt.mark
            if a.op == "or":
                new = old | a.value
            elif a.op == "xor":
                new = old ^ a.value
            elif a.op == "and":
                new = old & a.value
            else:
                new = (old & ~a.mask & 0xFFFFFFFF) ^ a.value
            p = st.pkt
            st.pkt = new_packet(p.tuple, p.iif, p.oif, new)
            st.steps.append(cr.step("mark", (a.op, a.value, old, new)))
            return None
        if op == _DNAT:
            d: Dnat = arg
            p = st.pkt
            t = p.tuple
            port = d.port if d.port is not None else t.dport
            new_t = _retarget(t, d.addr, port)
            st.pkt = new_packet(new_t, p.iif, p.oif, p.mark)
            st.dnat = True
            st.steps.append(cr.step("DNAT", (t, d.addr, port)))
            return [(st, "accept")]
        if op == _MASQ:
            st.masq = True
            st.steps.append(step)
            return [(st, "accept")]
        if op == _SNAT:
            st.snat_to = arg
            st.steps.append(cr.step("SNAT", (st.pkt.tuple.src, arg)))
            return [(st, "accept")]
        if op == _SETUPD:
            st.affinity.append(arg)
            st.steps.append(step)
            return None
        if op == _VMAP:
            n = len(st.unknown)
            verdict = self._map_lookup(ctx, arg, st)
            if verdict is None:
                if len(st.unknown) > n:  # no such map, or a key it cannot read: undecided
                    self._rests_on(ctx, cc, cr, st, f"action {st.unknown[-1]}")
                return None
            st.steps.append(step)
            return self._do(ctx, cc, cr, cr.verdict_act(verdict), st, env, depth)
        if op == _NUMGEN:
            if arg is None:
                return None
            outs: _Out = []
            for choice in arg:
                st_k = st.fork(mul_prob(st.prob, step))
                got = self._do(ctx, cc, cr, choice, st_k, env, depth)
                outs.extend(got if got is not None else [(st_k, "continue")])
            if extra is not None:  # values without an entry: no verdict, fall through
                outs.append((st.fork(mul_prob(st.prob, extra)), "continue"))
            return outs
        if op == _UNKACT:
            st.unknown.append(arg)
            st.steps.append(step)
            text = step.arg
            if isinstance(text, str) and not _inert_text(text):
                # Not modelled (a DNAT to a range, REDIRECT, NOTRACK, CONNMARK...): the walk
                # goes on as if it did nothing, and the outcome says it rests on that.
                self._rests_on(ctx, cc, cr, st, f"action {text} not modelled")
            return None
        if arg is not None:  # unsupported action
            st.unknown.append(arg)
        return None

    # -- nft sets and maps

    def _key(self, keys: tuple[str, ...], pkt: Packet) -> tuple[object, ...] | None:
        codes = _KEY_CODES.get(keys)
        if codes is None:
            codes = _key_codes(keys)
        t = pkt.tuple
        if codes is _DST_PROTO_DPORT:
            return (t.dst, t.proto, t.dport)
        if codes is _DST:
            return (t.dst,)
        if codes is _PROTO_DPORT:
            return (t.proto, t.dport)
        if codes is _UNKEYABLE:
            return None
        out: list[object] = []
        for c in codes:
            if c == _K_SRC:
                out.append(t.src)
            elif c == _K_DST:
                out.append(t.dst)
            elif c == _K_PROTO:
                out.append(t.proto)
            elif c == _K_DPORT:
                out.append(t.dport)
            elif c == _K_SPORT:
                out.append(t.sport)
            else:
                out.append(pkt.mark)
        return tuple(out)

    def _set_lookup(self, ctx: _TableCtx, m: SetLookup, pkt: Packet) -> bool | None:
        idx = ctx.sets.get(m.set_name)
        if idx is None:
            return None
        if "dynamic" in idx.nftset.flags:
            # Dynamic (affinity) sets start empty for a first connection.
            return m.negate
        key = self._key(m.keys, pkt)
        if key is None:
            return None
        return idx.contains(key) != m.negate

    def _map_lookup(self, ctx: _TableCtx, a: Vmap, st: _State) -> Verdict | None:
        idx = ctx.sets.get(a.map_name)
        if idx is None:
            st.unknown.append(f"vmap @{a.map_name}: no such map")
            return None
        key = self._key(a.keys, st.pkt)
        if key is None:
            st.unknown.append(f"vmap @{a.map_name}: key {' . '.join(a.keys)} not evaluable")
            return None
        return idx.value(key)


_K_SRC, _K_DST, _K_PROTO, _K_DPORT, _K_SPORT, _K_MARK = range(6)
_DST_PROTO_DPORT = (_K_DST, _K_PROTO, _K_DPORT)
_DST = (_K_DST,)
_PROTO_DPORT = (_K_PROTO, _K_DPORT)
_UNKEYABLE = (-1,)
_KEY_CODES: dict[tuple[str, ...], tuple[int, ...]] = {}


def _key_codes(keys: tuple[str, ...]) -> tuple[int, ...]:
    """What each nft key expression reads from the packet (``_UNKEYABLE``: one cannot be
    evaluated); the common shapes are the module's tuples, compared by identity."""
    codes: list[int] = []
    for k in keys:
        if k.endswith("saddr"):
            codes.append(_K_SRC)
        elif k.endswith("daddr"):
            codes.append(_K_DST)
        elif k in ("meta l4proto", "ip protocol", "ip6 nexthdr"):
            codes.append(_K_PROTO)
        elif k.endswith("dport"):
            codes.append(_K_DPORT)
        elif k.endswith("sport"):
            codes.append(_K_SPORT)
        elif k in ("meta mark", "mark"):
            codes.append(_K_MARK)
        else:
            codes = list(_UNKEYABLE)
            break
    out = tuple(codes)
    for shape in (_DST_PROTO_DPORT, _DST, _PROTO_DPORT, _UNKEYABLE):
        if out == shape:
            out = shape
    if len(_KEY_CODES) < 4096:
        _KEY_CODES[keys] = out
    return out


def _branch(st: _State, disp: str) -> Branch:
    a, u, d = st.affinity, st.unknown, st.assumed
    b = _new(Branch)
    _b_prob(b, st.prob)
    _b_pkt(b, st.pkt)
    _b_disp(b, disp)
    _b_steps(b, tuple(st.steps))
    _b_masq(b, st.masq)
    _b_snat(b, st.snat_to)
    _b_dnat(b, st.dnat)
    _b_aff(b, tuple(a) if a else ())
    _b_unk(b, tuple(u) if u else ())
    _b_asm(b, tuple(d) if d else ())
    return b


# Private fast constructors of frozen slotted values built on every trace: every field is
# set through its slot (what the generated __init__ does, minus the frozen-__setattr__
# detour). Only for classes without __post_init__ (FiveTuple's checks are done by hand).
_new = object.__new__


def _setters(cls: type, *names: str) -> tuple[Callable[[Any, Any], None], ...]:
    assert set(names) == set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    assert not hasattr(cls, "__post_init__") or cls is FiveTuple
    return tuple(getattr(cls, n).__set__ for n in names)


(_b_prob, _b_pkt, _b_disp, _b_steps, _b_masq, _b_snat, _b_dnat, _b_aff, _b_unk,
 _b_asm) = _setters(
    Branch, "probability", "packet", "disposition", "steps", "masquerade", "snat_to", "dnat",
    "affinity", "unknown", "assumptions")
(_s_table, _s_chain, _s_index, _s_rule, _s_kind, _s_backend, _s_family, _s_arg) = _setters(
    Step, "table", "chain", "index", "rule", "kind", "backend", "family", "arg")
_p_tuple, _p_iif, _p_oif, _p_mark = _setters(Packet, "tuple", "iif", "oif", "mark")
_t_proto, _t_src, _t_sport, _t_dst, _t_dport = _setters(
    FiveTuple, "proto", "src", "sport", "dst", "dport")


def new_step(table: str, chain: str, index: int, rule: Rule | None, kind: str, backend: str,
             family: str, arg: object) -> Step:
    """``Step(table, chain, index, rule, kind, backend, family, arg)``, built faster."""
    s = _new(Step)
    _s_table(s, table)
    _s_chain(s, chain)
    _s_index(s, index)
    _s_rule(s, rule)
    _s_kind(s, kind)
    _s_backend(s, backend)
    _s_family(s, family)
    _s_arg(s, arg)
    return s


def new_packet(t: FiveTuple, iif: str | None, oif: str | None, mark: int) -> Packet:
    """``Packet(tuple=t, iif=iif, oif=oif, mark=mark)``, built faster."""
    p = _new(Packet)
    _p_tuple(p, t)
    _p_iif(p, iif)
    _p_oif(p, oif)
    _p_mark(p, mark)
    return p


def _retarget(t: FiveTuple, addr: IPAddress, port: int) -> FiveTuple:
    """``t`` with destination ``addr``:``port``; skips FiveTuple's validation when what it
    checks provably holds (same protocol, same family, port in range)."""
    if addr.version != t.src.version or not 0 <= port <= 65535:
        return FiveTuple(proto=t.proto, src=t.src, sport=t.sport, dst=addr, dport=port)
    nt = _new(FiveTuple)
    _t_proto(nt, t.proto)
    _t_src(nt, t.src)
    _t_sport(nt, t.sport)
    _t_dst(nt, addr)
    _t_dport(nt, port)
    return nt


_ABSENT = object()


class _SetIndex:
    """Exact-key index over an nft set or map; elements with prefixes are checked in order."""

    __slots__ = ("nftset", "exact", "fuzzy")

    def __init__(self, s: NftSet) -> None:
        self.nftset = s
        self.exact: dict[tuple[object, ...], Verdict | None] = {}
        self.fuzzy: list[tuple[tuple[object, ...], Verdict | None]] = []
        for el in s.elements:
            if any(isinstance(k, IPNetwork.__args__) or isinstance(k, tuple)  # type: ignore[attr-defined]
                   for k in el.key):
                self.fuzzy.append((el.key, el.value))
            else:
                self.exact[el.key] = el.value

    def _match(self, key: tuple[object, ...]) -> tuple[bool, Verdict | None]:
        got = self.exact.get(key, _ABSENT)
        if got is not _ABSENT:
            return True, got  # type: ignore[return-value]
        for ekey, value in self.fuzzy:
            if len(ekey) != len(key):
                continue
            ok = True
            for want, got in zip(ekey, key, strict=True):
                if isinstance(want, IPNetwork.__args__):  # type: ignore[attr-defined]
                    ok = (isinstance(got, IPAddress.__args__)  # type: ignore[attr-defined]
                          and got.version == want.version and got in want)
                elif isinstance(want, tuple):
                    ok = isinstance(got, int) and want[0] <= got <= want[1]
                else:
                    ok = want == got
                if not ok:
                    break
            if ok:
                return True, value
        return False, None

    def contains(self, key: tuple[object, ...]) -> bool:
        return self._match(key)[0]

    def value(self, key: tuple[object, ...]) -> Verdict | None:
        return self._match(key)[1]
