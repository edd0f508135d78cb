"""Evaluate a ruleset on one packet at one netfilter hook.

``Evaluator(ruleset, local)`` binds a ruleset to the addresses the node owns (what
``addrtype LOCAL`` / ``fib ... type local`` match). ``run_hook(hook, packet, ...)`` walks, in
priority order, every base chain of the hook (iptables: the built-in chains of the nat and
filter tables; nftables: base chains by priority) and returns every *branch* the packet can take:
random load balancing (``statistic``, ``numgen``) is enumerated, never sampled, each branch with
its exact probability. Matches the evaluator cannot decide (``UnknownMatch``) are reported on the
branch and assumed not to match; nothing is guessed silently.

Chains with many rules (kube-proxy's ``KUBE-SERVICES``) are indexed by (destination, protocol,
port) so that finding a service's rule does not walk the chain; rule order is preserved by
merging the indexed candidates with the rules the index cannot key, by position.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from typing import Any, Literal

from sourceip.net.addr import IPAddress, IPNetwork
from sourceip.net.packet import FiveTuple, Packet
from sourceip.net.prefixset import PrefixSet
from sourceip.netfilter.ir import (
    Accept,
    Action,
    Addr,
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
            return f"DNAT to {_hp(addr, port)}"
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
            return (("dst", _hp(t.dst, t.dport), _hp(addr, port)),)
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


def render_rule(backend: str, family: str, table: str, chain: str, rule: Rule) -> str:
    """One rule as its tool lists it (``-A CHAIN ...`` or ``add rule FAMILY TABLE CHAIN ...``)."""
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

    def fork(self, prob: Fraction) -> _State:
        return _State(prob, self.pkt, list(self.steps), self.masq, self.snat_to, self.dnat,
                      list(self.affinity), list(self.unknown))


@dataclass(frozen=True, slots=True)
class _Env:
    local: PrefixSet
    ct_state: frozenset[str]


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
    if len(networks) > 8:
        ps = PrefixSet(networks)

        def many(a: IPAddress) -> bool:
            return a in hosts or a in ps

        return many

    def some(a: IPAddress) -> bool:
        if a in hosts:
            return True
        return any(a.version == n.version and a in n for n in networks)

    return some


def _compile_match(m: Match) -> MatchFn | None:
    """A predicate for ``m``, or None when the match cannot be evaluated."""
    if isinstance(m, Proto):
        proto, neg = m.proto, m.negate
        return lambda p, e: (p.tuple.proto == proto) != neg
    if isinstance(m, Addr):
        test = _addr_in(m.nets)
        neg = m.negate
        if m.field == "src":
            return lambda p, e: test(p.tuple.src) != neg
        return lambda p, e: test(p.tuple.dst) != neg
    if isinstance(m, Port):
        singles = frozenset(x for x in m.ports if isinstance(x, int))
        ranges = tuple(x for x in m.ports if isinstance(x, tuple))
        neg = m.negate
        is_d = m.field == "dport"

        def port_ok(p: Packet, e: _Env) -> bool:
            v = p.tuple.dport if is_d else p.tuple.sport
            hit = v in singles or any(lo <= v <= hi for lo, hi in ranges)
            return hit != neg

        return port_ok
    if isinstance(m, Iface):
        name, neg, is_in = m.name, m.negate, m.direction == "in"
        prefix = name.endswith("+")
        stem = name[:-1] if prefix else name

        def iface_ok(p: Packet, e: _Env) -> bool:
            cur = p.iif if is_in else p.oif
            hit = cur is not None and (cur.startswith(stem) if prefix else cur == name)
            return hit != neg

        return iface_ok
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
        return lambda p, e: bool(states & e.ct_state) != neg
    if isinstance(m, Nfacct):
        return lambda p, e: True
    return None  # Statistic, Recent, SetLookup: handled by the walker; UnknownMatch: unknown


# ----------------------------------------------------------------------------- chain index


@dataclass(slots=True)
class _CompiledRule:
    index: int
    rule: Rule
    fns: tuple[MatchFn, ...]
    special: tuple[Match, ...]  # Statistic / Recent / SetLookup / UnknownMatch, in order
    key: tuple[IPAddress, str, int] | None


def _rule_key(rule: Rule) -> tuple[IPAddress, str, int] | None:
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
    if dst is None or proto is None or dport is None:
        return None
    return (dst, proto, dport)


@dataclass(slots=True)
class _CompiledChain:
    chain: Chain
    rules: list[_CompiledRule]
    by_key: dict[tuple[IPAddress, str, int], list[int]] | None
    generic: list[int]
    generic_rules: list[_CompiledRule]

    def candidates(self, t: FiveTuple) -> list[_CompiledRule]:
        """The rules that can match ``t``, in chain order (the list must not be modified)."""
        if self.by_key is None:
            return self.rules
        keyed = self.by_key.get((t.dst, t.proto, t.dport))
        rules = self.rules
        if not keyed:
            return self.generic_rules
        return [rules[i] for i in heapq.merge(keyed, self.generic)]


_INDEX_THRESHOLD = 16
_SHARE_MAX_RULES = 8
_SHARED: dict[Chain, _CompiledChain] = {}


def _compile_chain(chain: Chain) -> _CompiledChain:
    rules: list[_CompiledRule] = []
    for i, rule in enumerate(chain.rules):
        fns: list[MatchFn] = []
        special: list[Match] = []
        for m in rule.matches:
            if isinstance(m, Statistic | Recent | SetLookup | UnknownMatch):
                special.append(m)
                continue
            fn = _compile_match(m)
            if fn is None:
                special.append(UnknownMatch(text=repr(m)))
            else:
                fns.append(fn)
        rules.append(_CompiledRule(i, rule, tuple(fns), tuple(special), _rule_key(rule)))
    by_key: dict[tuple[IPAddress, str, int], list[int]] | None = None
    generic: list[int] = []
    if len(rules) >= _INDEX_THRESHOLD:
        by_key = {}
        for cr in rules:
            if cr.key is None:
                generic.append(cr.index)
            else:
                by_key.setdefault(cr.key, []).append(cr.index)
    return _CompiledChain(chain, rules, by_key, generic, [rules[i] for i in generic])


# ----------------------------------------------------------------------------- evaluator


class _Stop(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _BaseChain:
    table: Table
    chain: Chain
    priority: int


class Evaluator:
    """Evaluates one node's ruleset. ``local`` holds the addresses the node owns."""

    def __init__(self, ruleset: Ruleset,
                 local: PrefixSet | Iterable[IPAddress | IPNetwork | str]) -> None:
        self.ruleset = ruleset
        self.backend = ruleset.backend
        self.local = local if isinstance(local, PrefixSet) else PrefixSet(local)
        self._envs: dict[frozenset[str], tuple[_Env, _Env]] = {}
        self._compiled: dict[tuple[str, str, str], _CompiledChain] = {}
        self._chains: dict[tuple[str, str], dict[str, Chain]] = {
            (t.family, t.name): {c.name: c for c in t.chains} for t in ruleset.tables
        }
        self._sets: dict[tuple[str, str], dict[str, _SetIndex]] = {
            (t.family, t.name): {s.name: _SetIndex(s) for s in t.sets} for t in ruleset.tables
        }
        self._hooks: dict[str, list[_BaseChain]] = {h: [] for h in HOOKS}
        for t in ruleset.tables:
            for c in t.chains:
                if c.hook is None or c.hook not in self._hooks:
                    continue
                if ruleset.backend == "iptables":
                    prio = next((p for tb, ch, p in _IPT_HOOKS[c.hook]
                                 if tb == t.name and ch == c.name), None)
                    if prio is None:
                        continue
                else:
                    prio = c.priority if c.priority is not None else 0
                self._hooks[c.hook].append(_BaseChain(t, c, prio))
        for chains in self._hooks.values():
            chains.sort(key=lambda b: b.priority)

    def base_chains(self, hook: str, table_type: str | None = None) -> list[tuple[Table, Chain]]:
        """The base chains of ``hook`` in kernel order; ``table_type`` keeps only nat or filter
        (iptables table name, nft chain type)."""
        out = []
        for b in self._hooks.get(hook, []):
            kind = b.table.name if self.ruleset.backend == "iptables" else (b.chain.type or "")
            if table_type is None or kind == table_type:
                out.append((b.table, b.chain))
        return out

    def run_hook(
        self,
        hook: str,
        packet: Packet,
        *,
        ct_state: Iterable[str] = frozenset({"NEW"}),
        table_type: str | None = None,
    ) -> list[Branch]:
        """Every branch ``packet`` can take through ``hook`` (only chains of ``table_type`` —
        ``nat`` or ``filter`` — when given). Probabilities of the branches sum to 1."""
        base_state = ct_state if isinstance(ct_state, frozenset) else frozenset(ct_state)
        envs = self._envs.get(base_state)
        if envs is None:
            upper = frozenset(s.upper() for s in base_state)
            envs = self._envs[base_state] = (_Env(self.local, upper),
                                             _Env(self.local, upper | {"DNAT"}))
        env, env_dnat = envs
        states = [_State(ONE, packet, [])]
        results: list[Branch] = []
        for table, chain in self.base_chains(hook, table_type):
            next_states: list[_State] = []
            for st in states:
                st_env = env_dnat if st.dnat else env
                for st2, verdict in self._run_chain(table, chain, st, st_env, depth=0):
                    if verdict in ("return", "continue") and (chain.policy or "").upper() == "DROP":
                        st2.steps.append(self._step(table, chain, -1, None, "policy DROP"))
                        verdict = "drop"
                    if verdict in ("drop", "reject"):
                        results.append(self._branch(st2, verdict))
                    else:
                        next_states.append(st2)
            states = next_states
        results.extend(self._branch(st, "accept") for st in states)
        return results

    @staticmethod
    def _branch(st: _State, disp: str) -> Branch:
        return Branch(
            probability=st.prob, packet=st.pkt, disposition=disp,  # type: ignore[arg-type]
            steps=tuple(st.steps), masquerade=st.masq, snat_to=st.snat_to, dnat=st.dnat,
            affinity=tuple(st.affinity), unknown=tuple(st.unknown),
        )

    def _compiled_chain(self, table: Table, chain: Chain) -> _CompiledChain:
        key = (table.family, table.name, chain.name)
        cc = self._compiled.get(key)
        if cc is None:
            if len(chain.rules) <= _SHARE_MAX_RULES:
                # Small chains (kube-proxy's fixed ones) recur in every node's ruleset:
                # compile each distinct chain once per process.
                cc = _SHARED.get(chain)
                if cc is None:
                    cc = _compile_chain(chain)
                    if len(_SHARED) < 65536:
                        _SHARED[chain] = cc
            else:
                cc = _compile_chain(chain)
            self._compiled[key] = cc
        return cc

    def _step(self, table: Table, chain: Chain, idx: int, rule: Rule | None, kind: str,
              arg: object = None) -> Step:
        return Step(table.name, chain.name, idx, rule, kind, self.backend, table.family, arg)

    def _run_chain(self, table: Table, chain: Chain, st: _State, env: _Env, depth: int
                   ) -> list[tuple[_State, str]]:
        """Walk ``chain``; returns (state, outcome) with outcome one of ``accept``, ``drop``,
        ``reject`` (terminal) or ``return`` / ``continue`` (fell off / returned)."""
        if depth > 64:
            st.unknown.append(f"chain recursion deeper than 64 at {chain.name}")
            return [(st, "drop")]
        cc = self._compiled_chain(table, chain)
        return self._walk(table, cc, cc.candidates(st.pkt.tuple), 0, st, env, depth)

    def _walk(self, table: Table, cc: _CompiledChain, rules: list[_CompiledRule], start: int,
              st: _State, env: _Env, depth: int) -> list[tuple[_State, str]]:
        out: list[tuple[_State, str]] = []
        chain = cc.chain
        i = start
        while i < len(rules):
            cr = rules[i]
            i += 1
            pkt = st.pkt
            matched = True
            for fn in cr.fns:
                if not fn(pkt, env):
                    matched = False
                    break
            if not matched:
                continue
            for m in cr.special:
                if isinstance(m, Statistic):
                    p = _fraction(m.probability)
                    if p.numerator <= 0:
                        matched = False
                        break
                    if p.numerator < p.denominator:
                        # Branch: the rule does not match with probability 1 - p.
                        miss = st.fork(st.prob * (1 - p))
                        out.extend(self._walk(table, cc, rules, i, miss, env, depth))
                        st.prob = st.prob * p
                elif isinstance(m, Recent):
                    if m.action == "rcheck" or m.action == "update":
                        # A first connection has no affinity entry yet.
                        matched = False
                        break
                    st.affinity.append(f"recent --name {m.name} --set")
                elif isinstance(m, SetLookup):
                    res = self._set_lookup(table, m, pkt)
                    if res is None:
                        st.unknown.append(f"{chain.name}: set @{m.set_name} cannot be evaluated")
                        matched = False
                        break
                    if not res:
                        matched = False
                        break
                else:  # UnknownMatch
                    text = m.text if isinstance(m, UnknownMatch) else repr(m)
                    st.unknown.append(f"{chain.name}[{cr.index}]: cannot evaluate {text}; "
                                      "assumed not to match")
                    matched = False
                    break
            if not matched:
                continue
            applied = self._apply(table, chain, cr, st, env, depth)
            if applied is None:
                continue
            for st2, outcome in applied:
                if outcome == "continue":
                    out.extend(self._walk(table, cc, rules, i, st2, env, depth))
                else:
                    out.append((st2, outcome))
            return out
        out.append((st, "continue"))
        return out

    def _apply(self, table: Table, chain: Chain, cr: _CompiledRule, st: _State, env: _Env,
               depth: int) -> list[tuple[_State, str]] | None:
        """Run the rule's actions. None: no action ended the rule's effect on flow (fall to
        the next rule)."""
        for action in cr.rule.actions:
            res = self._action(table, chain, cr, action, st, env, depth)
            if res is not None:
                return res
        if cr.rule.actions:
            return None
        st.steps.append(self._step(table, chain, cr.index, cr.rule, "matched"))
        return None

    def _action(self, table: Table, chain: Chain, cr: _CompiledRule, a: Action, st: _State,
                env: _Env, depth: int) -> list[tuple[_State, str]] | None:
        rule, idx = cr.rule, cr.index
        if isinstance(a, Jump | Goto):
            target = self._chains[(table.family, table.name)].get(a.chain)
            verb = "jump" if isinstance(a, Jump) else "goto"
            st.steps.append(self._step(table, chain, idx, rule, verb, a.chain))
            if target is None:
                st.unknown.append(f"{chain.name}: {verb} to missing chain {a.chain}")
                return [(st, "continue")]
            out: list[tuple[_State, str]] = []
            for st2, res in self._run_chain(table, target, st, env, depth + 1):
                if res in ("return", "continue"):
                    out.append((st2, "return" if isinstance(a, Goto) else "continue"))
                else:
                    out.append((st2, res))
            return out
        if isinstance(a, Return):
            st.steps.append(self._step(table, chain, idx, rule, "return"))
            return [(st, "return")]
        if isinstance(a, Accept):
            st.steps.append(self._step(table, chain, idx, rule, "accept"))
            return [(st, "accept")]
        if isinstance(a, Drop):
            st.steps.append(self._step(table, chain, idx, rule, "drop"))
            return [(st, "drop")]
        if isinstance(a, Reject):
            st.steps.append(self._step(table, chain, idx, rule, "reject"))
            return [(st, "reject")]
        if isinstance(a, MarkSet):
            old = st.pkt.mark
            if a.op == "or":
                new = old | a.value
            elif a.op == "xor":
                new = old ^ a.value
            elif a.op == "and":
                new = old & a.value
            else:
                new = (old & ~a.mask & 0xFFFFFFFF) ^ a.value
            st.pkt = st.pkt.with_(mark=new)
            st.steps.append(self._step(table, chain, idx, rule, "mark",
                                       (a.op, a.value, old, new)))
            return None
        if isinstance(a, Dnat):
            t = st.pkt.tuple
            port = a.port if a.port is not None else t.dport
            new_t = FiveTuple(proto=t.proto, src=t.src, sport=t.sport, dst=a.addr, dport=port)
            st.pkt = st.pkt.with_(tuple=new_t)
            st.dnat = True
            st.steps.append(self._step(table, chain, idx, rule, "DNAT", (t, a.addr, port)))
            return [(st, "accept")]
        if isinstance(a, Masquerade):
            st.masq = True
            st.steps.append(self._step(table, chain, idx, rule, "MASQUERADE"))
            return [(st, "accept")]
        if isinstance(a, Snat):
            st.snat_to = a.addr
            st.steps.append(self._step(table, chain, idx, rule, "SNAT",
                                       (st.pkt.tuple.src, a.addr)))
            return [(st, "accept")]
        if isinstance(a, SetUpdate):
            st.affinity.append(f"update @{a.set_name}")
            st.steps.append(self._step(table, chain, idx, rule, "remember", a.set_name))
            return None
        if isinstance(a, Counter):
            return None
        if isinstance(a, Vmap):
            verdict = self._map_lookup(table, a, st)
            if verdict is None:
                return None
            st.steps.append(self._step(table, chain, idx, rule, "vmap", a.map_name))
            return self._action(table, chain, cr, verdict, st, env, depth)
        if isinstance(a, NumgenVmap):
            n = len(a.targets)
            if n == 0 or a.mod <= 0:
                return None
            outs: list[tuple[_State, str]] = []
            share = Fraction(1, a.mod)
            for choice in a.targets:
                st_k = st.fork(st.prob * share)
                got = self._action(table, chain, cr, choice, st_k, env, depth)
                outs.extend(got if got is not None else [(st_k, "continue")])
            if n < a.mod:  # values without an entry: no verdict, fall through
                rest = st.fork(st.prob * Fraction(a.mod - n, a.mod))
                outs.append((rest, "continue"))
            return outs
        if isinstance(a, UnknownAction):
            st.unknown.append(f"{chain.name}[{idx}]: cannot evaluate action {a.text}; ignored")
            st.steps.append(self._step(table, chain, idx, rule, "unknown action", a.text))
            return None
        st.unknown.append(f"{chain.name}[{idx}]: unsupported action {a!r}")
        return None

    # -- nft sets and maps

    def _key(self, keys: tuple[str, ...], pkt: Packet) -> tuple[object, ...] | None:
        t = pkt.tuple
        out: list[object] = []
        for k in keys:
            if k.endswith("saddr"):
                out.append(t.src)
            elif k.endswith("daddr"):
                out.append(t.dst)
            elif k in ("meta l4proto", "ip protocol", "ip6 nexthdr"):
                out.append(t.proto)
            elif k.endswith("dport"):
                out.append(t.dport)
            elif k.endswith("sport"):
                out.append(t.sport)
            elif k in ("meta mark", "mark"):
                out.append(pkt.mark)
            else:
                return None
        return tuple(out)

    def _set_lookup(self, table: Table, m: SetLookup, pkt: Packet) -> bool | None:
        idx = self._sets[(table.family, table.name)].get(m.set_name)
        if idx is None:
            return None
        if "dynamic" in idx.nftset.flags:
            # Dynamic (affinity) sets start empty for a first connection.
            return m.negate
        key = self._key(m.keys, pkt)
        if key is None:
            return None
        return idx.contains(key) != m.negate

    def _map_lookup(self, table: Table, a: Vmap, st: _State) -> Verdict | None:
        idx = self._sets[(table.family, table.name)].get(a.map_name)
        if idx is None:
            st.unknown.append(f"vmap @{a.map_name}: no such map")
            return None
        key = self._key(a.keys, st.pkt)
        if key is None:
            st.unknown.append(f"vmap @{a.map_name}: key {' . '.join(a.keys)} not evaluable")
            return None
        return idx.value(key)


def _hp(addr: IPAddress, port: int) -> str:
    return f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"


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
        if key in self.exact:
            return True, self.exact[key]
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
