"""Render nftables IR as an ``nft -f`` script in knftables' transaction text form.

The output is what kube-proxy's own tests show (``knftables.Fake.Dump``)::

    add table ip kube-proxy { comment "rules for kube-proxy" ; }
    add set ip kube-proxy cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }
    add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; ... }
    add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
    add rule ip kube-proxy nat-prerouting jump services
    add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-... }

Objects come in an order ``nft -f`` accepts in one transaction: the table, then every set and
map, then every chain, then every rule, then every element (rules refer to sets, elements of
verdict maps refer to chains).

Rendering is cached per IR object: kube-proxy rulesets repeat the same matches and verdicts
(``jump mark-for-masquerade``, ``meta l4proto tcp``) hundreds of thousands of times.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from sourceip.errors import SourceIPError
from sourceip.net.addr import ip_text
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
    NftSet,
    NumgenDnatMap,
    NumgenVmap,
    Port,
    Proto,
    Reject,
    Return,
    Rule,
    Ruleset,
    SetElement,
    SetLookup,
    SetUpdate,
    Snat,
    Table,
    UnknownAction,
    UnknownMatch,
    Vmap,
)


class NftRenderError(SourceIPError):
    """The IR holds something nftables cannot express (an iptables-only match)."""


# ----------------------------------------------------------------------------- pieces


def _quote(text: str) -> str:
    """A double-quoted nft string; nft has no escape for ``"``, so such text is refused."""
    if '"' in text:
        raise NftRenderError(f"nft cannot quote a comment containing '\"': {text!r}")
    return '"' + text + '"'


def _hex(value: int) -> str:
    return "0" if value == 0 else hex(value)


def _addr_text(a: object) -> str:
    if isinstance(a, IPv4Network | IPv6Network):
        if a.prefixlen == a.max_prefixlen:
            return ip_text(a.network_address)
        return f"{ip_text(a.network_address)}/{a.prefixlen}"
    if isinstance(a, IPv4Address | IPv6Address):
        return ip_text(a)
    return str(a)


def _family_prefix(family: str, sample: object) -> str:
    """``ip`` or ``ip6`` for an address match in a table of ``family`` (``inet`` tables pick
    by the address' own version)."""
    if family == "ip6":
        return "ip6"
    if family == "inet":
        version = getattr(sample, "version", 4)
        return "ip6" if version == 6 else "ip"
    return "ip"


def _iface_text(name: str) -> str:
    return _quote(name[:-1] + "*" if name.endswith("+") else name)


def _port_text(p: int | tuple[int, int]) -> str:
    return f"{p[0]}-{p[1]}" if isinstance(p, tuple) else str(p)


def _neg(negate: bool) -> str:
    return "!= " if negate else ""


def _match_proto(m: Proto, family: str) -> str:
    return f"meta l4proto {_neg(m.negate)}{m.proto}"


_ADDR_HEAD = {
    ("ip", "src", False): "ip saddr ", ("ip", "dst", False): "ip daddr ",
    ("ip", "src", True): "ip saddr != ", ("ip", "dst", True): "ip daddr != ",
    ("ip6", "src", False): "ip6 saddr ", ("ip6", "dst", False): "ip6 daddr ",
    ("ip6", "src", True): "ip6 saddr != ", ("ip6", "dst", True): "ip6 daddr != ",
}


def _match_addr(m: Addr, family: str) -> str:
    if family != "inet" and not m.braces and len(m.nets) == 1:
        net = m.nets[0]
        if isinstance(net, IPv4Address | IPv6Address):  # the common case: one host
            return _ADDR_HEAD[(family, m.field, m.negate)] + ip_text(net)
    ipx = _family_prefix(family, m.nets[0] if m.nets else None)
    field = "saddr" if m.field == "src" else "daddr"
    if m.braces or len(m.nets) != 1:
        value = "{ " + ", ".join(_addr_text(n) for n in m.nets) + " }"
    else:
        value = _addr_text(m.nets[0])
    return f"{ipx} {field} {_neg(m.negate)}{value}"


def _match_port(m: Port, family: str) -> str:
    if len(m.ports) == 1:
        value = _port_text(m.ports[0])
    else:
        value = "{ " + ", ".join(_port_text(p) for p in m.ports) + " }"
    return f"{m.proto or 'th'} {m.field} {_neg(m.negate)}{value}"


