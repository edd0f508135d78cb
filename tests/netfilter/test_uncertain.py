"""Three-valued evaluation (issue 10, item 3): a rule the evaluator cannot decide forks the
walk — one branch where it matches, one where it does not, both with the parent's
probability, each naming the rule — and ``-m set`` is decided exactly when the set's
contents are given (``netfilter/ipset.py``)."""

# ruff: noqa: E501  (the dumps below keep their real, long lines)

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sourceip.net.addr import parse_ip, parse_network
from sourceip.net.packet import FiveTuple, Packet
from sourceip.netfilter.evaluate import Branch, Evaluator
from sourceip.netfilter.ipset import IPSet, compile_set_match, parse_set_match, set_match
from sourceip.netfilter.ir import (
    Accept,
    Chain,
    Jump,
    Return,
    Rule,
    Ruleset,
    SetLookup,
    Table,
    UnknownMatch,
)
from sourceip.netfilter.parse_iptables import parse_iptables_save

WEAVE_SET = "weave-k?Z;25^M}|1s7P3|H9i;*;MhG"

# weave-npc's FORWARD filtering (shape of a real node's iptables-save): pod traffic leaving
# through the weave bridge is accepted when the destination pod is in a namespace's ipset.
WEAVE = f"""*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:WEAVE-NPC - [0:0]
:WEAVE-NPC-DEFAULT - [0:0]
-A FORWARD -o weave -m comment --comment "NOTE: this must go before '-j KUBE-FORWARD'" -j WEAVE-NPC
-A WEAVE-NPC -m state --state RELATED,ESTABLISHED -j ACCEPT
-A WEAVE-NPC -m state --state NEW -j WEAVE-NPC-DEFAULT
-A WEAVE-NPC-DEFAULT -m set --match-set {WEAVE_SET} dst -m comment --comment "DefaultAllow ingress isolation for namespace: default" -j ACCEPT
COMMIT
"""

CALICO_NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:cali-POSTROUTING - [0:0]
:cali-nat-outgoing - [0:0]
-A POSTROUTING -m comment --comment "cali:O3lYWMrLQYEMJtB5" -j cali-POSTROUTING
-A cali-POSTROUTING -m comment --comment "cali:Z-c7XtVd2Bq7s_hA" -j cali-nat-outgoing
-A cali-nat-outgoing -m comment --comment "cali:flqWnvo8yq4ULQLa" -m set --match-set cali40masq-ipam-pools src -m set ! --match-set cali40all-ipam-pools dst -j MASQUERADE --random-fully
COMMIT
"""

PHYSDEV_BPF_CGROUP = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:cali-FORWARD - [0:0]
-A FORWARD -j cali-FORWARD
-A cali-FORWARD -m comment --comment "cali:jdEuaPBe14V2hutn" -m physdev --physdev-is-bridged -j RETURN
-A cali-FORWARD -m bpf --bytecode "4,48 0 0 9,21 0 1 6,6 0 0 1,6 0 0 0" -j DROP
-A OUTPUT -m cgroup --path system.slice/evil.service -j REJECT --reject-with icmp-port-unreachable
COMMIT
"""


def tup(src: str, dst: str, dport: int = 80, sport: int = 40000, proto: str = "tcp"
        ) -> FiveTuple:
    return FiveTuple(proto=proto, src=parse_ip(src), sport=sport, dst=parse_ip(dst),
                     dport=dport)


def fwd(ev: Evaluator, src: str, dst: str, oif: str = "weave") -> list[Branch]:
    return ev.run_hook("forward", Packet(tuple=tup(src, dst), iif="weave", oif=oif))


def summary(branches: list[Branch]) -> list[tuple[str, Fraction, tuple[bool, ...]]]:
    return sorted((b.disposition, b.probability, tuple(a.matches for a in b.assumptions))
                  for b in branches)


def located(rs: Ruleset) -> bool:
    """Rules of this parser carry their source location (``Rule.loc``, being added)."""
    return any(getattr(r, "loc", None) is not None
               for t in rs.tables for c in t.chains for r in c.rules)


# ----------------------------------------------------------------------------- forks


