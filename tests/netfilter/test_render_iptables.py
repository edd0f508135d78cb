"""render_iptables / render_iptables_rule: kube-proxy's text form of each IR value."""

from __future__ import annotations

import ipaddress

import pytest

from sourceip.netfilter.ir import (
    Accept,
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
    Nfacct,
    NftSet,
    Port,
    Proto,
    Recent,
    Reject,
    Return,
    Rule,
    Ruleset,
    SetLookup,
    Snat,
    Statistic,
    Table,
    UnknownAction,
    UnknownMatch,
    Vmap,
)
from sourceip.netfilter.render_iptables import (
    quote_comment,
    render_iptables,
    render_iptables_rule,
)

ip = ipaddress.ip_address
net = ipaddress.ip_network


def test_kube_proxy_cluster_ip_rule() -> None:
    rule = Rule(
        (Proto("tcp"), Addr("dst", (ip("172.30.0.41"),)), Port("dport", (80,))),
        (Jump("KUBE-SVC-XPGD46QRK7WJZT7O"),),
        "ns1/svc1:p80 cluster IP",
    )
    assert render_iptables_rule("KUBE-SERVICES", rule) == (
        '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp '
        "-d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O"
    )


@pytest.mark.parametrize(
    ("comment", "text"),
    [
        ("ns2/svc2:p80", "ns2/svc2:p80"),
        ("has space", '"has space"'),
        ("", '""'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("tab\there", '"tab\there"'),
    ],
)
def test_comment_quoting(comment: str, text: str) -> None:
    assert quote_comment(comment) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Proto("udp"), "-m udp -p udp"),
        (Proto("sctp"), "-m sctp -p sctp"),
        (Proto("icmp"), "-p icmp"),
        (Proto("tcp", negate=True), "! -p tcp"),
        (Addr("src", (net("10.0.0.0/8"),), negate=True), "! -s 10.0.0.0/8"),
        (Addr("src", (net("10.1.2.3/32"),)), "-s 10.1.2.3"),
        (Addr("dst", (ip("fd00::1"),)), "-d fd00::1"),
        (Addr("dst", (net("fd00::/64"),)), "-d fd00::/64"),
        (Port("dport", (30000,)), "--dport 30000"),
        (Port("sport", ((1000, 2000),), negate=True), "! --sport 1000:2000"),
        (Port("dport", (80, 443)), "-m multiport --dports 80,443"),
        (Iface("in", "veth+"), "-i veth+"),
        (Iface("out", "eth0", negate=True), "! -o eth0"),
        (AddrType("dst", "LOCAL"), "-m addrtype --dst-type LOCAL"),
        (AddrType("src", "LOCAL", negate=True), "-m addrtype ! --src-type LOCAL"),
        (AddrType("dst", "LOCAL", limit_iface_out=True),
         "-m addrtype --dst-type LOCAL --limit-iface-out"),
        (Mark(0x4000, 0x4000, negate=True), "-m mark ! --mark 0x4000/0x4000"),
        (Mark(0x1), "-m mark --mark 0x1"),
        (CtState(("RELATED", "ESTABLISHED", "DNAT"), negate=True),
         "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT"),
        (Statistic("0.3333333333"), "-m statistic --mode random --probability 0.3333333333"),
        (Recent("KUBE-SEP-X", "rcheck", seconds=10800, reap=True),
         "-m recent --name KUBE-SEP-X --rcheck --seconds 10800 --reap"),
        (Recent("KUBE-SEP-X", "set"), "-m recent --name KUBE-SEP-X --set"),
        (Nfacct("localhost_nps_accepted_pkts"),
         "-m nfacct --nfacct-name localhost_nps_accepted_pkts"),
        (UnknownMatch("-m owner --uid-owner 0"), "-m owner --uid-owner 0"),
    ],
)
def test_matches(value: object, text: str) -> None:
    rule = Rule((value,), (Accept(),))  # type: ignore[arg-type]
    assert render_iptables_rule("C", rule) == f"-A C {text} -j ACCEPT"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Jump("KUBE-MARK-MASQ"), "-j KUBE-MARK-MASQ"),
        (Goto("X"), "-g X"),
        (Return(), "-j RETURN"),
        (Drop(), "-j DROP"),
        (Reject(), "-j REJECT"),
        (Reject("icmp-port-unreachable"), "-j REJECT --reject-with icmp-port-unreachable"),
        (Dnat(ip("10.180.0.1"), 80), "-j DNAT --to-destination 10.180.0.1:80"),
        (Dnat(ip("fd00::1"), 80), "-j DNAT --to-destination [fd00::1]:80"),
        (Dnat(ip("10.180.0.1")), "-j DNAT --to-destination 10.180.0.1"),
        (Snat(ip("10.0.0.1"), random_fully=True), "-j SNAT --to-source 10.0.0.1 --random-fully"),
        (Masquerade(), "-j MASQUERADE"),
        (Masquerade(random_fully=True), "-j MASQUERADE --random-fully"),
        (MarkSet("or", 0x4000), "-j MARK --or-mark 0x4000"),
        (MarkSet("xor", 0x4000), "-j MARK --xor-mark 0x4000"),
        (MarkSet("set", 0x1, 0xFF), "-j MARK --set-xmark 0x1/0xff"),
        (UnknownAction("-j CT --notrack"), "-j CT --notrack"),
    ],
)
def test_actions(value: object, text: str) -> None:
    assert render_iptables_rule("C", Rule((), (value,))) == f"-A C {text}"  # type: ignore[arg-type]


