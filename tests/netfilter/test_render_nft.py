"""render_nft: every IR match and action as nft text, the transaction order, and refusals."""

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
from sourceip.netfilter.render_nft import (
    NftRenderError,
    render_nft,
    render_nft_rule,
    rule_text,
)

ip = ipaddress.ip_address
net = ipaddress.ip_network

CASES = [
    (Rule((Proto("tcp"),), (Accept(),)), "meta l4proto tcp accept"),
    (Rule((Proto("udp", negate=True),), (Drop(),)), "meta l4proto != udp drop"),
    (Rule((Addr("dst", (ip("172.30.0.41"),)), Addr("src", (net("10.0.0.0/8"),), negate=True)),
          (Jump("mark-for-masquerade"),)),
     "ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade"),
    (Rule((Addr("dst", (net("172.30.0.0/16"),), braces=True),), (Drop(),),
          comment="Drop traffic to unallocated ClusterIPs"),
     'ip daddr { 172.30.0.0/16 } drop comment "Drop traffic to unallocated ClusterIPs"'),
    (Rule((Addr("src", (net("203.0.113.0/25"), ip("5.6.7.8")), negate=True, braces=True),),
          (Drop(),)),
     "ip saddr != { 203.0.113.0/25, 5.6.7.8 } drop"),
    (Rule((Port("dport", (80, (1000, 2000))),), (Return(),)),
     "th dport { 80, 1000-2000 } return"),
    (Rule((Iface("in", "veth+"),), (Goto("x"),)), 'iifname "veth*" goto x'),
    (Rule((Iface("out", "cni0", negate=True),), (Counter(), Accept())),
     'oifname != "cni0" counter accept'),
    (Rule((AddrType("src", "LOCAL"),), (Jump("mark-for-masquerade"),),
          comment="masquerade local traffic"),
     'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"'),
    (Rule((AddrType("dst", "LOCAL", limit_iface_out=True),), (Accept(),)),
     "fib daddr . oif type local accept"),
    (Rule((Mark(0, 0x4000),), (Return(),)), "mark and 0x4000 == 0 return"),
    (Rule((Mark(0x10),), (Accept(),)), "mark 0x10 accept"),
    (Rule(actions=(MarkSet("or", 0x4000),)), "mark set mark or 0x4000"),
    (Rule(actions=(MarkSet("xor", 0x4000),)), "mark set mark xor 0x4000"),
    (Rule(actions=(MarkSet("set", 0x1),)), "mark set 0x1"),
    (Rule(actions=(Masquerade(random_fully=True),)), "masquerade fully-random"),
    (Rule(actions=(Masquerade(),)), "masquerade"),
    (Rule((CtState(("NEW",)),), (Jump("firewall-check"),)), "ct state new jump firewall-check"),
    (Rule((CtState(("ESTABLISHED", "RELATED")),), (Accept(),)),
     "ct state established,related accept"),
    (Rule((SetLookup(("ip daddr",), "cluster-ips"),), (Reject(),)),
     "ip daddr @cluster-ips reject"),
    (Rule((SetLookup(("ip saddr",), "s", negate=True),), (Reject("icmp type host-prohibited"),)),
     "ip saddr != @s reject with icmp type host-prohibited"),
    (Rule(actions=(Vmap(("ip daddr", "meta l4proto", "th dport"), "service-ips"),)),
     "ip daddr . meta l4proto . th dport vmap @service-ips"),
    (Rule(actions=(NumgenVmap(2, (Goto("a"), Goto("b"))),)),
     "numgen random mod 2 vmap { 0 : goto a , 1 : goto b }"),
    (Rule(actions=(SetUpdate("affinity-x", ("ip saddr",)),)), "update @affinity-x { ip saddr }"),
    (Rule((Proto("tcp"),), (Dnat(ip("10.180.0.1"), 80),)),
     "meta l4proto tcp dnat to 10.180.0.1:80"),
    (Rule(actions=(Snat(ip("192.168.0.2"), random_fully=True),)),
     "snat to 192.168.0.2 fully-random"),
    (Rule((UnknownMatch("meta skuid 0"),), (UnknownAction("log prefix \"x\""),)),
     'meta skuid 0 log prefix "x"'),
]


@pytest.mark.parametrize(("rule", "text"), CASES, ids=[c[1] for c in CASES])
def test_rule_text(rule: Rule, text: str) -> None:
    assert rule_text(rule) == text


def test_ipv6_rules() -> None:
    r = Rule((Addr("src", (ip("fd00::1"),)),), (Jump("m"),))
    assert rule_text(r, "ip6") == "ip6 saddr fd00::1 jump m"
    r = Rule((Proto("tcp"),), (Dnat(ip("fd00:10:180::1"), 80),))
    assert rule_text(r, "ip6") == "meta l4proto tcp dnat to [fd00:10:180::1]:80"
    r = Rule((Addr("dst", (ip("::1"),), negate=True),), (Accept(),))
    assert rule_text(r, "inet") == "ip6 daddr != ::1 accept"