def test_weave_set_rule_forks_and_names_the_rule() -> None:
    rs = parse_iptables_save(WEAVE, source="weave.rules")
    branches = fwd(Evaluator(rs, ["10.0.0.11"]), "10.32.0.9", "10.32.0.5")
    # Before: "DROPPED" for certain. Now: accepted if the set holds the pod, else dropped.
    assert summary(branches) == [("accept", Fraction(1), (True,)),
                                 ("drop", Fraction(1), (False,))]
    for b in branches:
        (a,) = b.assumptions
        assert WEAVE_SET in a.rule and "-j ACCEPT" in a.rule
        assert a.undecided == (f'-m set --match-set "{WEAVE_SET}" dst',)
        if located(rs):
            assert a.rule.endswith("(weave.rules:10)"), a.rule
    drop = next(b for b in branches if b.disposition == "drop")
    assert drop.steps[-1].kind == "policy DROP"


def test_known_ipset_decides_exactly() -> None:
    rs = parse_iptables_save(WEAVE)
    members = IPSet.from_text(WEAVE_SET, "hash:ip", ["10.32.0.5", "10.32.0.6"])
    ev = Evaluator(rs, ["10.0.0.11"], ipsets={WEAVE_SET: members})
    assert summary(fwd(ev, "10.32.0.9", "10.32.0.5")) == [("accept", Fraction(1), ())]
    assert summary(fwd(ev, "10.32.0.9", "10.32.0.7")) == [("drop", Fraction(1), ())]
    # Another set's contents do not decide this one.
    ev2 = Evaluator(rs, ["10.0.0.11"], ipsets={"other": members})
    assert len(fwd(ev2, "10.32.0.9", "10.32.0.5")) == 2


def test_calico_nat_outgoing_two_sets_one_decision() -> None:
    rs = parse_iptables_save(CALICO_NAT, source="calico.rules")
    ev = Evaluator(rs, ["10.0.0.11"])
    pkt = Packet(tuple=tup("192.168.1.5", "8.8.8.8"), oif="eth0")
    branches = ev.run_hook("postrouting", pkt)
    assert sorted((b.masquerade, b.assumptions[0].matches) for b in branches) == [
        (False, False), (True, True)]
    a = branches[0].assumptions[0]
    assert a.undecided == ("-m set --match-set cali40masq-ipam-pools src",
                           "-m set ! --match-set cali40all-ipam-pools dst")
    # With both sets known: masquerade to the internet, not between pools.
    pools = IPSet.from_text("cali40masq-ipam-pools", "hash:net", ["192.168.0.0/16"])
    allp = IPSet.from_text("cali40all-ipam-pools", "hash:net", ["192.168.0.0/16"])
    ev = Evaluator(rs, ["10.0.0.11"], ipsets={p.name: p for p in (pools, allp)})
    (out,) = ev.run_hook("postrouting", pkt)
    assert out.masquerade and not out.assumptions
    inside = Packet(tuple=tup("192.168.1.5", "192.168.2.7"), oif="eth0")
    (out,) = ev.run_hook("postrouting", inside)
    assert not out.masquerade and not out.assumptions
    # Only one set known: still undecided, and only the unknown one is named.
    ev = Evaluator(rs, ["10.0.0.11"], ipsets={pools.name: pools})
    branches = ev.run_hook("postrouting", pkt)
    assert len(branches) == 2
    assert branches[0].assumptions[0].undecided == (
        "-m set ! --match-set cali40all-ipam-pools dst",)
    # A decided set that does not match: the rule cannot match, no fork.
    (out,) = ev.run_hook("postrouting", Packet(tuple=tup("10.1.1.1", "8.8.8.8"), oif="eth0"))
    assert not out.masquerade and not out.assumptions


def test_physdev_bpf_cgroup_fork() -> None:
    rs = parse_iptables_save(PHYSDEV_BPF_CGROUP, source="node.rules")
    ev = Evaluator(rs, ["10.0.0.11"])
    branches = ev.run_hook("forward", Packet(tuple=tup("10.244.1.5", "10.244.2.5"),
                                             iif="cni0", oif="eth0"))
    got = sorted((b.disposition, tuple((a.undecided[0].split()[1], a.matches)
                                        for a in b.assumptions)) for b in branches)
    assert got == [
        ("accept", (("physdev", False), ("bpf", False))),
        ("accept", (("physdev", True),)),
        ("drop", (("physdev", False), ("bpf", True))),
    ]
    assert all(b.probability == 1 for b in branches)
    out = ev.run_hook("output", Packet(tuple=tup("10.0.0.11", "10.0.0.12")))
    assert summary(out) == [("accept", Fraction(1), (False,)),
                            ("reject", Fraction(1), (True,))]
    assert "-m cgroup --path system.slice/evil.service" in out[0].assumptions[0].rule