def test_comment_only_rule_and_counter() -> None:
    assert render_iptables_rule("KUBE-FW-X", Rule((), (), "other traffic")) == (
        '-A KUBE-FW-X -m comment --comment "other traffic"'
    )
    assert render_iptables_rule("C", Rule((), (Counter(), Drop()))) == "-A C -j DROP"


def test_unrenderable_values_raise() -> None:
    with pytest.raises(ValueError, match="SetLookup"):
        render_iptables_rule("C", Rule((SetLookup(("ip daddr",), "s"),), (Drop(),)))
    with pytest.raises(ValueError, match="Vmap"):
        render_iptables_rule("C", Rule((), (Vmap(("ip daddr",), "m"),)))
    with pytest.raises(ValueError, match="at most one target"):
        render_iptables_rule("C", Rule((), (MarkSet("or", 1), Accept())))
    with pytest.raises(ValueError, match="one address"):
        render_iptables_rule("C", Rule((Addr("src", (ip("1.1.1.1"), ip("2.2.2.2"))),), ()))
    with pytest.raises(ValueError, match="named sets"):
        render_iptables(Ruleset(backend="iptables", tables=(
            Table(name="filter", sets=(NftSet(name="s", key_types=("ipv4_addr",)),)),)))
    with pytest.raises(ValueError, match="iptables ruleset"):
        render_iptables(Ruleset(backend="nftables"))


def test_whole_ruleset_layout() -> None:
    rs = Ruleset(
        backend="iptables",
        tables=(
            Table(name="filter", chains=(
                Chain(name="INPUT", hook="input", policy="ACCEPT",
                      rules=(Rule((), (Jump("KUBE-X"),)),)),
                Chain(name="KUBE-X", rules=(Rule((), (Drop(),), "x y"),)),
            )),
            Table(name="nat", chains=(Chain(name="KUBE-Y"),)),
        ),
    )
    assert render_iptables(rs) == (
        "*filter\n:INPUT ACCEPT [0:0]\n:KUBE-X - [0:0]\n-A INPUT -j KUBE-X\n"
        '-A KUBE-X -m comment --comment "x y" -j DROP\nCOMMIT\n'
        "*nat\n:KUBE-Y - [0:0]\nCOMMIT\n"
    )
