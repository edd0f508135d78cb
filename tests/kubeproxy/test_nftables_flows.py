"""Packet-flow tests for the nftables ruleset, after upstream's ``runPacketFlowTests``.

A small tracer in this file walks our IR the way upstream's ``nftablesTracer`` (helpers_test.go)
walks knftables' fake: filter-prerouting-pre-dnat (firewall), nat-prerouting (DNAT, every
``numgen`` branch explored), filter-input or filter-forward (no-endpoint and cluster-ips checks),
nat-postrouting (masquerade). Each case is a row ``(name, src, dst, port → output, masq)`` and
reproduces the masquerade table of kubeproxy_semantics.md §3 and upstream's expectations
(TestClusterIPGeneral, TestLoadBalancer, TestNodePorts, TestExternalTrafficPolicyLocal/Cluster,
TestNoEndpointsReject at 81810de6). The real evaluator lives in ``netfilter`` (another
module); this one only proves the rules say what upstream's tests say.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Any

import pytest
from test_nftables_fixtures import (
    TEST_EXTERNAL_IP,
    TEST_NODE,
    TEST_NODE_IP,
    TEST_NODE_IP_ALT,
    ep,
    eps,
    fake_cluster,
    svc,
)

from sourceip.cluster import Cluster
from sourceip.kubeproxy.nftables import build_nftables_ruleset
from sourceip.netfilter.ir import (
    Accept,
    Addr,
    AddrType,
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
    NumgenVmap,
    Port,
    Proto,
    Reject,
    Return,
    Rule,
    SetLookup,
    SetUpdate,
    Table,
    Vmap,
)

ip = ipaddress.ip_address
net = ipaddress.ip_network
LOCAL_IPS = {ip(a) for a in (TEST_NODE_IP, TEST_NODE_IP_ALT, TEST_EXTERNAL_IP, "127.0.0.1")}
EXTERNAL_CLIENT = "203.0.113.2"
EXTERNAL_CLIENT_BLOCKED = "203.0.113.130"


@dataclass
class Pkt:
    src: Any
    dst: Any
    dport: int
    proto: str = "tcp"
    iif: str = "eth0"
    mark: int = 0
    masq: bool = False
    dnat: str = ""


class Tracer:
    def __init__(self, table: Table) -> None:
        self.chains = {c.name: c for c in table.chains}
        self.sets: dict[str, dict[tuple[object, ...], object]] = {
            s.name: {e.key: e.value for e in s.elements} for s in table.sets}

    def key(self, expr: str, p: Pkt) -> object:
        return {"ip saddr": p.src, "ip daddr": p.dst, "ip6 saddr": p.src, "ip6 daddr": p.dst,
                "meta l4proto": p.proto, "th dport": p.dport}[expr]

    def matches(self, m: object, p: Pkt) -> bool:
        if isinstance(m, Proto):
            ok = p.proto == m.proto
        elif isinstance(m, Addr):
            a = p.src if m.field == "src" else p.dst
            ok = any(a == n if not hasattr(n, "prefixlen") else a in n for n in m.nets)
        elif isinstance(m, Port):
            ok = p.dport in m.ports
        elif isinstance(m, Iface):
            ok = (p.iif.startswith(m.name[:-1]) if m.name.endswith("+") else p.iif == m.name)
        elif isinstance(m, AddrType):
            ok = (p.src if m.field == "src" else p.dst) in LOCAL_IPS
        elif isinstance(m, Mark):
            ok = (p.mark & m.mask) == m.value
        elif isinstance(m, CtState):
            ok = "NEW" in m.states
        elif isinstance(m, SetLookup):
            ok = tuple(self.key(k, p) for k in m.keys) in self.sets[m.set_name]
        else:
            raise AssertionError(f"tracer cannot evaluate {m!r}")
        return ok != getattr(m, "negate", False)

    def run(self, chain: str, p: Pkt) -> list[tuple[str, Pkt]]:
        """Every outcome of running ``chain``: (verdict, packet) with verdict one of
        ``continue`` (fell off / returned), ``accept``, ``drop``, ``reject``."""
        return self._rules(list(self.chains[chain].rules), p)

    def _rules(self, rules: list[Rule], p: Pkt) -> list[tuple[str, Pkt]]:
        for i, rule in enumerate(rules):
            if not all(self.matches(m, p) for m in rule.matches):
                continue
            outs = self._actions(list(rule.actions), p)
            results: list[tuple[str, Pkt]] = []
            for verdict, q in outs:
                if verdict == "next":
                    results.extend(self._rules(rules[i + 1:], q))
                else:
                    results.append((verdict, q))
            return results
        return [("continue", p)]

    def _verdict(self, v: object, p: Pkt) -> list[tuple[str, Pkt]]:
        if isinstance(v, Jump):
            return [("next" if r == "continue" else r, q) for r, q in self.run(v.chain, p)]
        if isinstance(v, Goto):
            return [("continue" if r == "continue" else r, q) for r, q in self.run(v.chain, p)]
        if isinstance(v, Return):
            return [("continue", p)]
        if isinstance(v, Accept):
            return [("accept", p)]
        if isinstance(v, Drop):
            return [("drop", p)]
        if isinstance(v, Reject):
            return [("reject", p)]
        raise AssertionError(f"not a verdict: {v!r}")

    def _actions(self, actions: list[Any], p: Pkt) -> list[tuple[str, Pkt]]:
        if not actions:
            return [("next", p)]
        a, rest = actions[0], actions[1:]
        if isinstance(a, MarkSet):
            value = {"or": p.mark | a.value, "xor": p.mark ^ a.value,
                     "and": p.mark & a.value, "set": a.value}[a.op]
            return self._actions(rest, replace(p, mark=value))
        if isinstance(a, Masquerade):
            return [("accept", replace(p, masq=True))]
        if isinstance(a, Dnat):
            return [("accept", replace(p, dst=a.addr, dport=a.port or p.dport,
                                       dnat=f"{a.addr}:{a.port}"))]
        if isinstance(a, SetUpdate | Counter):
            return self._actions(rest, p)
        if isinstance(a, Vmap):
            verdict = self.sets[a.map_name].get(tuple(self.key(k, p) for k in a.keys))
            if verdict is None:
                return self._actions(rest, p)
            return self._verdict(verdict, p)
        if isinstance(a, NumgenVmap):
            out: list[tuple[str, Pkt]] = []
            for t in a.targets:
                out.extend(self._verdict(t, p))
            return out
        return self._verdict(a, p)


def trace(cluster: Cluster, src: str, dst: str, dport: int, proto: str = "tcp",
          iif: str = "eth0") -> tuple[str, bool | None]:
    """upstream's tracePacket: ``output`` (endpoints ``ip:port, ...``, ``DROP``, ``REJECT`` or
    ``""``) and whether the packet was masqueraded (None when it did not get through)."""
    rs = build_nftables_ruleset(cluster, cluster.node(TEST_NODE), cluster.kube_proxy)
    t = Tracer(rs.tables[0])
    p = Pkt(ip(src), ip(dst), dport, proto, iif)
    endpoints: list[str] = []
    masqs: set[bool] = set()
    for v, q in t.run("filter-prerouting-pre-dnat", p):
        if v == "drop":
            return "DROP", None
        for _v2, q2 in t.run("nat-prerouting", q):
            hook = "filter-input" if q2.dst in LOCAL_IPS else "filter-forward"
            results = t.run(hook, q2)
            if any(r == "drop" for r, _ in results):
                return "DROP", None
            if any(r == "reject" for r, _ in results):
                return "REJECT", None
            for _, q3 in t.run("nat-postrouting", q2):
                if q3.dnat:
                    endpoints.append(q3.dnat)
                    masqs.add(q3.masq)
    if not endpoints:
        return "", None
    assert len(masqs) == 1, f"branches disagree on masquerading: {masqs}"
    return ", ".join(sorted(set(endpoints), key=endpoints.index)), masqs.pop()


def lb_cluster(**kw: Any) -> Cluster:
    """The service of upstream's TestExternalTrafficPolicyLocal/Cluster: LoadBalancer ns1/svc1
    172.30.0.41:80, nodePort 3001, externalIP 192.168.99.11, LB IP 1.2.3.4; endpoints
    10.180.0.1 (remote) and 10.180.2.1 (local)."""
    etp = kw.pop("etp", "Cluster")
    itp = kw.pop("itp", "Cluster")
    endpoints = kw.pop("endpoints", (ep("10.180.0.1"), ep("10.180.2.1", TEST_NODE)))
    services = [svc("ns1", "svc1", "172.30.0.41", type="LoadBalancer", node_port=3001,
                    lb=("1.2.3.4",), external_ips=(ip("192.168.99.11"),),
                    external_traffic_policy=etp, internal_traffic_policy=itp,
                    lb_source_ranges=kw.pop("ranges", ()))]
    slices = [eps("ns1", "svc1", *endpoints)] if endpoints else []
    return fake_cluster(services, slices, **kw)


BOTH = "10.180.0.1:80, 10.180.2.1:80"
LOCAL = "10.180.2.1:80"

# (name, cluster kwargs, src, dst, port, output, masq)
FLOWS: list[tuple[str, dict[str, Any], str, str, int, str, bool | None]] = [
    # §3 row 1-2 (ClusterIP), TestExternalTrafficPolicyLocal/Cluster
    ("pod to ClusterIP is not masqueraded", {}, "10.0.0.2", "172.30.0.41", 80, BOTH, False),
    ("node to ClusterIP is masqueraded", {}, TEST_NODE_IP, "172.30.0.41", 80, BOTH, True),
    ("external to ClusterIP is masqueraded", {}, EXTERNAL_CLIENT, "172.30.0.41", 80, BOTH,
     True),
    ("pod to ClusterIP with masqueradeAll is masqueraded", {"masquerade_all": True},
     "10.0.0.2", "172.30.0.41", 80, BOTH, True),
    ("node to ClusterIP with the NoOp detector is not masqueraded", {"cluster_cidrs": ()},
     TEST_NODE_IP, "172.30.0.41", 80, BOTH, False),
    ("pod to ClusterIP, bridge detector, from the bridge: no masq",
     {"detect_local_mode": "BridgeInterface", "bridge_interface": "eth0"},
     "10.0.0.2", "172.30.0.41", 80, BOTH, False),
    ("pod to ClusterIP, prefix detector, not from veth*: masq",
     {"detect_local_mode": "InterfaceNamePrefix", "interface_name_prefix": "veth"},
     "10.0.0.2", "172.30.0.41", 80, BOTH, True),
    # §3 row 3: hairpin
    ("hairpin: endpoint to its own ClusterIP is masqueraded",
     {"endpoints": (ep("10.180.0.1"),)}, "10.180.0.1", "172.30.0.41", 80, "10.180.0.1:80",
     True),
    # §3 row 4: ETP Cluster, external destinations always masqueraded, pods included
    ("ETP Cluster: pod to externalIP is masqueraded", {}, "10.0.0.2", "192.168.99.11", 80,
     BOTH, True),
    ("ETP Cluster: external to LB IP is masqueraded", {}, EXTERNAL_CLIENT, "1.2.3.4", 80,
     BOTH, True),
    ("ETP Cluster: external to NodePort is masqueraded", {}, EXTERNAL_CLIENT, TEST_NODE_IP,
     3001, BOTH, True),
    ("ETP Cluster: pod to NodePort is masqueraded", {}, "10.0.0.2", TEST_NODE_IP, 3001, BOTH,
     True),
    # §3 rows 5-7: ETP Local
    ("ETP Local: pod to LB IP short-circuits to all endpoints, unmasqueraded",
     {"etp": "Local"}, "10.0.0.2", "1.2.3.4", 80, BOTH, False),
    ("ETP Local: pod to NodePort short-circuits, unmasqueraded", {"etp": "Local"},
     "10.0.0.2", TEST_NODE_IP, 3001, BOTH, False),
    ("ETP Local: node to NodePort is masqueraded and reaches all endpoints",
     {"etp": "Local"}, TEST_NODE_IP, TEST_NODE_IP, 3001, BOTH, True),
    ("ETP Local: external to LB IP reaches only the local endpoint, unmasqueraded",
     {"etp": "Local"}, EXTERNAL_CLIENT, "1.2.3.4", 80, LOCAL, False),
    ("ETP Local: external to externalIP reaches only the local endpoint", {"etp": "Local"},
     EXTERNAL_CLIENT, "192.168.99.11", 80, LOCAL, False),
    ("ETP Local: external to NodePort reaches only the local endpoint", {"etp": "Local"},
     EXTERNAL_CLIENT, TEST_NODE_IP, 3001, LOCAL, False),
    ("ETP Local with masqueradeAll: external to NodePort stays unmasqueraded",
     {"etp": "Local", "masquerade_all": True}, EXTERNAL_CLIENT, TEST_NODE_IP, 3001, LOCAL,
     False),
    ("ETP Local without local endpoints: external to NodePort is dropped",
     {"etp": "Local", "endpoints": (ep("10.180.0.1"),)}, EXTERNAL_CLIENT, TEST_NODE_IP, 3001,
     "DROP", None),
    ("ETP Local without local endpoints: pod to LB IP still reaches the remote one",
     {"etp": "Local", "endpoints": (ep("10.180.0.1"),)}, "10.0.0.2", "1.2.3.4", 80,
     "10.180.0.1:80", False),
    ("ETP Local, NoOp detector: pod to LB IP reaches only the local endpoint",
     {"etp": "Local", "cluster_cidrs": ()}, "10.0.0.2", "1.2.3.4", 80, LOCAL, False),
    # ITP Local (§4): narrows endpoints, never changes masquerading
    ("ITP Local: node to ClusterIP reaches the local endpoint, masqueraded", {"itp": "Local"},
     TEST_NODE_IP, "172.30.0.41", 80, LOCAL, True),
    ("ITP Local without local endpoints: pod to ClusterIP is dropped",
     {"itp": "Local", "endpoints": (ep("10.180.0.1"),)}, "10.0.0.2", "172.30.0.41", 80,
     "DROP", None),
    ("ITP Local without local endpoints: external to NodePort still works",
     {"itp": "Local", "endpoints": (ep("10.180.0.1"),)}, EXTERNAL_CLIENT, TEST_NODE_IP, 3001,
     "10.180.0.1:80", True),
    # loadBalancerSourceRanges (TestLoadBalancer)
    ("source ranges: accepted external to LB IP", {"ranges": (net("203.0.113.0/25"),)},
     EXTERNAL_CLIENT, "1.2.3.4", 80, BOTH, True),
    ("source ranges: blocked external to LB IP", {"ranges": (net("203.0.113.0/25"),)},
     EXTERNAL_CLIENT_BLOCKED, "1.2.3.4", 80, "DROP", None),
    ("source ranges: pod to LB IP is blocked", {"ranges": (net("203.0.113.0/25"),)},
     "10.0.0.2", "1.2.3.4", 80, "DROP", None),
    ("source ranges: NodePort bypasses them", {"ranges": (net("203.0.113.0/25"),)},
     EXTERNAL_CLIENT_BLOCKED, TEST_NODE_IP, 3001, BOTH, True),
    ("source ranges with the node IP: node to LB IP allowed",
     {"ranges": (net("192.168.0.0/24"), net("203.0.113.0/25"))}, TEST_NODE_IP, "1.2.3.4", 80,
     BOTH, True),
    ("source ranges with the node IP: LB IP as source allowed",
     {"ranges": (net("192.168.0.0/24"), net("203.0.113.0/25"))}, "1.2.3.4", "1.2.3.4", 80,
     BOTH, True),
    ("source ranges without the node IP: LB IP as source blocked",
     {"ranges": (net("203.0.113.0/25"),)}, "1.2.3.4", "1.2.3.4", 80, "DROP", None),
    # no endpoints (TestNoEndpointsReject) and cluster-ips-check (TestClusterIPGeneral)
    ("no endpoints: pod to ClusterIP is rejected", {"endpoints": ()}, "10.0.0.2",
     "172.30.0.41", 80, "REJECT", None),
    ("no endpoints: external to externalIP is rejected", {"endpoints": ()}, EXTERNAL_CLIENT,
     "192.168.99.11", 80, "REJECT", None),
    ("no endpoints: external to NodePort is rejected", {"endpoints": ()}, EXTERNAL_CLIENT,
     TEST_NODE_IP, 3001, "REJECT", None),
    ("no endpoints: pod to LB IP is rejected", {"endpoints": ()}, "10.0.0.2", "1.2.3.4", 80,
     "REJECT", None),
    ("ClusterIP on a port with no service is rejected", {}, "10.0.0.2", "172.30.0.41", 443,
     "REJECT", None),
    ("unallocated ClusterIP is dropped", {}, "10.0.0.2", "172.30.0.50", 80, "DROP", None),
    # nodePortAddresses (TestNodePorts)
    ("secondary node IP ignores NodePorts by default", {}, EXTERNAL_CLIENT, TEST_NODE_IP_ALT,
     3001, "", None),
    ("secondary node IP takes NodePorts when listed",
     {"node_port_addresses": ("192.168.0.0/24", "192.168.1.0/24", "2001:db8::/64")},
     EXTERNAL_CLIENT, TEST_NODE_IP_ALT, 3001, BOTH, True),
    ("match-all nodePortAddresses: any local IP takes NodePorts",
     {"node_port_addresses": ("0.0.0.0/0",)}, EXTERNAL_CLIENT, TEST_EXTERNAL_IP, 3001, BOTH,
     True),
    ("match-all nodePortAddresses: no localhost NodePorts",
     {"node_port_addresses": ("0.0.0.0/0",)}, "127.0.0.1", "127.0.0.1", 3001, "", None),
]


@pytest.mark.parametrize(("name", "kw", "src", "dst", "port", "output", "masq"), FLOWS,
                         ids=[f[0] for f in FLOWS])
def test_flow(name: str, kw: dict[str, Any], src: str, dst: str, port: int, output: str,
              masq: bool | None) -> None:
    got = trace(lb_cluster(**kw), src, dst, port)
    assert got == (output, masq), f"{name}: got {got}"


def test_affinity_rules_follow_the_client() -> None:
    """ClientIP affinity: a client already in an endpoint's affinity set goes to that endpoint
    only (the tracer's sets are the rendered ones, so pre-seed one)."""
    services = [svc("ns1", "svc1", "172.30.0.41", session_affinity="ClientIP")]
    cluster = fake_cluster(services, [eps("ns1", "svc1", ep("10.180.0.1"), ep("10.180.0.2"))])
    rs = build_nftables_ruleset(cluster, cluster.node(TEST_NODE), cluster.kube_proxy)
    t = Tracer(rs.tables[0])
    aff = next(n for n in t.sets if n.startswith("affinity-") and "10.180.0.2" in n)
    t.sets[aff][(ip("10.0.0.2"),)] = None
    outs = t.run("nat-prerouting", Pkt(ip("10.0.0.2"), ip("172.30.0.41"), 80))
    assert {q.dnat for _, q in outs} == {"10.180.0.2:80"}
    outs = t.run("nat-prerouting", Pkt(ip("10.0.0.3"), ip("172.30.0.41"), 80))
    assert {q.dnat for _, q in outs} == {"10.180.0.1:80", "10.180.0.2:80"}


def test_terminating_fallback() -> None:
    """No ready endpoint anywhere: serving+terminating ones are used; non-serving never."""
    services = [svc("ns1", "svc1", "172.30.0.41")]
    slices = [eps("ns1", "svc1",
                  ep("10.180.0.1", TEST_NODE, ready=False, serving=True, terminating=True),
                  ep("10.180.0.2", "n2", ready=False, serving=False, terminating=True))]
    assert trace(fake_cluster(services, slices), "10.0.0.2", "172.30.0.41", 80) == (
        "10.180.0.1:80", False)
    slices = [eps("ns1", "svc1",
                  ep("10.180.0.1", TEST_NODE, ready=False, serving=True, terminating=True),
                  ep("10.180.0.3", "n2"))]
    assert trace(fake_cluster(services, slices), "10.0.0.2", "172.30.0.41", 80) == (
        "10.180.0.3:80", False)
