"""Packet flows through generated ipvs-mode rules (kube-proxy's runPacketFlowTests style: one
node's rules alone, source → destination → where it goes and whether it is masqueraded), for
the masquerade cases of kubeproxy_semantics.md §9, and multi-node traces of the design-table
cluster in ipvs mode."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from fractions import Fraction

import pytest
from ipvs_fixtures import cluster, eps, svc

from sourceip.dataplane.ipvs import IPVSEvaluator
from sourceip.dataplane.tracer import Tracer
from sourceip.sources import load_example

ip = ipaddress.ip_address
net = ipaddress.ip_network
NODE_IP = "100.101.102.103"
CIDR = (net("10.0.0.0/8"),)


def _svcs() -> list[object]:
    return [
        svc("svc1", "172.30.0.41", node_port=3001, type="NodePort"),
        svc("svc2", "172.30.0.42", node_port=3002, type="NodePort",
            external_traffic_policy="Local"),
        svc("svc3", "172.30.0.43", type="ClusterIP", external_ips=(ip("192.168.99.33"),)),
        svc("svc4", "172.30.0.44", type="ClusterIP", external_traffic_policy="Local",
            external_ips=(ip("192.168.99.44"),)),
        svc("svc5", "172.30.0.45", type="LoadBalancer", lb=("1.2.3.5",), node_port=3005,
            lb_source_ranges=(net("203.0.113.0/25"),)),
        svc("svc6", "172.30.0.46"),  # no endpoints
        svc("svc7", "172.30.0.47", session_affinity="ClientIP"),
    ]


def _slices() -> list[object]:
    local, other = ("10.180.0.1", "test-node"), ("10.180.1.1", "other-node")
    return [eps("svc1", local), eps("svc2", other), eps("svc3", local), eps("svc4", local),
            eps("svc5", local), eps("svc7", local, other)]


def _tracer(**cfg: object) -> Tracer:
    base: dict[str, object] = dict(cluster_cidrs=CIDR)
    base.update(cfg)
    c = cluster(_svcs(), _slices(), (NODE_IP,), **base)  # type: ignore[arg-type]
    c = c.with_(nodes=(*c.nodes, replace(c.nodes[0], name="other-node",
                                         internal_ips=(ip("100.101.102.104"),),
                                         pod_cidrs=(net("10.180.1.0/24"),))))
    return Tracer(c, c.kube_proxy)


# (name, src, dst, port, endpoint(s), masquerade); masquerade None: rejected/dropped
FLOWS = [
    ("pod to ClusterIP is not masqueraded", "10.180.0.2", "172.30.0.41", 80,
     "10.180.0.1:80", False),
    ("off-cluster source to ClusterIP is masqueraded", "3.4.5.6", "172.30.0.41", 80,
     "10.180.0.1:80", True),
    ("hairpin endpoint to its own ClusterIP is masqueraded (KUBE-LOOP-BACK)", "10.180.0.1",
     "172.30.0.41", 80, "10.180.0.1:80", True),
    ("external to NodePort (ETP Cluster) is masqueraded", "3.4.5.6", NODE_IP, 3001,
     "10.180.0.1:80", True),
    ("external to NodePort (ETP Local) is not masqueraded, even without a local endpoint "
     "(IPVS falls back to the cluster endpoints, PR 97081)", "3.4.5.6", NODE_IP, 3002,
     "10.180.1.1:80", False),
    ("pod to an externalIP (ETP Cluster) is masqueraded (KUBE-EXTERNAL-IP)", "10.180.0.2",
     "192.168.99.33", 80, "10.180.0.1:80", True),
    ("external to an externalIP (ETP Local) is not masqueraded (KUBE-EXTERNAL-IP-LOCAL)",
     "3.4.5.6", "192.168.99.44", 80, "10.180.0.1:80", False),
    ("LB IP from an allowed source is masqueraded (KUBE-LOAD-BALANCER)", "203.0.113.7",
     "1.2.3.5", 80, "10.180.0.1:80", True),
    ("LB IP from outside loadBalancerSourceRanges is dropped", "203.0.113.200", "1.2.3.5", 80,
     "dropped", None),
    ("ClusterIP without endpoints is rejected (ICMP port unreachable)", "10.180.0.2",
     "172.30.0.46", 80, "rejected", None),
    ("ClusterIP on a port without a Service is rejected (KUBE-IPVS-FILTER)", "10.180.0.2",
     "172.30.0.41", 81, "rejected", None),
]


@pytest.mark.parametrize(("name", "src", "dst", "port", "want", "masq"), FLOWS,
                         ids=[f[0] for f in FLOWS])
def test_flow(name: str, src: str, dst: str, port: int, want: str, masq: bool | None) -> None:
    t = _tracer().trace_node("test-node", src, dst, port)
    assert len(t.outcomes) == 1, str(t)
    (o,) = t.outcomes
    assert o.certain, str(t)
    if masq is None:
        assert o.disposition == want, str(t)
    else:
        assert (o.disposition, o.endpoint, o.masquerade) == ("delivered", want, masq), str(t)


PHYSDEV_RULE = "-m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT"
LOCAL_RULE = "KUBE-EXTERNAL-IP dst,dst -m addrtype --dst-type LOCAL -j ACCEPT"


def _accepted_by(t: object) -> list[str]:
    """The KUBE-SERVICES ACCEPT rule(s) that took each outcome's packet."""
    return [s.text for o in t.outcomes for h in o.hops  # type: ignore[attr-defined]
            for s in h.steps if s.chain == "KUBE-SERVICES" and s.kind == "accept"]