def _match_iface(m: Iface, family: str) -> str:
    key = "iifname" if m.direction == "in" else "oifname"
    return f"{key} {_neg(m.negate)}{_iface_text(m.name)}"


def _match_addrtype(m: AddrType, family: str) -> str:
    field = "saddr" if m.field == "src" else "daddr"
    if m.limit_iface_out:
        field += " . oif"
    types = [t.strip().lower() for t in m.type.split(",") if t.strip()]
    value = types[0] if len(types) == 1 else "{ " + ", ".join(types) + " }"
    return f"fib {field} type {_neg(m.negate)}{value}"


def _match_mark(m: Mark, family: str) -> str:
    if m.mask == 0xFFFFFFFF:
        return f"mark {_neg(m.negate)}{_hex(m.value)}"
    op = "!=" if m.negate else "=="
    return f"mark and {_hex(m.mask)} {op} {_hex(m.value)}"


_CT_STATUS = frozenset({"DNAT", "SNAT"})


def _match_ctstate(m: CtState, family: str) -> str:
    """``ct state``; iptables' virtual states DNAT/SNAT are nft's ``ct status``."""
    status = [x.lower() for x in m.states if x.upper() in _CT_STATUS]
    states = [x.lower() for x in m.states if x.upper() not in _CT_STATUS]
    if status and states:
        raise NftRenderError(f"{m!r}: nft needs ct state and ct status in separate matches")
    if status:
        return f"ct status {_neg(m.negate)}" + ",".join(status)
    return f"ct state {_neg(m.negate)}" + ",".join(states)


def _match_setlookup(m: SetLookup, family: str) -> str:
    return " . ".join(m.keys) + f" {_neg(m.negate)}@{m.set_name}"


def _match_unknown(m: UnknownMatch, family: str) -> str:
    return m.text


_MATCH_RENDERERS: dict[type, Callable[[Any, str], str]] = {
    Proto: _match_proto,
    Addr: _match_addr,
    Port: _match_port,
    Iface: _match_iface,
    AddrType: _match_addrtype,
    Mark: _match_mark,
    CtState: _match_ctstate,
    SetLookup: _match_setlookup,
    UnknownMatch: _match_unknown,
}


def _verdict_text(v: object) -> str:
    fn = _VERDICT_RENDERERS.get(type(v))
    if fn is None:
        raise NftRenderError(f"{v!r} is not an nft verdict")
    return fn(v)


_VERDICT_RENDERERS: dict[type, Callable[[Any], str]] = {
    Jump: lambda v: f"jump {v.chain}",
    Goto: lambda v: f"goto {v.chain}",
    Return: lambda v: "return",
    Accept: lambda v: "accept",
    Drop: lambda v: "drop",
    Reject: lambda v: f"reject with {v.with_}" if v.with_ else "reject",
}


def _hostport(addr: IPv4Address | IPv6Address, port: int | None) -> str:
    if port is None:
        return ip_text(addr)
    if addr.version == 6:
        return f"[{ip_text(addr)}]:{port}"
    return f"{ip_text(addr)}:{port}"


def _act_snat(a: Snat) -> str:
    text = f"snat to {_hostport(a.addr, a.port)}"
    return text + " fully-random" if a.random_fully else text


def _act_markset(a: MarkSet) -> str:
    if a.op == "set":
        if a.mask == 0xFFFFFFFF:
            return f"mark set {_hex(a.value)}"
        if a.value & ~a.mask & 0xFFFFFFFF:
            raise NftRenderError(f"{a!r}: value has bits outside the mask")
        keep = ~a.mask & 0xFFFFFFFF
        return f"mark set mark and {_hex(keep)} or {_hex(a.value)}"
    if a.mask != 0xFFFFFFFF:
        raise NftRenderError(f"{a!r}: a mask only applies to op 'set'")
    return f"mark set mark {a.op} {_hex(a.value)}"


def _act_numgen(a: NumgenVmap) -> str:
    body = " , ".join(f"{i} : {_verdict_text(t)}" for i, t in enumerate(a.targets))
    return f"numgen random mod {a.mod} vmap {{ {body} }}"


