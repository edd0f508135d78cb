"""IPv6 and dual-stack traces (issue #12): the design table of docs/architecture.md, in IPv6, on
the built-in ``dual-stack`` example — each family through its own proxier's rules
(``build_ruleset(..., family=6)``), IPv6 routing per CNI profile, and MASQUERADE picking the
egress interface's IPv6 address (the bridge's IPv6 gateway, the node's IPv6 address on a routed
veth, the flannel-v6.1 tunnel address on an overlay)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sourceip.cluster import Cluster
from sourceip.dataplane.topology import Topology
from sourceip.dataplane.tracer import Tracer, parse_source, parse_target
from sourceip.errors import TraceError, ValidationError
from sourceip.sources import load_example

EXTERNAL6 = "2001:db8:5::7"
SERVER6 = "[fd00:10:244:1::10]:8080"


def dual_stack(*, attach: str = "bridge", inter: str = "direct", mode: str = "iptables"
               ) -> Cluster:
    c = load_example("dual-stack")
    return c.with_(profile=replace(c.profile, pod_attach=attach, inter_node=inter),
                   kube_proxy=replace(c.kube_proxy, mode=mode))


# (path id, from, to, {profile: expected IPv6 seen source, None: dropped})
TABLE6 = [
    ("pod on node1 -> IPv6 ClusterIP", "pod/client-node1", "[fd00:10:96::100]:80",
     {"bridge": "fd00:10:244:1::20", "routed": "fd00:10:244:1::20",
      "tunnel": "fd00:10:244:1::20", "routed-tunnel": "fd00:10:244:1::20"}),
    ("pod on node2 -> IPv6 ClusterIP", "pod/client-node2", "[fd00:10:96::100]:80",
     {"bridge": "fd00:10:244:2::20", "routed": "fd00:10:244:2::20",
      "tunnel": "fd00:10:244:2::20", "routed-tunnel": "fd00:10:244:2::20"}),
    ("external -> node2 IPv6 NodePort, no pod on node2", f"external=[{EXTERNAL6}]",
     "[fd00:10::12]:30080",
     {"bridge": "fd00:10::12", "routed": "fd00:10::12", "tunnel": "fd00:10:244:2::",
      "routed-tunnel": "fd00:10:244:2::"}),
    ("external -> node1 IPv6 NodePort, pod on node1", f"external=[{EXTERNAL6}]",
     "[fd00:10::11]:30080",
     {"bridge": "fd00:10:244:1::1", "routed": "fd00:10::11", "tunnel": "fd00:10:244:1::1",
      "routed-tunnel": "fd00:10:244:1::"}),
    ("external -> node1 IPv6 NodePort, ETP Local", f"external=[{EXTERNAL6}]",
     "[fd00:10::11]:30081", {"bridge": EXTERNAL6, "routed": EXTERNAL6, "tunnel": EXTERNAL6,
                             "routed-tunnel": EXTERNAL6}),
    ("external -> node2 IPv6 NodePort, ETP Local", f"external=[{EXTERNAL6}]",
     "[fd00:10::12]:30081", {"bridge": None, "routed": None, "tunnel": None,
                             "routed-tunnel": None}),
    ("server pod -> its own IPv6 ClusterIP (hairpin)", "pod/server", "[fd00:10:96::100]:80",
     {"bridge": "fd00:10:244:1::1", "routed": "fd00:10::11", "tunnel": "fd00:10:244:1::1",
      "routed-tunnel": "fd00:10:244:1::"}),
]
# routed-tunnel: a routed pod's host veth has no global IPv6 address, so the kernel picks the
# node address sharing the longest prefix with the pod (RFC 6724 rule 8): the tunnel's
# fd00:10:244:1:: — measured in the lab (tests/lab/test_dual_stack_lab.py)
PROFILES = {"bridge": ("bridge", "direct"), "routed": ("routed", "direct"),
            "tunnel": ("bridge", "tunnel"), "routed-tunnel": ("routed", "tunnel")}


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize(("path", "src", "dst", "expected"), TABLE6, ids=[r[0] for r in TABLE6])
def test_ipv6_design_table(mode: str, profile: str, path: str, src: str, dst: str,
                           expected: dict[str, str | None]) -> None:
    attach, inter = PROFILES[profile]
    trace = Tracer(dual_stack(attach=attach, inter=inter, mode=mode)).trace(src, dst)
    (o,) = trace.outcomes
    assert trace.original.src.version == 6
    want = expected[profile]
    if want is None:
        assert o.disposition == "dropped", str(trace)
        return
    assert o.disposition == "delivered", str(trace)
    assert o.endpoint == SERVER6
    assert str(o.seen_source) == want, str(trace)
    assert o.reply_ok, o.reply


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_ipv6_packets_meet_the_ip6_ruleset(mode: str) -> None:
    trace = Tracer(dual_stack(mode=mode)).trace("pod/client-node2", "[fd00:10:96::100]:80")
    steps = [s for h in trace.outcomes[0].hops for s in h.steps]
    assert steps and {s.family for s in steps} == {"ip6"}
    if mode == "iptables":  # nftables matches the ClusterIP through its service-ips map
        assert any("-d fd00:10:96::100" in s.text for s in steps)


def test_a_svc_target_takes_the_family_asked_for_or_the_primary() -> None:
    t = Tracer(dual_stack())
    assert str(t.target("svc/default/server")[0]) == "10.96.0.100"
    assert str(t.target("svc/default/server", family=6)[0]) == "fd00:10:96::100"
    # IPv6 first in ipFamilies: the primary ClusterIP is the IPv6 one
    assert str(t.target("svc/default/server-local")[0]) == "fd00:10:96::101"
    assert str(t.target("node/node2:30080", family=6)[0]) == "fd00:10::12"
    # a pod client starts from its address of the destination's family
    (o,) = t.trace("pod/client-node2", "svc/default/server", family=6).outcomes
    assert str(o.seen_source) == "fd00:10:244:2::20"
    # an external=IPv6 client picks the Service's IPv6 ClusterIP
    tr = t.trace(f"external=[{EXTERNAL6}]", "node/node1:30081")
    assert str(tr.original.dst) == "fd00:10::11"


def test_an_ipv4_only_service_has_no_ipv6_path() -> None:
    t = Tracer(dual_stack())
    with pytest.raises(TraceError, match="has no IPv6 ClusterIP .*no IPv6 path"):
        t.trace("pod/client-node2", "svc/default/server-v4", family=6)
    # its IPv4 ClusterIP answers IPv4 clients
    (o,) = t.trace("pod/client-node2", "svc/default/server-v4").outcomes
    assert o.disposition == "delivered" and str(o.seen_source) == "10.244.2.20"
    # and nothing of kube-proxy's IPv6 rules matches an IPv6 packet to a made-up address
    (o,) = t.trace("pod/client-node2", "[fd00:10:96::102]:80").outcomes
    assert o.disposition == "passed"


def test_families_never_mix() -> None:
    t = Tracer(dual_stack())
    with pytest.raises(ValidationError, match="different IP families"):
        t.trace("external=192.0.2.9", "[fd00:10::11]:30080")
    with pytest.raises(ValidationError, match="different IP families"):
        t.trace(f"external=[{EXTERNAL6}]", "10.0.0.11:30080")


def test_an_ipv4_only_cluster_has_no_ipv6_path() -> None:
    t = Tracer(load_example("design-table"))
    with pytest.raises(TraceError, match="no node has an IPv6 address"):
        t.trace("external", "[2001:db8::1]:80")
    with pytest.raises(TraceError, match="pod default/client-node1 has no IPv6 address"):
        t.trace("pod/default/client-node1", "[fd00::1]:80")


def test_ipv6_topology_per_profile() -> None:
    topo = Topology(dual_stack(inter="tunnel"))
    n1 = topo.net("node1", 6)
    assert str(n1.ip) == "fd00:10::11" and str(n1.gateway) == "fd00:10:244:1::1"
    assert n1.tunnel_device == "flannel-v6.1" and str(n1.tunnel_addr) == "fd00:10:244:1::"
    assert topo.net("node1", 4).tunnel_device == "flannel.1"
    r = topo.route("node2", n1.gateway + 9)  # a pod of node1, seen from node2
    assert (r.kind, r.next_node, r.oif, str(r.src)) == ("node", "node1", "flannel-v6.1",
                                                        "fd00:10:244:2::")
    assert topo.is_local("node1", n1.gateway) and topo.is_local("node1", n1.ip)
    routed = Topology(dual_stack(attach="routed"))
    r = routed.route("node1", n1.gateway + 9)
    assert r.kind == "pod" and str(r.src) == "fd00:10::11"  # the node's own address
    assert routed.local_set("node1").__contains__(n1.ip)


def test_ipv6_spec_syntax() -> None:
    assert parse_target("[fd00::1]:80")[2:] == ("80", parse_target("[fd00::1]:80")[3])
    assert str(parse_target("[fd00::1]:80")[3]) == "fd00::1"
    assert str(parse_source("external=[2001:db8::1]")[2]) == "2001:db8::1"
    assert str(parse_source("external=2001:db8::1")[2]) == "2001:db8::1"
    with pytest.raises(ValidationError, match=r"write an IPv6 address as \[ADDR\]:PORT"):
        parse_target("fd00::1:80")


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_one_node_ipv6_flows(mode: str) -> None:
    """kube-proxy's packet-flow form (one node's rules alone) for IPv6, as in TestNodePorts'
    ipv6 cases: an external client to the node's IPv6 NodePort is DNATed and masqueraded; to
    ``::1`` it is not a NodePort (kube-proxy installs no localhost NodePorts for IPv6)."""
    t = Tracer(dual_stack(mode=mode))
    (o,) = t.trace_node("node2", EXTERNAL6, "fd00:10::12", 30080).outcomes
    assert o.disposition == "delivered" and o.endpoint == SERVER6 and o.masquerade
    (o,) = t.trace_node("node2", "::1", "::1", 30080).outcomes
    assert o.disposition == "passed" and not o.masquerade
    (o,) = t.trace_node("node1", "fd00:10:244:2::20", "fd00:10:96::100", 80).outcomes
    assert o.disposition == "delivered" and not o.masquerade