@pytest.mark.parametrize(("attach", "src", "want"), [
    # a pod on the bridge: entered through a bridge port, the physdev rule does not match;
    # the externalIP is on kube-ipvs0 (local): the dst-type LOCAL rule accepts
    ("bridge", "10.180.0.2", LOCAL_RULE),
    # an off-node client on the uplink: no bridge port, not a local source
    ("bridge", "3.4.5.6", PHYSDEV_RULE),
    ("routed", "3.4.5.6", PHYSDEV_RULE),
    # a pod on a routed CNI (its own veth, no bridge): "does not come from a bridge" holds
    # (kube-proxy's comment: "imperfect in the face of network plugins that might not use a
    # bridge")
    ("routed", "10.180.0.2", PHYSDEV_RULE),
    # the node itself (nat OUTPUT): no bridge info, but a LOCAL source
    ("bridge", NODE_IP, LOCAL_RULE),
])
def test_external_ip_physdev_decided(attach: str, src: str, want: str) -> None:
    """kube-proxy's externalIP ACCEPT rules (proxier.go externalIPRules, `-m physdev !
    --physdev-is-in`): the tracer knows whether the packet entered through a bridge port, so
    the trace is certain and the rule that accepts is the one the kernel picks."""
    tr = _tracer()
    c = tr.cluster.with_(profile=replace(tr.cluster.profile, pod_attach=attach))
    t = Tracer(c, c.kube_proxy).trace_node("test-node", src, "192.168.99.33", 80)
    assert len(t.outcomes) == 1 and t.outcomes[0].certain, str(t)
    assert (t.outcomes[0].endpoint, t.outcomes[0].masquerade) == ("10.180.0.1:80", True)
    (got,) = _accepted_by(t)
    assert got.endswith(want), got


def test_external_ip_physdev_unknown_interfaces_forks() -> None:
    """A node whose interfaces are not known (a standalone dump's stand-in): whether a
    received packet came through a bridge port is unknown, the rule forks (both worlds end the
    same here: the mark is set before, and the LOCAL rule accepts what the physdev rule does
    not); a packet the node sends has no bridge port: decided."""
    c = _tracer().cluster
    tr = Tracer(c, c.kube_proxy, interfaces_unknown=("test-node",))
    t = tr.trace_node("test-node", "3.4.5.6", "192.168.99.33", 80)
    assert {(o.endpoint, o.masquerade) for o in t.outcomes} == {("10.180.0.1:80", True)}
    assert not any(o.certain for o in t.outcomes), str(t)
    assert {a.undecided for o in t.outcomes for a in o.assumptions} == {
        ("-m physdev ! --physdev-is-in",)}
    t = tr.trace_node("test-node", NODE_IP, "192.168.99.33", 80)
    assert all(o.certain for o in t.outcomes), str(t)


# (kube-proxy settings, node, (seen source, masqueraded)): what the endpoint 10.244.1.10 (on
# node1, a bridge CNI with gateway 10.244.1.1) sees of a node's connection to its ClusterIP
NODE_TO_CLUSTER_IP = [
    ({}, "node1", ("10.244.1.1", True)),
    ({}, "node2", ("10.0.0.12", True)),
    ({"masquerade_all": True}, "node1", ("10.244.1.1", True)),
    # no local-traffic detector: iptables/nftables do not masquerade the node's own address,
    # ipvs masquerades the VIP source (KUBE-CLUSTER-IP src,dst, PR 63319)
    ({"cluster_cidrs": ()}, "node1", ("10.244.1.1", True)),
    ({"cluster_cidrs": ()}, "node2", ("10.0.0.12", True)),
]