PHYSDEV_IS_IN = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m physdev ! --physdev-is-in -j MARK --or-mark 0x1
-A PREROUTING -m physdev --physdev-is-in -j MARK --or-mark 0x2
-A OUTPUT -m physdev ! --physdev-is-in -j MARK --or-mark 0x1
-A OUTPUT -m physdev --physdev-is-in -j MARK --or-mark 0x2
COMMIT
"""


@pytest.mark.parametrize(("bridges", "iif", "hook", "marks"), [
    (("cni0",), "cni0", "prerouting", [0x2]),  # entered through a port of bridge cni0
    (("cni0",), "eth0", "prerouting", [0x1]),  # an uplink that is no bridge port
    ((), "cali1234", "prerouting", [0x1]),  # a routed CNI: no bridges at all
    (None, "cni0", "prerouting", [0x1, 0x2]),  # bridges unknown: both rules fork
    (None, None, "output", [0x1]),  # sent by the node: no bridge info, known either way
    (("cni0",), None, "output", [0x1]),
])
def test_physdev_is_in_decided_from_bridges(bridges: tuple[str, ...] | None, iif: str | None,
                                            hook: str, marks: list[int]) -> None:
    """xt_physdev.c physdev_mt: `--physdev-is-in` matches a packet that has bridge info with
    a physindev (entered through a bridge port), `! --physdev-is-in` every other packet."""
    rs = parse_iptables_save(PHYSDEV_IS_IN)
    ev = Evaluator(rs, ["10.0.0.11"], bridges=bridges)
    out = ev.run_hook(hook, Packet(tuple=tup("10.244.1.5", "10.96.0.1"), iif=iif))
    if bridges is None and iif is not None:
        # the two rules ask two questions: four worlds, each with its own marks
        assert sorted(b.packet.mark for b in out) == [0x0, 0x1, 0x2, 0x3]
        assert all(len(b.assumptions) == 2 for b in out)
        return
    (b,) = out
    assert not b.assumptions
    assert b.packet.mark == sum(marks)


UPLINK_RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -i docker0 -j DROP
-A FORWARD -i cali+ -j DROP
-A FORWARD -i wt0 -j ACCEPT
-A FORWARD ! -o cni0 -m statistic --mode random --probability 0.5 -j ACCEPT
COMMIT
"""


@pytest.mark.parametrize(("ifaces", "iif", "oif", "want"), [
    # interfaces known: compared by name, nothing forks
    (None, "eth0", "eth0", [("accept", Fraction(1, 2), ()), ("drop", Fraction(1, 2), ())]),
    (None, "wt0", "eth0", [("accept", Fraction(1), ())]),
    # the uplink's name unknown: docker0 / cali+ are CNI devices (not it), wt0 may be it
    ("eth0", "eth0", "eth0", [("accept", Fraction(1, 2), (False,)),
                              ("accept", Fraction(1), (True,)),
                              ("drop", Fraction(1, 2), (False,))]),
    # a pod's side (cni0, not a guess) is compared by name even then
    ("eth0", "cni0", "eth0", [("accept", Fraction(1, 2), ()), ("drop", Fraction(1, 2), ())]),
])
def test_iface_on_an_unknown_uplink_forks(ifaces: str | None, iif: str, oif: str,
                                          want: list[tuple[str, Fraction, tuple[bool, ...]]]
                                          ) -> None:
    """A dump traced on its own comes from a node whose uplink name is a guess: `-i wt0` on
    it cannot be decided (fork, naming the rule), `-i docker0` / `-i cali+` can (a CNI's or
    runtime's device is not the uplink), and a decided match still runs before a statistic
    (no extra branch)."""
    from sourceip.dataplane.devices import stand_in_ifaces

    rs = parse_iptables_save(UPLINK_RULES)
    ev = Evaluator(rs, ["10.0.0.11"], ifaces=None if ifaces is None else stand_in_ifaces({ifaces}))
    out = ev.run_hook("forward", Packet(tuple=tup("198.51.100.7", "10.244.1.5"), iif=iif,
                                        oif=oif))
    assert summary(out) == want
    for b in out:
        for a in b.assumptions:
            assert a.rule.startswith("-A FORWARD -i wt0 -j ACCEPT")
            assert a.undecided == ("-i wt0",)