def _act_numgen_dnat(a: NumgenDnatMap) -> str:
    fam = "ip6" if a.targets and a.targets[0][0].version == 6 else "ip"
    body = " , ".join(f"{i} : {ip_text(ip)} . {port}" for i, (ip, port) in enumerate(a.targets))
    return f"dnat {fam} addr . port to numgen random mod {a.mod} map {{ {body} }}"


def _masquerade(a: Masquerade) -> str:
    if a.ports is not None:  # iptables' --to-ports: not written as nft (its parsers lack it)
        raise NftRenderError(f"{a!r}: MASQUERADE --to-ports is written as iptables only")
    return "masquerade fully-random" if a.random_fully else "masquerade"


_ACTION_RENDERERS: dict[type, Callable[[Any], str]] = {
    **_VERDICT_RENDERERS,
    Dnat: lambda a: "dnat to " + _hostport(a.addr, a.port),
    Snat: _act_snat,
    Masquerade: _masquerade,
    MarkSet: _act_markset,
    SetUpdate: lambda a: f"update @{a.set_name} {{ " + " . ".join(a.keys) + " }",
    Vmap: lambda a: " . ".join(a.keys) + f" vmap @{a.map_name}",
    NumgenVmap: _act_numgen,
    NumgenDnatMap: _act_numgen_dnat,
    Counter: lambda a: "counter",
    UnknownAction: lambda a: a.text,
}


def _action_text(a: Action, family: str) -> str:
    fn = _ACTION_RENDERERS.get(type(a))
    if fn is None:
        raise NftRenderError(f"{type(a).__name__} cannot be written as nft")
    return fn(a)


class _Cache:
    """Memo of rendered matches and actions for one table, keyed by object identity: builders
    share one object for a repeated match or verdict, and identity lookups avoid hashing
    dataclasses (the ruleset being rendered keeps every object alive, so ids are stable)."""

    __slots__ = ("family", "texts", "ips")

    def __init__(self, family: str) -> None:
        self.family = family
        self.texts: dict[int, str] = {}
        self.ips: dict[int, str] = {}

    def ip(self, a: IPv4Address | IPv6Address) -> str:
        """``str(a)``, memoized: an endpoint's address object appears in its hairpin match and
        its DNAT target."""
        text = self.ips.get(id(a))
        if text is None:
            text = self.ips[id(a)] = ip_text(a)
        return text

    def match(self, m: Match) -> str:
        text = self.texts.get(id(m))
        if text is None and type(m) is Addr and self.family != "inet" and not m.braces \
                and len(m.nets) == 1 and isinstance(m.nets[0], IPv4Address | IPv6Address):
            text = _ADDR_HEAD[(self.family, m.field, m.negate)] + self.ip(m.nets[0])
            self.texts[id(m)] = text
        if text is None:
            fn = _MATCH_RENDERERS.get(type(m))
            if fn is None:
                raise NftRenderError(
                    f"{type(m).__name__} is an iptables-only match; nft cannot express it"
                )
            text = fn(m, self.family)
            self.texts[id(m)] = text
        return text

    def action(self, a: Action) -> str:
        text = self.texts.get(id(a))
        if text is None and type(a) is Dnat and a.port is not None and self.family != "inet":
            addr = self.ip(a.addr)
            text = (f"dnat to [{addr}]:{a.port}" if a.addr.version == 6
                    else f"dnat to {addr}:{a.port}")
            self.texts[id(a)] = text
        if text is None:
            text = _action_text(a, self.family)
            if self.family == "inet" and isinstance(a, Dnat | Snat):
                # an inet table needs the address family of the NAT target
                fam = "ip" if a.addr.version == 4 else "ip6"
                text = text.replace("nat to ", f"nat {fam} to ", 1)
            self.texts[id(a)] = text
        return text

    def rule(self, rule: Rule) -> str:
        get = self.texts.get
        ms = rule.matches
        acts = rule.actions
        if not ms and not acts:
            raise NftRenderError("an empty rule cannot be written in nft")
        if len(ms) == 1 and len(acts) == 1 and rule.comment is None:  # the common shape
            m = ms[0]
            a = acts[0]
            return (get(id(m)) or self.match(m)) + " " + (get(id(a)) or self.action(a))
        parts = [get(id(m)) or self.match(m) for m in ms]
        parts.extend([get(id(a)) or self.action(a) for a in acts])
        if rule.comment is not None:
            parts.append("comment " + _quote(rule.comment))
        return " ".join(parts)