@pytest.mark.parametrize(("cfg", "node", "want"), NODE_TO_CLUSTER_IP)
def test_node_to_cluster_ip_source_is_the_vip(cfg: dict[str, object], node: str,
                                               want: tuple[str, bool]) -> None:
    """A node's own connection to a ClusterIP: the VIP is a local address (kube-ipvs0), so the
    kernel picks the VIP itself as source (route.c, RTN_LOCAL: the route's prefsrc;
    kubernetes#63241); KUBE-SERVICES marks it (dst,dst ! -s clusterCIDR, masqueradeAll, or
    src,dst without a detector) and KUBE-POSTROUTING masquerades it to the egress address;
    the reply is un-NATed back to VIP -> VIP on the node."""
    c = load_example("design-table")
    c = c.with_(kube_proxy=replace(c.kube_proxy, mode="ipvs", **cfg))
    t = Tracer(c).trace(f"node/{node}", "svc/default/server")
    assert str(t.original.src) == "10.96.0.100" == str(t.original.dst), str(t)
    (o,) = t.outcomes
    assert o.certain and o.endpoint == "10.244.1.10:8080", str(t)
    assert (str(o.seen_source), o.masquerade) == want, str(t)
    assert o.reply_ok, o.reply
    steps = [s.text for h in o.hops for s in h.steps if s.chain == "KUBE-SERVICES"]
    assert any("KUBE-CLUSTER-IP" in x and "KUBE-MARK-MASQ" in x for x in steps), steps


def test_node_to_cluster_ip_unmasqueraded_vip_source_loses_the_reply() -> None:
    """Without the KUBE-CLUSTER-IP masquerade rule (a hand-edited or pre-63319 ruleset), the
    endpoint sees the VIP and replies to it; on a remote endpoint's node the VIP is local
    (its own kube-ipvs0), so the reply never comes back (kubernetes#63241)."""
    c = load_example("design-table")
    c = c.with_(kube_proxy=replace(c.kube_proxy, mode="ipvs"))
    tr = Tracer(c)
    ev = tr.evaluator("node2")
    rs = ev.ruleset
    nat = rs.table("nat")
    assert nat is not None
    chains = tuple(replace(ch, rules=tuple(r for r in ch.rules
                                           if "KUBE-CLUSTER-IP" not in str(r.matches)))
                   if ch.name == "KUBE-SERVICES" else ch for ch in nat.chains)
    tables = tuple(replace(t, chains=chains) if t.name == "nat" else t for t in rs.tables)
    assert isinstance(ev, IPVSEvaluator) and ev.ipsets is not None
    # node2 as a dump would give it: its ipvsadm table, ipsets and the edited rules
    tr = Tracer(c, rulesets={"node2": replace(rs, tables=tables)}, ipvs={"node2": ev.table},
                ipsets={"node2": ev.ipsets})
    (o,) = tr.trace("node/node2", "svc/default/server").outcomes
    assert (str(o.seen_source), o.masquerade) == ("10.96.0.100", False), str(o)
    assert o.reply_ok is False and "node1" in o.reply, o.reply


def test_masquerade_all_masquerades_pods() -> None:
    (o,) = _tracer(masquerade_all=True).trace_node("test-node", "10.180.0.2", "172.30.0.41",
                                                   80).outcomes
    assert o.masquerade


def test_no_detector_masquerades_vip_sources_only() -> None:
    tr = _tracer(cluster_cidrs=())
    (o,) = tr.trace_node("test-node", "3.4.5.6", "172.30.0.41", 80).outcomes
    assert not o.masquerade  # iptables/nftables would not either
    (o,) = tr.trace_node("test-node", "172.30.0.42", "172.30.0.41", 80).outcomes
    assert o.masquerade  # a VIP as source: KUBE-CLUSTER-IP src,dst


def test_affinity_and_shares() -> None:
    t = _tracer().trace_node("test-node", "10.180.0.2", "172.30.0.47", 80)
    assert [o.probability for o in t.outcomes] == [Fraction(1, 2)] * 2
    assert all(any("persistence" in n for n in o.notes) for o in t.outcomes)


@pytest.mark.parametrize(("sched", "note"), [("rr", False), ("lc", True)])
def test_scheduler_note(sched: str, note: bool) -> None:
    t = _tracer(ipvs_scheduler=sched).trace_node("test-node", "10.180.0.2", "172.30.0.47", 80)
    assert any("scheduler" in n for o in t.outcomes for n in o.notes) == note


def test_design_table_in_ipvs_mode() -> None:
    c = load_example("design-table")
    c = c.with_(kube_proxy=replace(c.kube_proxy, mode="ipvs"))
    tr = Tracer(c)
    want = {
        ("pod/default/client-node2", "svc/default/server"): ("10.244.2.20", False),
        ("pod/default/server", "svc/default/server"): ("10.244.1.1", True),
        ("external", "node/node2:30080"): ("10.0.0.12", True),
        ("external", "node/node1:30080"): ("10.244.1.1", True),
        ("external", "node/node1:30081"): ("203.0.113.10", False),
    }
    for (src, dst), (seen, masq) in want.items():
        (o,) = tr.trace(src, dst).outcomes
        assert (str(o.seen_source), o.masquerade, o.reply_ok) == (seen, masq, True), (src, dst)
    # ETP Local NodePort on a node without an endpoint: IPVS uses the remote endpoint, the
    # client's address is kept, and the reply leaves node1 without un-NAT: lost
    (o,) = tr.trace("external", "node/node2:30081").outcomes
    assert o.disposition == "delivered" and o.reply_ok is False