@pytest.mark.parametrize(("current", "pattern", "answer"), [
    ("eth0", "eth0", None), ("eth0", "eth+", None), ("eth0", "wt0", None),
    ("eth0", "+", True), ("eth0", "docker0", False), ("eth0", "cali+", False),
    ("eth0", "cali1234", False), ("eth0", "flannel.1", False), ("eth0", "veth+", False),
    ("eth0", "ve+", None), ("eth0", "kube-ipvs0", False), ("eth0", "lo", False),
    ("cni0", "cni0", True), ("cni0", "cni+", True), ("cni0", "eth0", False),
    ("(unknown)", "cni0", None), ("(unknown)", "docker0", None), ("(unknown)", "eth0", None),
    ("(unknown)", "+", True),
])
def test_unknown_uplink_answers(current: str, pattern: str, answer: bool | None) -> None:
    from sourceip.dataplane.devices import stand_in_ifaces

    assert stand_in_ifaces({"eth0"})(current, pattern) is answer


def test_physdev_other_options_stay_undecided() -> None:
    rs = parse_iptables_save(PHYSDEV_IS_IN.replace("! --physdev-is-in",
                                                   "--physdev-is-in --physdev-out veth1"))
    ev = Evaluator(rs, ["10.0.0.11"], bridges=("cni0",))
    out = ev.run_hook("prerouting", Packet(tuple=tup("10.244.1.5", "10.96.0.1"), iif="eth0"))
    assert len(out) == 2 and all(len(b.assumptions) == 1 for b in out)