# ----------------------------------------------------------------------------- public


def rule_text(rule: Rule, family: str = "ip") -> str:
    """The body of one rule as nft writes it (``ip saddr 10.0.0.1 jump mark-for-masquerade``),
    for a table of ``family``."""
    return _Cache(family).rule(rule)


def render_nft_rule(table: Table, chain_name: str, rule: Rule) -> str:
    """One rule as the user sees it in a ruleset dump:
    ``add rule ip kube-proxy CHAIN BODY [comment "..."]``."""
    return f"add rule {table.family} {table.name} {chain_name} {rule_text(rule, table.family)}"


def _chain_line(prefix: str, chain: Chain) -> str:
    props: list[str] = []
    if chain.hook is not None:
        props.append(f"type {chain.type or 'filter'} hook {chain.hook} priority "
                     f"{chain.priority if chain.priority is not None else 0} ;")
        if chain.policy:
            props.append(f"policy {chain.policy.lower()} ;")
    if chain.comment is not None:
        props.append(f"comment {_quote(chain.comment)} ;")
    if props:
        return f"add chain {prefix} {chain.name} {{ " + " ".join(props) + " }"
    return f"add chain {prefix} {chain.name}"


def _set_line(prefix: str, s: NftSet) -> str:
    kind = "map" if s.is_map else "set"
    type_text = " . ".join(s.key_types)
    if s.is_map:
        type_text += f" : {s.value_type}"
    props = [f"type {type_text} ;"]
    if s.flags:
        props.append("flags " + ",".join(s.flags) + " ;")
    if s.timeout is not None:
        props.append(f"timeout {s.timeout}s ;")
    if s.comment is not None:
        props.append(f"comment {_quote(s.comment)} ;")
    return f"add {kind} {prefix} {s.name} {{ " + " ".join(props) + " }"


def _key_item(k: object) -> str:
    if isinstance(k, IPv4Network | IPv6Network | IPv4Address | IPv6Address):
        return _addr_text(k)  # addresses by inet_ntop: str(IPv6Address) runs in Python
    return str(k)


def _element_line(prefix: str, s: NftSet, e: SetElement, cache: _Cache) -> str:
    text = " . ".join([_key_item(k) for k in e.key])
    if e.comment is not None:
        text += " comment " + _quote(e.comment)
    if e.value is not None:
        text += " : " + cache.action(e.value)
    return f"add element {prefix} {s.name} {{ {text} }}"


def render_nft_table(table: Table, *, fresh: bool = False) -> list[str]:
    """The lines that create ``table`` with everything in it (see the module docstring for the
    order). With ``fresh`` the table is first deleted (``add table`` + ``delete table``), so
    that loading the script replaces an older copy instead of adding to it."""
    prefix = f"{table.family} {table.name}"
    cache = _Cache(table.family)
    out: list[str] = []
    if fresh:
        out.append(f"add table {prefix}")
        out.append(f"delete table {prefix}")
    if table.comment is not None:
        out.append(f"add table {prefix} {{ comment {_quote(table.comment)} ; }}")
    else:
        out.append(f"add table {prefix}")
    sets = [s for s in table.sets if not s.is_map]
    maps = [s for s in table.sets if s.is_map]
    out.extend(_set_line(prefix, s) for s in sets)
    out.extend(_set_line(prefix, s) for s in maps)
    out.extend(_chain_line(prefix, c) for c in table.chains)
    rule_prefix = f"add rule {prefix} "
    crule = cache.rule
    append = out.append
    for chain in table.chains:
        head = rule_prefix + chain.name + " "
        for r in chain.rules:
            append(head + crule(r))
    for s in table.sets:
        for e in s.elements:
            out.append(_element_line(prefix, s, e, cache))
    return out


def render_nft(ruleset: Ruleset, *, fresh: bool = False) -> str:
    """The whole ruleset as one ``nft -f`` script (one transaction), newline-terminated."""
    lines: list[str] = []
    for table in ruleset.tables:
        lines.extend(render_nft_table(table, fresh=fresh))
    return "\n".join(lines) + "\n" if lines else ""


__all__ = ["NftRenderError", "render_nft", "render_nft_rule", "render_nft_table", "rule_text"]