def test_host_network_renders_as_address() -> None:
    assert rule_text(Rule((Addr("src", (net("10.1.2.3/32"),)),), (Drop(),))) == \
        "ip saddr 10.1.2.3 drop"


@pytest.mark.parametrize("m", [Statistic("0.5"), Recent("x", "rcheck")])
def test_iptables_only_matches_are_refused(m: object) -> None:
    with pytest.raises(NftRenderError, match="iptables-only"):
        rule_text(Rule((m,), (Accept(),)))  # type: ignore[arg-type]


def _table() -> Table:
    return Table(
        "kube-proxy", "ip",
        chains=(
            Chain("nat-prerouting", (Rule(actions=(Jump("services"),)),), hook="prerouting",
                  type="nat", priority=-100),
            Chain("services", (Rule(actions=(Vmap(("ip daddr",), "m"),)),)),
            Chain("reject-chain", (Rule(actions=(Reject(),)),), comment="helper"),
            Chain("x"),
        ),
        sets=(
            NftSet("m", ("ipv4_addr",), "verdict", comment="a map",
                   elements=(SetElement((ip("1.2.3.4"),), Goto("x"), comment="ns/svc:p"),)),
            NftSet("s", ("ipv4_addr", "inet_proto", "inet_service"),
                   elements=(SetElement((ip("1.2.3.4"), "tcp", 80)),)),
            NftSet("aff", ("ipv4_addr",), flags=("dynamic", "timeout"), timeout=60),
        ),
        comment="rules for kube-proxy",
    )


def test_render_order_and_forms() -> None:
    lines = render_nft(Ruleset("nftables", (_table(),))).splitlines()
    assert lines == [
        'add table ip kube-proxy { comment "rules for kube-proxy" ; }',
        "add set ip kube-proxy s { type ipv4_addr . inet_proto . inet_service ; }",
        "add set ip kube-proxy aff { type ipv4_addr ; flags dynamic,timeout ; timeout 60s ; }",
        'add map ip kube-proxy m { type ipv4_addr : verdict ; comment "a map" ; }',
        "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }",
        "add chain ip kube-proxy services",
        'add chain ip kube-proxy reject-chain { comment "helper" ; }',
        "add chain ip kube-proxy x",
        "add rule ip kube-proxy nat-prerouting jump services",
        "add rule ip kube-proxy services ip daddr vmap @m",
        "add rule ip kube-proxy reject-chain reject",
        'add element ip kube-proxy m { 1.2.3.4 comment "ns/svc:p" : goto x }',
        "add element ip kube-proxy s { 1.2.3.4 . tcp . 80 }",
    ]


def test_fresh_replaces_the_table() -> None:
    text = render_nft(Ruleset("nftables", (_table(),)), fresh=True)
    assert text.startswith("add table ip kube-proxy\ndelete table ip kube-proxy\n")


def test_render_nft_rule_is_the_add_rule_line() -> None:
    t = _table()
    assert render_nft_rule(t, "services", t.chains[1].rules[0]) == \
        "add rule ip kube-proxy services ip daddr vmap @m"


def test_empty_ruleset_renders_empty() -> None:
    assert render_nft(Ruleset("nftables")) == ""


def test_shared_objects_render_once_and_alike() -> None:
    """Interned objects (one Jump in many rules) render identically in every rule."""
    j = Jump("mark-for-masquerade")
    rules = tuple(Rule((Addr("src", (ip(f"10.0.0.{i}"),)),), (j,)) for i in range(1, 4))
    t = Table("t", chains=(Chain("c", rules),))
    out = render_nft(Ruleset("nftables", (t,))).splitlines()
    assert out[-3:] == [f"add rule ip t c ip saddr 10.0.0.{i} jump mark-for-masquerade"
                        for i in range(1, 4)]


def test_nft_cannot_quote_double_quotes_so_the_renderer_refuses() -> None:
    # nft's scanner has no escape for '"' inside a string: `comment "say \"hi\""` is a
    # syntax error in nft 1.0.6, so writing it would produce a script that does not load.
    import pytest

    from sourceip.netfilter.render_nft import NftRenderError, rule_text

    with pytest.raises(NftRenderError):
        rule_text(Rule(actions=(Accept(),), comment='say "hi"'))


def test_ct_status_and_multi_type_fib_and_masked_mark_set() -> None:
    from sourceip.netfilter.ir import AddrType, CtState, MarkSet
    from sourceip.netfilter.render_nft import rule_text

    assert rule_text(Rule(matches=(CtState(states=("DNAT",)),), actions=(Accept(),))) == \
        "ct status dnat accept"
    assert rule_text(Rule(matches=(AddrType(field="dst", type="LOCAL,UNICAST"),),
                          actions=(Accept(),))) == "fib daddr type { local, unicast } accept"
    assert rule_text(Rule(actions=(MarkSet(op="set", value=0x4000, mask=0xC000),))) == \
        "mark set mark and 0xffff3fff or 0x4000"
