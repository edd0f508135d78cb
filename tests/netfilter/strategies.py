"""Hypothesis strategies generating valid rule IR within each backend's vocabulary.

``iptables_rulesets(family=4, loadable=False)``: what ``render_iptables`` writes and
``parse_iptables_save`` reads back unchanged. The conventions kept (see both modules):

* at most one match of each kind per rule, one ``Proto`` and ``Port`` only after a positive
  ``tcp``/``udp``/``sctp`` ``Proto`` (iptables needs the protocol module), at most one action;
* forms that iptables-save itself normalises are not generated: ``Reject`` with the default
  ``icmp-port-unreachable``, ``Recent`` with an all-ones mask, ``MarkSet`` whose
  ``--set-xmark`` is read back as another op (``set`` under a mask ``M`` needs ``0 < V < M``,
  ``V`` inside ``M``);
* ``Counter`` is not an iptables action (the renderer drops it).

With ``loadable`` the ruleset also loads into a real kernel: every built-in chain of each table
is declared (nat policies ACCEPT), built-in chains hold only hook-independent matches and
verdicts (no jumps), NAT targets only in nat, REJECT only in filter, NAT ports only after a
protocol, no ``Nfacct`` (needs an accounting object) and no ``Unknown*``.

``nft_rulesets(family="ip", loadable=False, real_text=False)``: what ``render_nft_json`` writes
and ``parse_nft_json`` reads back unchanged. ``real_text`` keeps to what ``render_nft`` (the
text renderer) can express (no ``Unknown*``, no masked ``MarkSet("set")``, no ``DNAT``/``SNAT``
conntrack states); ``loadable`` also keeps to what the kernel accepts (base chains hold no jumps,
no NAT, no reject; ``update`` only on dynamic sets; non-overlapping anonymous sets; NAT ports
only after a protocol).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from hypothesis import strategies as st

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
    SetElement,
    SetLookup,
    SetUpdate,
    Snat,
    Statistic,
    Table,
    UnknownAction,
    UnknownMatch,
    Vmap,
)

ALL_ONES = 0xFFFFFFFF

# ----------------------------------------------------------------------------- values


def addresses(version: int) -> st.SearchStrategy[Any]:
    if version == 4:
        return st.integers(1, 2**32 - 2).map(ipaddress.IPv4Address)
    return st.integers(1, 2**128 - 2).map(ipaddress.IPv6Address)


def networks(version: int) -> st.SearchStrategy[Any]:
    bits = 32 if version == 4 else 128
    cls = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    return st.tuples(st.integers(0, 2**bits - 1), st.integers(1, bits - 1)).map(
        lambda t: cls((t[0], t[1]), strict=False)
    )


def addr_likes(version: int) -> st.SearchStrategy[Any]:
    return st.one_of(addresses(version), networks(version))


def _disjoint(nets: list[Any]) -> bool:
    as_nets = [ipaddress.ip_network(n) for n in nets]
    return not any(a.overlaps(b) for i, a in enumerate(as_nets) for b in as_nets[i + 1:])


ports = st.integers(1, 65535)
port_items = st.one_of(
    ports,
    st.tuples(st.integers(1, 65534), st.integers(1, 5000)).map(
        lambda t: (t[0], min(65535, t[0] + t[1]))),
)
marks = st.integers(0, ALL_ONES)
comments = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=60
)


# nft's scanner has no escapes inside quoted strings
nft_comments = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='"\\'),
    min_size=1, max_size=60,
)


def _port_key(p: int | tuple[int, int]) -> tuple[int, int]:
    return (p, p) if isinstance(p, int) else p


def _ports_disjoint(ps: tuple[int | tuple[int, int], ...]) -> bool:
    spans = sorted(_port_key(p) for p in ps)
    return all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))


def iface_names() -> st.SearchStrategy[str]:
    return st.tuples(
        st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True), st.booleans()
    ).map(lambda t: t[0] + ("+" if t[1] else ""))


# ----------------------------------------------------------------------------- iptables

IPT_BUILTINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}
IPT_UNKNOWN_MATCHES = (
    "-m physdev --physdev-is-in",
    "-m set --match-set KUBE-CLUSTER-IP dst,dst",
    "-m limit --limit 5/min --limit-burst 10",
    "-m addrtype --src-type LOCAL --limit-iface-in",
    "-m statistic --mode nth --every 2 --packet 0",
    "-m comment2 --x \"a b\"",
    "-f",
)
IPT_UNKNOWN_ACTIONS = (
    "-j NOTRACK",
    "-j LOG --log-prefix \"kube proxy\"",
    "-j CONNMARK --set-mark 0x1",
    "-j DNAT --to-destination 10.0.0.1-10.0.0.9",
    "-j MASQUERADE --to-ports 1024-2048 --random",  # --random: not modelled
)


@st.composite
def _ipt_markset(draw: st.DrawFn) -> MarkSet:
    op = draw(st.sampled_from(["or", "xor", "and", "set", "set-masked"]))
    if op == "set-masked":
        mask = draw(st.integers(1, ALL_ONES - 1))
        value = draw(marks.map(lambda v: v & mask))
        if value in (0, mask):
            return MarkSet("set", value)
        return MarkSet("set", value, mask)
    value = draw(marks)
    if op == "or" and value == 0:
        op = "xor"  # --set-xmark 0x0/0x0 reads back as xor 0
    if op == "and" and value == ALL_ONES:
        op = "xor"  # and 0xffffffff is --set-xmark 0x0/0x0, also read back as xor 0
        value = 0
    return MarkSet(op, value)  # type: ignore[arg-type]


@st.composite
def ipt_rules(
    draw: st.DrawFn, *, table: str, chain: str, builtin: bool, user_chains: list[str],
    version: int, loadable: bool,
) -> Rule:
    restricted = loadable and builtin
    others: list[Match] = []
    proto: Proto | None = None
    port: Port | None = None
    if draw(st.booleans()):
        icmp = "icmp" if version == 4 else "ipv6-icmp"
        pname = draw(st.sampled_from(["tcp", "udp", "sctp", icmp]))
        neg = draw(st.booleans()) if pname not in ("tcp", "udp", "sctp") else False
        proto = Proto(pname, neg)
        if pname in ("tcp", "udp", "sctp") and draw(st.booleans()):
            field = draw(st.sampled_from(["sport", "dport"]))
            ps = tuple(draw(st.lists(port_items, min_size=1, max_size=4)))
            port = Port(field, ps, draw(st.booleans()))
    for field in ("src", "dst"):
        if draw(st.integers(0, 3)) == 0:
            others.append(Addr(field, (draw(addr_likes(version)),), draw(st.booleans())))
    if not restricted:
        if draw(st.integers(0, 3)) == 0:
            others.append(Iface("in", draw(iface_names()), draw(st.booleans())))
        if draw(st.integers(0, 3)) == 0:
            others.append(Iface("out", draw(iface_names()), draw(st.booleans())))
        if draw(st.integers(0, 3)) == 0:
            others.append(AddrType(
                draw(st.sampled_from(["src", "dst"])),
                # IPv6 has no broadcast addresses: the kernel refuses the type
                draw(st.sampled_from(["LOCAL", "UNICAST"] + (["BROADCAST"] if version == 4
                                                              else []))),
                draw(st.booleans()), draw(st.booleans())))
        if draw(st.integers(0, 4)) == 0:
            masks = ["255.255.255.0", "255.255.0.0"] if version == 4 else ["ffff:ffff::"]
            action = draw(st.sampled_from(["set", "rcheck", "update"]))
            seconds = None  # the kernel refuses --seconds with --set
            if action != "set":
                seconds = draw(st.one_of(st.none(), st.integers(1, 100000)))
            others.append(Recent(
                draw(st.from_regex(r"KUBE-SEP-[A-Z0-9]{4,16}", fullmatch=True)),
                action,
                seconds,
                seconds is not None and draw(st.booleans()),  # --reap needs --seconds
                draw(st.sampled_from(["", *masks])),
                draw(st.sampled_from(["source", "dest"])),
            ))
        if not loadable and draw(st.integers(0, 5)) == 0:
            others.append(Nfacct(draw(st.from_regex(r"[a-z_]{1,20}", fullmatch=True))))
        if not loadable and draw(st.integers(0, 5)) == 0:
            others.append(UnknownMatch(draw(st.sampled_from(IPT_UNKNOWN_MATCHES))))
    if draw(st.integers(0, 3)) == 0:
        mask = draw(st.one_of(st.just(ALL_ONES), marks))
        others.append(Mark(draw(marks) & mask, mask, draw(st.booleans())))
    if draw(st.integers(0, 3)) == 0:
        states = draw(st.lists(st.sampled_from(
            ["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", "DNAT", "SNAT"]),
            min_size=1, max_size=3, unique=True))
        others.append(CtState(tuple(states), draw(st.booleans())))
    if draw(st.integers(0, 3)) == 0:
        others.append(Statistic("0." + draw(st.from_regex(r"[0-9]{10}", fullmatch=True))))
    others = list(draw(st.permutations(others)))
    if proto is not None:
        at = draw(st.integers(0, len(others)))
        others.insert(at, proto)
        if port is not None:
            others.insert(draw(st.integers(at + 1, len(others))), port)
    matches = tuple(others)
    # action
    l4 = proto is not None and not proto.negate and proto.proto in ("tcp", "udp", "sctp")
    choices: list[st.SearchStrategy[Action | None]] = [
        st.none(), st.just(Accept()), st.just(Return()), _ipt_markset(),
    ]
    if not (loadable and table == "nat"):  # "nat is not intended for filtering"
        choices.append(st.just(Drop()))
    if not restricted:
        if user_chains:
            choices.append(st.sampled_from(user_chains).map(Jump))
            choices.append(st.sampled_from(user_chains).map(Goto))
        if table == "filter":
            rej = ["", "icmp-host-prohibited", "icmp-net-unreachable"] if version == 4 else [
                "", "icmp6-adm-prohibited", "icmp6-addr-unreachable"]
            choices.append(st.sampled_from(rej).map(Reject))
        if table == "nat":
            port_st = st.one_of(st.none(), ports) if l4 or not loadable else st.none()
            choices.append(st.builds(Dnat, addresses(version), port_st))
            choices.append(st.builds(Snat, addresses(version), port_st, st.booleans()))
            choices.append(st.builds(Masquerade, st.booleans()))
        if not loadable:
            choices.append(st.sampled_from(IPT_UNKNOWN_ACTIONS).map(UnknownAction))
    action = draw(st.one_of(*choices))
    comment = draw(st.one_of(st.none(), comments))
    return Rule(matches, (action,) if action is not None else (), comment)


@st.composite
def iptables_rulesets(draw: st.DrawFn, *, family: int = 4, loadable: bool = False) -> Ruleset:
    fam = "ip" if family == 4 else "ip6"
    names = draw(st.lists(st.sampled_from(list(IPT_BUILTINS)), min_size=1, max_size=3,
                          unique=True))
    tables = []
    for tname in names:
        builtins = list(IPT_BUILTINS[tname])
        if not loadable:
            builtins = [b for b in builtins if draw(st.booleans())]
        users = draw(st.lists(st.from_regex(r"KUBE-[A-Z0-9]{1,12}", fullmatch=True),
                              max_size=4, unique=True))
        chains = []
        for b in builtins:
            policy = "ACCEPT" if tname == "nat" else draw(st.sampled_from(["ACCEPT", "DROP"]))
            if not loadable and draw(st.booleans()):
                chain = Chain(b, hook=b.lower(), policy=None)  # declared with "-"
            else:
                chain = Chain(b, hook=b.lower(), policy=policy)
            rules = draw(st.lists(ipt_rules(table=tname, chain=b, builtin=True,
                                            user_chains=users, version=family,
                                            loadable=loadable), max_size=3))
            chains.append(Chain(chain.name, tuple(rules), hook=chain.hook,
                                policy=chain.policy))
        for i, u in enumerate(users):
            targets = users[i + 1:] if loadable else users
            rules = draw(st.lists(ipt_rules(table=tname, chain=u, builtin=False,
                                            user_chains=targets, version=family,
                                            loadable=loadable), max_size=4))
            chains.append(Chain(u, tuple(rules)))
        order = draw(st.permutations(chains)) if not loadable else chains
        tables.append(Table(tname, fam, tuple(order)))
    return Ruleset("iptables", tuple(tables))


# ----------------------------------------------------------------------------- nftables

_KEY_OF_TYPE = {
    "ipv4_addr": ("ip saddr", "ip daddr"),
    "ipv6_addr": ("ip6 saddr", "ip6 daddr"),
    "inet_proto": ("meta l4proto",),
    "inet_service": ("th dport", "th sport"),
    "mark": ("meta mark",),
    "ifname": ("iifname", "oifname"),
}
_SET_TYPES = {
    "ip": [("ipv4_addr",), ("ipv4_addr", "inet_proto", "inet_service"),
           ("inet_proto", "inet_service"), ("mark",), ("ifname",)],
    "ip6": [("ipv6_addr",), ("ipv6_addr", "inet_proto", "inet_service"),
            ("inet_proto", "inet_service")],
    "inet": [("ipv4_addr",), ("ipv6_addr",), ("ipv4_addr", "inet_proto", "inet_service"),
             ("inet_proto", "inet_service")],
}
NFT_UNKNOWN_MATCHES: tuple[dict[str, Any], ...] = (
    {"match": {"op": "==", "left": {"meta": {"key": "skuid"}}, "right": 0}},
    {"match": {"op": "<", "left": {"payload": {"protocol": "th", "field": "dport"}},
               "right": 1024}},
    {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "ttl"}},
               "right": 64}},
    {"match": {"op": "==", "left": {"ct": {"key": "status"}}, "right": "assured"}},
)
NFT_UNKNOWN_ACTIONS: tuple[dict[str, Any], ...] = (
    {"log": {"prefix": "kube proxy"}},
    {"limit": {"rate": 10, "burst": 5, "per": "second"}},
    {"notrack": None},
    {"counter": "named-counter"},
)


def _json(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _versions(family: str) -> list[int]:
    return {"ip": [4], "ip6": [6], "inet": [4, 6]}[family]


def _proto_names() -> st.SearchStrategy[str]:
    return st.sampled_from(["tcp", "udp", "sctp"])


@st.composite
def _key_value(draw: st.DrawFn, key_type: str, interval: bool) -> Any:
    if key_type in ("ipv4_addr", "ipv6_addr"):
        v = 4 if key_type == "ipv4_addr" else 6
        return draw(addr_likes(v) if interval else addresses(v))
    if key_type == "inet_proto":
        return draw(_proto_names())
    if key_type == "inet_service":
        return draw(ports)
    if key_type == "mark":
        return draw(marks)
    return draw(st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True))


def nft_names(prefix: str) -> st.SearchStrategy[str]:
    return st.from_regex(prefix + r"[a-z0-9][a-z0-9/._-]{0,14}", fullmatch=True)


@st.composite
def _nft_set(draw: st.DrawFn, family: str, name: str, is_map: bool, loadable: bool,
             regular: list[str], real_text: bool) -> NftSet:
    cm = nft_comments if real_text else comments
    types = draw(st.sampled_from(_SET_TYPES[family]))
    if loadable and "ifname" in types:
        types = ("ipv4_addr",) if family != "ip6" else ("ipv6_addr",)
    flags: list[str] = []
    # interval maps whose elements jump to chains fail to load with ENOENT on nft 1.0.6
    interval = (len(types) == 1 and types[0] in ("ipv4_addr", "ipv6_addr")
                and not (is_map and loadable) and draw(st.booleans()))
    if interval:
        flags.append("interval")
    timeout = None
    if not is_map and not interval and draw(st.booleans()):
        flags.append("dynamic")
        if draw(st.booleans()):
            flags.append("timeout")
            timeout = draw(st.integers(1, 86400))
    elems = []
    seen: set[Any] = set()
    verdicts: list[st.SearchStrategy[Any]] = [st.just(Drop()), st.just(Accept()),
                                             st.just(Return())]
    if regular:
        verdicts += [st.sampled_from(regular).map(Goto), st.sampled_from(regular).map(Jump)]
    for _ in range(draw(st.integers(0, 4))):
        key = tuple(draw(_key_value(t, interval)) for t in types)
        if key in seen:
            continue
        if interval and not _disjoint([*(k[0] for k in seen), key[0]]):
            continue
        seen.add(key)
        value = draw(st.one_of(*verdicts)) if is_map else None
        comment = draw(st.one_of(st.none(), cm))
        elems.append(SetElement(key, value, comment))
    return NftSet(name, types, "verdict" if is_map else None, tuple(flags), timeout,
                  draw(st.one_of(st.none(), cm)), tuple(elems))


@st.composite
def nft_rules(
    draw: st.DrawFn, *, family: str, base: Chain | None, regular: list[str],
    sets: list[NftSet], loadable: bool, real_text: bool,
) -> Rule:
    restricted = loadable and base is not None
    version = draw(st.sampled_from(_versions(family)))
    matches: list[Match] = []
    proto: Proto | None = None
    if draw(st.booleans()):
        # (real nft lists `meta l4proto icmp ... th dport` as `icmp checksum`)
        pnames = ["tcp", "udp", "sctp"] + ([] if real_text else ["icmp", "icmpv6"])
        pname = draw(st.sampled_from(pnames))
        proto = Proto(pname, draw(st.booleans()))
        matches.append(proto)
    if draw(st.integers(0, 2)) == 0:
        field = draw(st.sampled_from(["sport", "dport"]))
        ps = tuple(draw(st.lists(port_items, min_size=1, max_size=3, unique=True)))
        if loadable and not _ports_disjoint(ps):
            ps = ps[:1]
        if proto is not None and proto.proto in ("icmp", "icmpv6") and loadable:
            pass
        else:
            matches.append(Port(field, ps, draw(st.booleans())))
    for field in ("src", "dst"):
        if draw(st.integers(0, 2)) == 0:
            braces = draw(st.booleans())
            nets = draw(st.lists(addr_likes(version), min_size=1, max_size=3 if braces else 1,
                                 unique=True))
            if loadable and not _disjoint(nets):
                nets = nets[:1]
            matches.append(Addr(field, tuple(nets), draw(st.booleans()), braces))
    if draw(st.integers(0, 3)) == 0:
        matches.append(Iface(draw(st.sampled_from(["in", "out"])), draw(iface_names()),
                             draw(st.booleans())))
    if draw(st.integers(0, 3)) == 0:
        fld = draw(st.sampled_from(["src", "dst"]))
        limit = fld == "dst" and not loadable and draw(st.booleans())
        # render_nft writes several types as `type a,b`, which nft rejects (not a bitmask)
        types = draw(st.lists(st.sampled_from(["LOCAL", "UNICAST", "BROADCAST"]), min_size=1,
                              max_size=1 if real_text else 2, unique=True))
        matches.append(AddrType(fld, ",".join(types), draw(st.booleans()), limit))
    if draw(st.integers(0, 3)) == 0:
        # mask 0 is degenerate (always true); nft lists it as a 0-length prefix
        mask = draw(st.one_of(st.just(ALL_ONES), st.integers(1, ALL_ONES)))
        matches.append(Mark(draw(marks) & mask, mask, draw(st.booleans())))
    if draw(st.integers(0, 3)) == 0:
        if not real_text and draw(st.booleans()):
            states = draw(st.lists(st.sampled_from(["DNAT", "SNAT"]), min_size=1, unique=True))
        else:
            states = draw(st.lists(st.sampled_from(
                ["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"]),
                min_size=1, max_size=3, unique=True))
        matches.append(CtState(tuple(states), draw(st.booleans())))
    other = "ipv6_addr" if version == 4 else "ipv4_addr"
    sets = [s for s in sets if other not in s.key_types]  # no ip and ip6 in one inet rule
    plain_sets = [s for s in sets if not s.is_map]
    if plain_sets and draw(st.integers(0, 2)) == 0:
        s = draw(st.sampled_from(plain_sets))
        keys = tuple(draw(st.sampled_from(_KEY_OF_TYPE[t])) for t in s.key_types)
        matches.append(SetLookup(keys, s.name, draw(st.booleans())))
    if not real_text and draw(st.integers(0, 4)) == 0:
        matches.append(UnknownMatch(_json(draw(st.sampled_from(NFT_UNKNOWN_MATCHES)))))
    matches = list(draw(st.permutations(matches)))
    # statements
    actions: list[Action] = []
    if draw(st.integers(0, 3)) == 0:
        actions.append(Counter())
    if draw(st.integers(0, 3)) == 0:
        op = draw(st.sampled_from(["or", "xor", "and", "set"]))
        mask = ALL_ONES
        if op == "set" and not real_text and draw(st.booleans()):
            mask = draw(st.integers(0, ALL_ONES - 1))
        actions.append(MarkSet(op, draw(marks), mask))  # type: ignore[arg-type]
    dyn = [s for s in plain_sets if "dynamic" in s.flags or not loadable]
    if not restricted and dyn and draw(st.integers(0, 3)) == 0:
        s = draw(st.sampled_from(dyn))
        keys = tuple(draw(st.sampled_from(_KEY_OF_TYPE[t])) for t in s.key_types)
        actions.append(SetUpdate(s.name, keys))
    if not real_text and draw(st.integers(0, 5)) == 0:
        actions.append(UnknownAction(_json(draw(st.sampled_from(NFT_UNKNOWN_ACTIONS)))))
    l4 = proto is not None and not proto.negate and proto.proto in ("tcp", "udp", "sctp")
    finals: list[st.SearchStrategy[Action | None]] = [
        st.none(), st.just(Accept()), st.just(Drop()), st.just(Return())]
    if not restricted:
        if regular:
            finals += [st.sampled_from(regular).map(Jump), st.sampled_from(regular).map(Goto)]
            finals.append(st.lists(st.sampled_from(regular).map(Goto), min_size=1, max_size=4)
                          .map(lambda ts: NumgenVmap(len(ts), tuple(ts))))
        rej = {4: ["", "icmp host-unreachable", "icmp admin-prohibited", "tcp reset"],
               6: ["", "icmpv6 admin-prohibited", "tcp reset"]}[version]
        if family == "inet":
            rej = ["", "icmpx admin-prohibited", "icmpx host-unreachable"]
        if loadable:
            rej = [r for r in rej if r != "tcp reset"]
        finals.append(st.sampled_from(rej).map(Reject))
        port_st = st.one_of(st.none(), ports) if l4 or not loadable else st.none()
        if not (real_text and family == "inet"):  # render_nft: no `dnat ip to` for inet
            finals.append(st.builds(Dnat, addresses(version), port_st))
            finals.append(st.builds(Snat, addresses(version), port_st, st.booleans()))
        finals.append(st.builds(Masquerade, st.booleans()))
        maps = [s for s in sets if s.is_map]
        if maps:
            m = draw(st.sampled_from(maps))
            keys = tuple(draw(st.sampled_from(_KEY_OF_TYPE[t])) for t in m.key_types)
            finals.append(st.just(Vmap(keys, m.name)))
    final = draw(st.one_of(*finals))
    if final is not None:
        actions.append(final)
    if loadable and not matches and not actions:
        actions.append(Counter())  # nft has no empty rule
    comment = draw(st.one_of(st.none(), nft_comments if real_text else comments))
    return Rule(tuple(matches), tuple(actions), comment)


@st.composite
def nft_tables(draw: st.DrawFn, *, family: str, name: str, loadable: bool,
               real_text: bool, with_sets: bool = True) -> Table:
    cm = nft_comments if real_text else comments
    regular = draw(st.lists(nft_names("c-"), max_size=4, unique=True))
    nbase = draw(st.integers(0, 2))
    bases = []
    for i in range(nbase):
        ctype = draw(st.sampled_from(["filter", "nat"]))
        hooks = ["prerouting", "input", "forward", "output", "postrouting"]
        if ctype == "nat":
            hooks.remove("forward")
        bases.append(Chain(
            f"base-{i}",
            hook=draw(st.sampled_from(hooks)),
            type=ctype,
            priority=draw(st.integers(-150, 150)),
            policy=draw(st.sampled_from([None, "accept", "drop"])) if ctype == "filter" else
            draw(st.sampled_from([None, "accept"])),
            comment=draw(st.one_of(st.none(), cm)),
        ))
    set_names = draw(st.lists(nft_names("s-"), max_size=3 if with_sets else 0, unique=True))
    sets = [draw(_nft_set(family, n, draw(st.booleans()), loadable, regular, real_text))
            for n in set_names]
    chains = []
    for b in bases:
        rules = draw(st.lists(nft_rules(family=family, base=b, regular=regular, sets=sets,
                                        loadable=loadable, real_text=real_text), max_size=3))
        chains.append(Chain(b.name, tuple(rules), b.hook, b.type, b.priority, b.policy,
                            b.comment))
    for c in regular:
        rules = draw(st.lists(nft_rules(family=family, base=None, regular=regular, sets=sets,
                                        loadable=loadable, real_text=real_text), max_size=3))
        chains.append(Chain(c, tuple(rules), comment=draw(st.one_of(st.none(), cm))))
    return Table(name, family, tuple(chains), tuple(sets), draw(st.one_of(st.none(), cm)))


@st.composite
def nft_rulesets(draw: st.DrawFn, *, family: str | None = None, loadable: bool = False,
                 real_text: bool = False, with_sets: bool = True) -> Ruleset:
    n = draw(st.integers(1, 2))
    tables = []
    names = draw(st.lists(st.from_regex(r"tbl-[a-z0-9-]{0,10}", fullmatch=True), min_size=n,
                          max_size=n, unique=True))
    for tname in names:
        fam = family or draw(st.sampled_from(["ip", "ip6", "inet"]))
        tables.append(draw(nft_tables(family=fam, name=tname, loadable=loadable,
                                      real_text=real_text, with_sets=with_sets)))
    return Ruleset("nftables", tuple(tables))
