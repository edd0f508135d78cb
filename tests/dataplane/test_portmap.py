"""The CNI portmap plugin's chains (sourceip.dataplane.portmap) against the plugin's own tests.

Golden values are those of containernetworking/plugins v1.9.1,
``plugins/meta/portmap/portmap_iptables_test.go`` ("Generating iptables chains") and
``portmap_nftables_test.go`` ("generates correct rules"): the plugin's argument lists are
written as iptables-save lines and parsed, its knftables dump compared line by line. The
tests' ``conditionsV4`` (``-a b``, ``a b``: placeholders no kernel accepts) are left out.
Then hostPort traffic is traced through kube-proxy's rules plus the plugin's, in both modes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from sourceip.dataplane.portmap import (
    PortMapConf,
    PortMapping,
    Sandbox,
    build_iptables,
    build_nftables,
    build_portmap_ruleset,
    dnat_chain_name,
    dnat_entry_rules,
    dnat_rules,
    masq_chain,
    merge_portmap,
    render_portmap_load,
    setmark_chain,
    toplevel_dnat_entry,
)
from sourceip.dataplane.tracer import Tracer
from sourceip.kubeproxy import build_ruleset
from sourceip.netfilter import render
from sourceip.netfilter.ir import Jump, Rule
from sourceip.netfilter.parse_iptables import parse_iptables_save
from sourceip.netfilter.render_nft import render_nft
from sourceip.sources import load_example

CONTAINER_ID = ("icee6giejonei6sohng6ahngee7laquohquee9shiGo7fohferakah3Feiyoolu2pei7ciPhoh7shaoX6"
                "vai3vuf0ahfaeng8yohb9ceu0daez5hashee8ooYai5wa3y")
NFT_CONTAINER_ID = "icee6giejonei6so"

# the tests' runtimeConfig.portMappings
MAPPINGS = (
    PortMapping(host_port=8080, container_port=80, protocol="tcp"),
    PortMapping(host_port=8081, container_port=80, protocol="tcp"),
    PortMapping(host_port=8080, container_port=81, protocol="udp"),
    PortMapping(host_port=8082, container_port=82, protocol="udp"),
    PortMapping(host_port=8083, container_port=83, protocol="tcp", host_ip="192.168.0.2"),
    PortMapping(host_port=8084, container_port=84, protocol="tcp", host_ip="0.0.0.0"),
    PortMapping(host_port=8085, container_port=85, protocol="tcp", host_ip="2001:db8:a::1"),
    PortMapping(host_port=8086, container_port=86, protocol="tcp", host_ip="::"),
)


def _sandbox(cidr: str, cid: str = CONTAINER_ID) -> Sandbox:
    iface = ipaddress.ip_interface(cidr)
    return Sandbox(container_id=cid, ip=iface.ip, prefix=iface.network.prefixlen,
                   mappings=MAPPINGS)


def _parse_rules(chain: str, args: list[list[str]], family: int = 4) -> list[Rule]:
    """The plugin's argument lists as iptables-save lines, parsed (go-iptables passes each
    argument as one word: the comment is quoted here as iptables-save would)."""
    def word(w: str) -> str:
        if " " not in w and '"' not in w:
            return w
        return '"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"-A {chain} " + " ".join(word(w) for w in a) for a in args]
    declared = dict.fromkeys([chain, "CNI-HOSTPORT-SETMARK", "PLZ-SET-MARK",
                              "CNI-DN-67e92b96e692a494b6b85"])
    text = "\n".join(["*nat", *(f":{c} - [0:0]" for c in declared), *lines, "COMMIT", ""])
    rs = parse_iptables_save(text, family=family)
    nat = rs.table("nat")
    assert nat is not None
    got = nat.chain(chain)
    assert got is not None
    return list(got.rules)


# ----------------------------------------------------------------------------- chain names


@pytest.mark.parametrize(("net", "want"), [
    ("testNetName", "CNI-DN-bfd599665540dd91d5d28"),
    ("test", "CNI-DN-67e92b96e692a494b6b85"),
])
def test_dnat_chain_name_is_the_plugins(net: str, want: str) -> None:
    assert dnat_chain_name(net, CONTAINER_ID) == want


# ----------------------------------------------------------------------------- iptables


def test_iptables_dnat_rules_match_the_plugins_test_for_ipv4() -> None:
    conf = PortMapConf(name="test")
    sb = _sandbox("10.0.0.2/24")
    comment = f'dnat name: "test" id: "{CONTAINER_ID}"'
    want_entries = _parse_rules("CNI-HOSTPORT-DNAT", [
        ["-m", "comment", "--comment", comment, "-m", "multiport", "-p", "tcp",
         "--destination-ports", "8080,8081,8083,8084,8085,8086",
         "-j", "CNI-DN-67e92b96e692a494b6b85"],
        ["-m", "comment", "--comment", comment, "-m", "multiport", "-p", "udp",
         "--destination-ports", "8080,8082", "-j", "CNI-DN-67e92b96e692a494b6b85"],
    ])
    assert dnat_entry_rules(conf, sb) == want_entries
    want = _parse_rules("CNI-DN-67e92b96e692a494b6b85", [
        ["-p", "tcp", "--dport", "8080", "-s", "10.0.0.2/24", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "--dport", "8080", "-s", "127.0.0.1", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "--dport", "8080", "-j", "DNAT", "--to-destination", "10.0.0.2:80"],
        ["-p", "tcp", "--dport", "8081", "-s", "10.0.0.2/24", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "--dport", "8081", "-s", "127.0.0.1", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "--dport", "8081", "-j", "DNAT", "--to-destination", "10.0.0.2:80"],
        ["-p", "udp", "--dport", "8080", "-s", "10.0.0.2/24", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "udp", "--dport", "8080", "-s", "127.0.0.1", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "udp", "--dport", "8080", "-j", "DNAT", "--to-destination", "10.0.0.2:81"],
        ["-p", "udp", "--dport", "8082", "-s", "10.0.0.2/24", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "udp", "--dport", "8082", "-s", "127.0.0.1", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "udp", "--dport", "8082", "-j", "DNAT", "--to-destination", "10.0.0.2:82"],
        ["-p", "tcp", "--dport", "8083", "-d", "192.168.0.2", "-s", "10.0.0.2/24", "-j",
         "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "--dport", "8083", "-d", "192.168.0.2", "-s", "127.0.0.1", "-j",
         "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "--dport", "8083", "-d", "192.168.0.2", "-j", "DNAT",
         "--to-destination", "10.0.0.2:83"],
        ["-p", "tcp", "--dport", "8084", "-s", "10.0.0.2/24", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "--dport", "8084", "-s", "127.0.0.1", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "--dport", "8084", "-j", "DNAT", "--to-destination", "10.0.0.2:84"],
    ])
    assert dnat_rules(conf, sb) == want


def test_iptables_dnat_rules_match_the_plugins_test_for_ipv6() -> None:
    sb = _sandbox("2001:db8::2/64")
    want = _parse_rules("CNI-DN-x", [
        ["-p", "tcp", "--dport", "8080", "-s", "2001:db8::2/64", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "--dport", "8080", "-j", "DNAT", "--to-destination", "[2001:db8::2]:80"],
        ["-p", "tcp", "--dport", "8081", "-s", "2001:db8::2/64", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "--dport", "8081", "-j", "DNAT", "--to-destination", "[2001:db8::2]:80"],
        ["-p", "udp", "--dport", "8080", "-s", "2001:db8::2/64", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "udp", "--dport", "8080", "-j", "DNAT", "--to-destination", "[2001:db8::2]:81"],
        ["-p", "udp", "--dport", "8082", "-s", "2001:db8::2/64", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "udp", "--dport", "8082", "-j", "DNAT", "--to-destination", "[2001:db8::2]:82"],
        ["-p", "tcp", "--dport", "8085", "-d", "2001:db8:a::1", "-s", "2001:db8::2/64", "-j",
         "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "--dport", "8085", "-d", "2001:db8:a::1", "-j", "DNAT",
         "--to-destination", "[2001:db8::2]:85"],
        ["-p", "tcp", "--dport", "8086", "-s", "2001:db8::2/64", "-j", "CNI-HOSTPORT-SETMARK"],
        ["-p", "tcp", "--dport", "8086", "-j", "DNAT", "--to-destination", "[2001:db8::2]:86"],
    ], family=6)
    assert dnat_rules(PortMapConf(name="test"), sb) == want


def test_iptables_without_snat_only_dnats() -> None:
    want = _parse_rules("CNI-DN-x", [
        ["-p", "tcp", "--dport", "8080", "-j", "DNAT", "--to-destination", "10.0.0.2:80"],
        ["-p", "tcp", "--dport", "8081", "-j", "DNAT", "--to-destination", "10.0.0.2:80"],
        ["-p", "udp", "--dport", "8080", "-j", "DNAT", "--to-destination", "10.0.0.2:81"],
        ["-p", "udp", "--dport", "8082", "-j", "DNAT", "--to-destination", "10.0.0.2:82"],
        ["-p", "tcp", "--dport", "8083", "-d", "192.168.0.2", "-j", "DNAT",
         "--to-destination", "10.0.0.2:83"],
        ["-p", "tcp", "--dport", "8084", "-j", "DNAT", "--to-destination", "10.0.0.2:84"],
    ])
    assert dnat_rules(PortMapConf(name="test", snat=False), _sandbox("10.0.0.2/24")) == want


def test_iptables_external_set_mark_chain() -> None:
    sb = replace(_sandbox("10.0.0.2/24"), mappings=MAPPINGS[:1])
    want = _parse_rules("CNI-DN-x", [
        ["-p", "tcp", "--dport", "8080", "-s", "10.0.0.2/24", "-j", "PLZ-SET-MARK"],
        ["-p", "tcp", "--dport", "8080", "-s", "127.0.0.1", "-j", "PLZ-SET-MARK"],
        ["-p", "tcp", "--dport", "8080", "-j", "DNAT", "--to-destination", "10.0.0.2:80"],
    ])
    conf = PortMapConf(name="test", external_set_mark_chain="PLZ-SET-MARK")
    assert dnat_rules(conf, sb) == want


def test_iptables_top_level_and_mark_chains() -> None:
    rs = parse_iptables_save("\n".join([
        "*nat", ":PREROUTING ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]",
        ":CNI-HOSTPORT-DNAT - [0:0]", ":CNI-HOSTPORT-SETMARK - [0:0]",
        ":CNI-HOSTPORT-MASQ - [0:0]",
        "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
        '-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" '
        "-j CNI-HOSTPORT-MASQ",
        '-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" '
        "-j MARK --set-xmark 0x20/0x20",
        "-A CNI-HOSTPORT-MASQ -m mark --mark 0x20/0x20 -j MASQUERADE",
        "COMMIT", ""]))
    nat = rs.table("nat")
    assert nat is not None

    def rules(name: str) -> tuple[Rule, ...]:
        chain = nat.chain(name)
        assert chain is not None
        return chain.rules

    assert (toplevel_dnat_entry(),) == rules("PREROUTING")
    assert setmark_chain(5).rules == rules("CNI-HOSTPORT-SETMARK")
    assert masq_chain(5).rules == rules("CNI-HOSTPORT-MASQ")
    built = build_iptables(PortMapConf(mark_masq_bit=5), [_sandbox("10.0.0.2/24")])
    post = built.tables[0].chain("POSTROUTING")
    assert post is not None and post.rules == rules("POSTROUTING")


def test_mark_bit_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 31"):
        PortMapConf(mark_masq_bit=32)


# ----------------------------------------------------------------------------- nftables

NFT_V4 = """\
add table ip cni_hostport { comment "CNI portmap plugin" ; }
add chain ip cni_hostport hostip_hostports
add chain ip cni_hostport hostports
add chain ip cni_hostport hostports_all
add chain ip cni_hostport masquerading { type nat hook postrouting priority 100 ; }
add chain ip cni_hostport output { type nat hook output priority -100 ; }
add chain ip cni_hostport prerouting { type nat hook prerouting priority -100 ; }
add rule ip cni_hostport hostports tcp dport 8080 dnat to 10.0.0.2:80 comment "icee6giejonei6so"
add rule ip cni_hostport hostports tcp dport 8081 dnat to 10.0.0.2:80 comment "icee6giejonei6so"
add rule ip cni_hostport hostports udp dport 8080 dnat to 10.0.0.2:81 comment "icee6giejonei6so"
add rule ip cni_hostport hostports udp dport 8082 dnat to 10.0.0.2:82 comment "icee6giejonei6so"
add rule ip cni_hostport hostports ip daddr 192.168.0.2 tcp dport 8083 dnat to 10.0.0.2:83 \
comment "icee6giejonei6so"
add rule ip cni_hostport hostports tcp dport 8084 dnat to 10.0.0.2:84 comment "icee6giejonei6so"
add rule ip cni_hostport hostports_all jump hostip_hostports
add rule ip cni_hostport hostports_all jump hostports
add rule ip cni_hostport masquerading ip saddr 10.0.0.2 ip daddr 10.0.0.2 masquerade \
comment "icee6giejonei6so"
add rule ip cni_hostport masquerading ip saddr 127.0.0.1 ip daddr 10.0.0.2 masquerade \
comment "icee6giejonei6so"
add rule ip cni_hostport output fib daddr type local jump hostports_all
add rule ip cni_hostport prerouting fib daddr type local jump hostports_all
"""

NFT_V6_NO_SNAT = """\
add table ip6 cni_hostport { comment "CNI portmap plugin" ; }
add chain ip6 cni_hostport hostip_hostports
add chain ip6 cni_hostport hostports
add chain ip6 cni_hostport hostports_all
add chain ip6 cni_hostport output { type nat hook output priority -100 ; }
add chain ip6 cni_hostport prerouting { type nat hook prerouting priority -100 ; }
add rule ip6 cni_hostport hostports tcp dport 8080 dnat to [2001:db8::2]:80 \
comment "icee6giejonei6so"
add rule ip6 cni_hostport hostports tcp dport 8081 dnat to [2001:db8::2]:80 \
comment "icee6giejonei6so"
add rule ip6 cni_hostport hostports udp dport 8080 dnat to [2001:db8::2]:81 \
comment "icee6giejonei6so"
add rule ip6 cni_hostport hostports udp dport 8082 dnat to [2001:db8::2]:82 \
comment "icee6giejonei6so"
add rule ip6 cni_hostport hostports ip6 daddr 2001:db8:a::1 tcp dport 8085 \
dnat to [2001:db8::2]:85 comment "icee6giejonei6so"
add rule ip6 cni_hostport hostports tcp dport 8086 dnat to [2001:db8::2]:86 \
comment "icee6giejonei6so"
add rule ip6 cni_hostport hostports_all jump hostip_hostports
add rule ip6 cni_hostport hostports_all jump hostports
add rule ip6 cni_hostport output fib daddr type local jump hostports_all
add rule ip6 cni_hostport prerouting fib daddr type local jump hostports_all
"""


def _as_nft_lists(text: str) -> list[str]:
    """sourceip writes ``meta l4proto tcp th dport N``; nft (and knftables' fake) fold that
    into ``tcp dport N``: the one normalisation before comparing."""
    out = []
    for line in text.splitlines():
        for proto in ("tcp", "udp", "sctp"):
            line = line.replace(f"meta l4proto {proto} th dport", f"{proto} dport")
        out.append(line)
    return out


def test_nftables_table_matches_the_plugins_dump() -> None:
    got = render_nft(build_nftables(PortMapConf(name="test"),
                                    [_sandbox("10.0.0.2/24", NFT_CONTAINER_ID)]))
    assert _as_nft_lists(got) == NFT_V4.splitlines()


def test_nftables_ipv6_without_snat_matches_the_plugins_dump() -> None:
    got = render_nft(build_nftables(PortMapConf(name="test", snat=False),
                                    [_sandbox("2001:db8::2/64", NFT_CONTAINER_ID)],
                                    family="ip6"))
    assert _as_nft_lists(got) == NFT_V6_NO_SNAT.splitlines()


# ----------------------------------------------------------------------------- on a node


def _cluster(mode: str = "iptables"):  # type: ignore[no-untyped-def]
    c = load_example("hostnetwork")
    return c.with_(kube_proxy=replace(c.kube_proxy, mode=mode))


def test_no_hostport_no_rules() -> None:
    assert build_portmap_ruleset(load_example("design-table"), "node1", "iptables") is None


def test_merged_iptables_ruleset_renders_and_parses_back() -> None:
    c = _cluster()
    merged = merge_portmap(build_ruleset(c, "node1"),
                           build_portmap_ruleset(c, "node1", "iptables"))
    nat = merged.table("nat")
    assert nat is not None
    post = nat.chain("POSTROUTING")
    pre = nat.chain("PREROUTING")
    assert post is not None and pre is not None
    assert post.rules[0].actions == (Jump("CNI-HOSTPORT-MASQ"),)  # prepended
    assert pre.rules[0].actions == (Jump("KUBE-SERVICES"),)  # kube-proxy's first
    assert pre.rules[-1].actions == (Jump("CNI-HOSTPORT-DNAT"),)  # the plugin's appended
    assert parse_iptables_save(render(merged)) == merged


def test_load_text_is_noflush_input() -> None:
    text = render_portmap_load(build_portmap_ruleset(_cluster(), "node1", "iptables"))
    lines = text.splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    assert "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT" in lines
    assert any(ln.startswith("-I POSTROUTING 1 ") for ln in lines)
    assert not any(ln.startswith(":PREROUTING") for ln in lines)  # built-ins not redeclared


# Packet-flow table through kube-proxy's rules plus the plugin's on the example:
# (name, from, to, mode -> endpoint, what the pod sees)
FLOWS = [
    ("external client keeps its address", "external", "10.0.0.11:8080", "iptables",
     "10.244.1.10:80", "203.0.113.10"),
    ("a pod of the same node is masqueraded to the bridge (iptables: -s podIP/24)",
     "pod/default/client-node1", "10.0.0.11:8080", "iptables", "10.244.1.10:80",
     "10.244.1.1"),
    ("a pod of the same node keeps its address (nftables: only the pod itself)",
     "pod/default/client-node1", "10.0.0.11:8080", "nftables", "10.244.1.10:80",
     "10.244.1.20"),
    ("a pod of another node keeps its address", "pod/default/client-node2",
     "10.0.0.11:8080", "iptables", "10.244.1.10:80", "10.244.2.20"),
    ("hairpin is masqueraded", "pod/default/edge-node1", "10.0.0.11:8080", "iptables",
     "10.244.1.10:80", "10.244.1.1"),
    ("hairpin is masqueraded (nftables)", "pod/default/edge-node1", "10.0.0.11:8080",
     "nftables", "10.244.1.10:80", "10.244.1.1"),
    ("localhost is masqueraded", "node/node1", "127.0.0.1:8080", "iptables",
     "10.244.1.10:80", "10.244.1.1"),
    ("localhost is masqueraded (nftables)", "node/node1", "127.0.0.1:8080", "nftables",
     "10.244.1.10:80", "10.244.1.1"),
    ("the node itself is seen as its address", "node/node1", "10.0.0.11:8080", "iptables",
     "10.244.1.10:80", "10.0.0.11"),
    ("another node is seen as its address", "node/node2", "10.0.0.11:8080", "iptables",
     "10.244.1.10:80", "10.0.0.12"),
    ("udp: external client keeps its address", "external", "10.0.0.13:5353", "nftables",
     "10.244.3.10:53", "203.0.113.10"),
]


@pytest.mark.parametrize(("src", "dst", "mode", "endpoint", "seen"),
                         [f[1:] for f in FLOWS], ids=[f[0] for f in FLOWS])
def test_hostport_flows(src: str, dst: str, mode: str, endpoint: str, seen: str) -> None:
    proto = "udp" if dst.endswith(":5353") else "tcp"
    tr = Tracer(_cluster(mode)).trace(src, dst, proto=proto)
    assert [(o.disposition, o.endpoint, str(o.seen_source), o.reply_ok)
            for o in tr.outcomes] == [("delivered", endpoint, seen, True)]


def test_hostport_from_a_parsed_dump_traces_through_the_cni_chains() -> None:
    c = _cluster()
    dump = render(merge_portmap(build_ruleset(c, "node1"),
                                build_portmap_ruleset(c, "node1", "iptables")))
    tr = Tracer(c, rulesets={"node1": parse_iptables_save(dump)}).trace(
        "external", "10.0.0.11:8080")
    (o,) = tr.outcomes
    assert (o.disposition, o.endpoint, str(o.seen_source)) == \
        ("delivered", "10.244.1.10:80", "203.0.113.10")
    assert any(s.chain.startswith("CNI-DN-") for h in o.hops for s in h.steps)