def test_addrtype_other_than_local_forks() -> None:
    rs = parse_iptables_save("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m addrtype --dst-type BROADCAST -j DROP
COMMIT
""")
    branches = fwd(Evaluator(rs, ["10.0.0.11"]), "10.244.1.5", "10.244.1.255")
    assert summary(branches) == [("accept", Fraction(1), (False,)),
                                 ("drop", Fraction(1), (True,))]
    assert "BROADCAST" in branches[0].assumptions[0].undecided[0]


def nft_ruleset(*rules: Rule, sets: tuple[object, ...] = ()) -> Ruleset:
    chain = Chain(name="forward", hook="forward", type="filter", priority=0, policy="drop",
                  rules=rules)
    return Ruleset(backend="nftables", tables=(
        Table(name="filter", family="inet", chains=(chain,), sets=sets),))  # type: ignore[arg-type]


def test_unknown_nft_expression_and_missing_set_fork() -> None:
    expr = '{"match": {"op": "==", "left": {"socket": {"key": "transparent"}}, "right": 1}}'
    rs = nft_ruleset(Rule(matches=(UnknownMatch(expr),), actions=(Accept(),)),
                     Rule(matches=(SetLookup(("ip daddr",), "allowed"),), actions=(Accept(),)))
    branches = fwd(Evaluator(rs, ["10.0.0.11"]), "10.244.1.5", "10.244.2.5")
    got = sorted((b.disposition, tuple(a.matches for a in b.assumptions)) for b in branches)
    assert got == [("accept", (False, True)), ("accept", (True,)), ("drop", (False, False))]
    rules = {a.undecided[0] for b in branches for a in b.assumptions}
    assert rules == {expr, "ip daddr @allowed"}
    texts = {a.rule for b in branches for a in b.assumptions}
    assert any("socket" in t for t in texts) and any("@allowed" in t for t in texts)


def test_same_rule_same_packet_is_one_decision() -> None:
    """A chain jumped to twice with the same packet asks the same question once: the branch
    keeps its first answer (no 'matches, then does not' world)."""
    x = Chain(name="X", rules=(Rule(matches=(UnknownMatch("-m physdev --physdev-is-in"),),
                                    actions=(Return(),)),
                               Rule(actions=(Accept(),))))
    fwd_chain = Chain(name="FORWARD", hook="forward", policy="DROP",
                      rules=(Rule(actions=(Jump("X"),)), Rule(actions=(Jump("X"),))))
    rs = Ruleset(backend="iptables", tables=(Table(name="filter", chains=(fwd_chain, x)),))
    branches = fwd(Evaluator(rs, ["10.0.0.11"]), "10.244.1.5", "10.244.2.5")
    # matches: RETURN twice, then the policy drops; does not match: accepted at once.
    assert summary(branches) == [("accept", Fraction(1), (False,)),
                                 ("drop", Fraction(1), (True,))]
    # ... and across hooks when the caller passes the answers on.
    ev = Evaluator(rs, ["10.0.0.11"])
    pkt = Packet(tuple=tup("10.244.1.5", "10.244.2.5"), iif="weave", oif="weave")
    for b in ev.run_hook("forward", pkt):
        (again,) = ev.run_hook("forward", pkt, assumed=b.assumptions)
        assert (again.disposition, again.assumptions) == (b.disposition, b.assumptions)


def test_probability_not_split_and_worlds_sum_to_one() -> None:
    """statistic 1/2 before an undecidable rule: each world's outcomes sum to 1."""
    rs = parse_iptables_save("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m statistic --mode random --probability 0.50000000000 -j ACCEPT
-A FORWARD -m physdev --physdev-is-bridged -j DROP
COMMIT
""")
    branches = fwd(Evaluator(rs, ["10.0.0.11"]), "10.244.1.5", "10.244.2.5")
    half = Fraction(1, 2)
    assert summary(branches) == [("accept", half, ()), ("accept", half, (False,)),
                                 ("drop", half, (True,))]
    for world in (True, False):
        total = sum(b.probability for b in branches
                    if all(a.matches == world for a in b.assumptions))
        assert total == 1


def test_rules_without_unknowns_do_not_fork() -> None:
    rs = parse_iptables_save(WEAVE.replace(f"-m set --match-set {WEAVE_SET} dst ", ""))
    (b,) = fwd(Evaluator(rs, ["10.0.0.11"]), "10.32.0.9", "10.32.0.5")
    assert b.disposition == "accept" and b.assumptions == ()


# ----------------------------------------------------------------------------- ipset semantics


def sm(text: str) -> object:
    got = parse_set_match(text)
    assert got is not None, text
    return got


def decide(text: str, sets: list[IPSet], t: FiveTuple) -> bool | None:
    """set_match's answer, checked against the compiled predicate's."""
    m, by_name = sm(text), {s.name: s for s in sets}
    got = set_match(m, by_name, t)  # type: ignore[arg-type]
    assert compile_set_match(m, by_name)(t) is got  # type: ignore[arg-type]
    return got


_ADDRS4 = ["10.96.0.10", "10.96.0.11", "10.1.2.3"]
_ADDRS6 = ["fd00::10", "fd00::11"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["hash:ip,port", "hash:ip,port,ip", "bitmap:port"]),
       st.sampled_from(["inet", "inet6"]),
       st.lists(st.tuples(st.sampled_from(_ADDRS4 + _ADDRS6), st.sampled_from(["tcp", "udp"]),
                          st.sampled_from([80, 40000]), st.sampled_from(_ADDRS4 + _ADDRS6)),
                max_size=4),
       st.lists(st.sampled_from(["src", "dst"]), min_size=1, max_size=4), st.booleans(),
       st.booleans(), st.sampled_from(_ADDRS4 + _ADDRS6), st.sampled_from(_ADDRS4 + _ADDRS6),
       st.sampled_from(["tcp", "udp", "sctp"]), st.booleans(), st.booleans())
def test_compiled_set_match_equals_set_match(type_, family, elems, flags, neg, rn, src, dst,
                                             proto, like_first, mixed) -> None:  # type: ignore[no-untyped-def]
    """compile_set_match answers what set_match answers, for kube-proxy's exact-element set
    types (the fast path) with either family's elements, any flags, negation,
    --return-nomatch, packets of either family and of a protocol no element has."""
    if not mixed:  # elements of the set's family only (the fast path)
        pool = _ADDRS6 if family == "inet6" else _ADDRS4
        every = _ADDRS4 + _ADDRS6
        elems = [(pool[every.index(a) % len(pool)], p, port, pool[every.index(b) % len(pool)])
                 for a, p, port, b in elems]
    members = tuple((parse_ip(a), p, port, parse_ip(b)) if type_ == "hash:ip,port,ip"
                    else port if type_ == "bitmap:port" else (parse_ip(a), p, port)
                    for a, p, port, b in elems)
    if type_ == "bitmap:port" and mixed:
        members = (*members, (30000, 32767))  # a range: through set_match
    s = IPSet(name="S", type=type_, family=family, members=members)
    text = (f"-m set {'! ' if neg else ''}--match-set S {','.join(flags)}"
            f"{' --return-nomatch' if rn else ''}")
    m = parse_set_match(text)
    assert m is not None
    sport, dport = 40000, 80
    if like_first and elems:  # a packet made of the first element's fields, per the flags
        a, proto, port, b = elems[0]
        src, dst = (a, b) if flags[0] == "src" else (b, a)
        if type_ == "bitmap:port":
            sport, dport = (port, 80) if flags[0] == "src" else (40000, port)
        elif len(flags) > 1:
            sport, dport = (port, 80) if flags[1] == "src" else (40000, port)
    if parse_ip(src).version != parse_ip(dst).version:
        dst = src
    t = FiveTuple(proto=proto, src=parse_ip(src), sport=sport, dst=parse_ip(dst), dport=dport)
    assert compile_set_match(m, {"S": s})(t) is set_match(m, {"S": s}, t)


T = tup("10.1.2.3", "10.96.0.10", dport=80, sport=40000)


@pytest.mark.parametrize(("rule", "members", "type_", "want"), [
    ("-m set --match-set S src", ["10.1.2.3"], "hash:ip", True),
    ("-m set --match-set S dst", ["10.1.2.3"], "hash:ip", False),
    ("-m set ! --match-set S dst", ["10.1.2.3"], "hash:ip", True),
    ("-m set --match-set S src", ["10.1.2.0/30"], "hash:ip", True),   # added as a range
    ("-m set --match-set S src", ["10.1.0.0/16"], "hash:net", True),
    # the longest prefix decides; nomatch elements are exceptions
    ("-m set --match-set S src", ["10.1.0.0/16", "10.1.2.0/24 nomatch"], "hash:net", False),
    ("-m set --match-set S src", ["10.0.0.0/8", "10.1.0.0/16 nomatch", "10.1.2.0/24"],
     "hash:net", True),
    ("-m set --match-set S src --return-nomatch", ["10.1.0.0/16", "10.1.2.0/24 nomatch"],
     "hash:net", True),
    ("-m set --match-set S src --return-nomatch", ["10.1.0.0/16"], "hash:net", False),
    # kube-proxy ipvs: KUBE-CLUSTER-IP is hash:ip,port matched with dst,dst
    ("-m set --match-set S dst,dst", ["10.96.0.10,tcp:80"], "hash:ip,port", True),
    ("-m set --match-set S dst,dst", ["10.96.0.10,80"], "hash:ip,port", True),  # tcp default
    ("-m set --match-set S dst,dst", ["10.96.0.10,udp:80"], "hash:ip,port", False),
    ("-m set --match-set S dst,src", ["10.96.0.10,tcp:80"], "hash:ip,port", False),
    ("-m set --match-set S dst", ["10.96.0.10,tcp:80"], "hash:ip,port", False),  # too few
    ("-m set --match-set S dst,dst,src", ["10.96.0.10,tcp:80,10.1.2.3"], "hash:ip,port,ip",
     True),
    ("-m set --match-set S dst,dst,src", ["10.96.0.10,tcp:80,10.1.0.0/16"],
     "hash:ip,port,net", True),
    ("-m set --match-set S src,dst", ["10.0.0.0/8,tcp:80"], "hash:net,port", True),
    ("-m set --match-set S src,dst", ["10.0.0.0/8,10.96.0.0/12"], "hash:net,net", True),
    ("-m set --match-set S dst", ["80", "443"], "bitmap:port", True),
    ("-m set --match-set S src", ["30000-32767"], "bitmap:port", False),
    ("-m set --match-set S src", ["30000-40000"], "bitmap:port", True),
])
def test_set_membership(rule: str, members: list[str], type_: str, want: bool) -> None:
    assert decide(rule, [IPSet.from_text("S", type_, members)], T) is want


def test_list_set_family_and_undecidable_cases() -> None:
    a = IPSet.from_text("A", "hash:ip", ["10.9.9.9"])
    b = IPSet.from_text("B", "hash:net", ["10.1.0.0/16"])
    lst = IPSet.from_text("L", "list:set", ["A", "B"])
    assert decide("-m set --match-set L src", [a, b, lst], T) is True
    assert decide("-m set --match-set L dst", [a, b, lst], T) is False
    # a member set not given: undecided unless an earlier member matches
    assert decide("-m set --match-set L src", [b, lst], T) is True
    assert decide("-m set --match-set L dst", [b, lst], T) is None
    six = IPSet(name="S", type="hash:net", family="inet6",
                members=(parse_network("::/0"),))
    assert decide("-m set --match-set S src", [six], T) is False
    assert decide("-m set --match-set S src", [], T) is None  # not given
    assert decide("-m set --match-set S src", [IPSet.from_text("S", "hash:mac", [])], T) is None
    sctp = tup("10.1.2.3", "10.96.0.10", proto="sctp")
    port_set = IPSet.from_text("S", "hash:ip,port", ["10.96.0.10,tcp:80"])
    assert decide("-m set --match-set S dst,dst", [port_set], sctp) is False
    # counter conditions depend on runtime state: not a set match we decide
    assert parse_set_match("-m set --match-set S src --packets-gt 5") is None
    assert parse_set_match("-m set --match-set S src ! --update-counters") is not None
    assert parse_set_match("-m physdev --physdev-is-bridged") is None


_IFACE_NAMES = ["eth0", "eth+", "wt0", "docker0", "cali+", "+", "cni0", "ens5"]


@st.composite
def _iface_rulesets(draw: st.DrawFn) -> str:
    """A filter table whose FORWARD (and one user chain) test -i/-o against a small pool of
    names, some of them the stand-in uplink's."""
    lines = ["*filter", ":INPUT ACCEPT [0:0]", f":FORWARD {draw(st.sampled_from(['ACCEPT', 'DROP']))} [0:0]",
             ":OUTPUT ACCEPT [0:0]", ":USER - [0:0]"]
    for chain in ("FORWARD", "USER"):
        for _ in range(draw(st.integers(0, 5))):
            words = [f"-A {chain}"]
            for flag in draw(st.lists(st.sampled_from(["-i", "-o"]), min_size=1, max_size=2,
                                      unique=True)):
                neg = "! " if draw(st.booleans()) else ""
                words.append(f"{neg}{flag} {draw(st.sampled_from(_IFACE_NAMES))}")
            target = draw(st.sampled_from(["ACCEPT", "DROP", "RETURN", "MARK --set-xmark 0x1/0x1"]
                                          + (["USER"] if chain == "FORWARD" else [])))
            words.append(f"-j {target}")
            lines.append(" ".join(words))
    return "\n".join([*lines, "COMMIT", ""])


@settings(max_examples=300, deadline=None)
@given(_iface_rulesets(), st.sampled_from(["eth0", "cni0"]), st.sampled_from(["eth0", "cni0"]))
def test_unknown_uplink_holds_the_true_world(text: str, iif: str, oif: str) -> None:
    """Soundness of the fork: with the uplink's name unknown, the branches whose every
    assumption agrees with the truth (the uplink really is eth0) end exactly as the exact
    evaluation does; and a rule is only ever undecided on an interface named eth0."""
    from sourceip.dataplane.devices import stand_in_ifaces
    from sourceip.netfilter.evaluate import iface_matches

    rs = parse_iptables_save(text)
    pkt = Packet(tuple=tup("198.51.100.7", "10.244.1.5"), iif=iif, oif=oif)
    exact = Evaluator(rs, ["10.0.0.11"]).run_hook("forward", pkt)
    forked = Evaluator(rs, ["10.0.0.11"], ifaces=stand_in_ifaces({"eth0"})).run_hook("forward",
                                                                                    pkt)
    chains = {c.name: c for t in rs.tables for c in t.chains}

    def truth(a: object) -> bool:
        _uid, where, index = a.key[:3]  # type: ignore[attr-defined]
        rule = chains[where[1]].rules[index]
        return all(iface_matches(iif if m.direction == "in" else oif, m.name) != m.negate
                   for m in rule.matches)

    true_world = [b for b in forked if all(a.matches == truth(a) for a in b.assumptions)]
    assert sorted((b.disposition, b.packet.mark) for b in true_world) == \
        sorted((b.disposition, b.packet.mark) for b in exact)
    for b in forked:
        for a in b.assumptions:
            assert all(u.split()[-1] in ("eth0", "eth+", "wt0", "ens5") for u in a.undecided)
