"""Our rules against kube-proxy's own expected dumps (pkg/proxy/iptables/proxier_test.go).

Upstream compares after sorting chains, so chain order and declaration order are not fixed;
we compare per chain: the same chains in each table, and the same rules in the same order in
each chain. Built-in chains (our EnsureRule jump rules) are not in upstream's dumps."""

from __future__ import annotations

from iptables_helpers import FAKE_CFG, TEST_NODE, A, N, cluster, ep, per_chain, read_golden, slice_

from sourceip.cluster import LoadBalancerIngress, Service, ServicePort
from sourceip.kubeproxy.iptables import build_iptables_ruleset
from sourceip.netfilter.render_iptables import render_iptables


def _p80(**kw: object) -> tuple[ServicePort, ...]:
    return (ServicePort(port=80, name="p80", **kw),)  # type: ignore[arg-type]


def overall_cluster():  # type: ignore[no-untyped-def]
    """The services and EndpointSlices of TestOverallIPTablesRules."""
    services = (
        # ClusterIP service (makeTestService leaves the type unset)
        Service(namespace="ns1", name="svc1", cluster_ips=(A("172.30.0.41"),), ports=_p80(),
                type_set=False),
        # LoadBalancer with Local traffic policy
        Service(namespace="ns2", name="svc2", type="LoadBalancer",
                external_traffic_policy="Local", cluster_ips=(A("172.30.0.42"),),
                ports=_p80(node_port=3001), lb_ingress=(LoadBalancerIngress(ip=A("1.2.3.4")),),
                external_ips=(A("192.168.99.22"),), health_check_node_port=30000),
        # NodePort
        Service(namespace="ns3", name="svc3", type="NodePort", cluster_ips=(A("172.30.0.43"),),
                ports=_p80(node_port=3003)),
        # ExternalIP (type NodePort without a nodePort, as upstream wrote it)
        Service(namespace="ns4", name="svc4", type="NodePort", cluster_ips=(A("172.30.0.44"),),
                external_ips=(A("192.168.99.33"),), ports=_p80(target_port=80)),
        # LoadBalancer, Cluster policy, source ranges, session affinity
        Service(namespace="ns5", name="svc5", type="LoadBalancer",
                cluster_ips=(A("172.30.0.45"),), ports=_p80(node_port=3002),
                lb_ingress=(LoadBalancerIngress(ip=A("5.6.7.8")),), health_check_node_port=30000,
                lb_source_ranges=(N("203.0.113.0/25"),), session_affinity="ClientIP",
                affinity_timeout=10800),
        # ClusterIP with no endpoints
        Service(namespace="ns6", name="svc6", cluster_ips=(A("172.30.0.46"),),
                ports=_p80(target_port=80)),
    )
    slices = (
        slice_("ns1", "svc1", [ep("10.180.0.1")]),
        slice_("ns2", "svc2", [ep("10.180.0.2")]),  # no NodeName: not local
        slice_("ns3", "svc3", [ep("10.180.0.3")]),
        slice_("ns4", "svc4", [ep("10.180.0.4"), ep("10.180.0.5", "test-node")]),
        slice_("ns5", "svc5", [ep("10.180.0.3")]),
    )
    return cluster(services, slices)


def test_overall_iptables_rules() -> None:
    rs = build_iptables_ruleset(overall_cluster(), TEST_NODE, FAKE_CFG, random_fully=False)
    ours = per_chain(render_iptables(rs))
    expected = per_chain(read_golden("iptables_overall.txt"))
    assert set(ours) == {"filter", "nat"}
    for table in ("filter", "nat"):
        assert sorted(ours[table]) == sorted(expected[table]), table
        for chain, rules in expected[table].items():
            assert ours[table][chain] == rules, f"{table} {chain}"


def test_overall_builtin_jumps() -> None:
    """The EnsureRule jumps upstream's dump leaves out: each built-in chain reaches kube-proxy's
    chains exactly as iptablesJumpChains says (prepended, so in reverse list order)."""
    rs = build_iptables_ruleset(overall_cluster(), TEST_NODE, FAKE_CFG, random_fully=False)
    full = per_chain(render_iptables(rs), drop_builtin=False)
    assert full["nat"]["PREROUTING"] == [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'
    ]
    assert full["nat"]["POSTROUTING"] == [
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'
    ]
    assert [r.split("-j ")[-1] for r in full["filter"]["INPUT"]] == [
        "KUBE-PROXY-FIREWALL", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL",
    ]
    assert [r.split("-j ")[-1] for r in full["filter"]["FORWARD"]] == [
        "KUBE-PROXY-FIREWALL", "KUBE-FORWARD", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES",
    ]
    assert all("--ctstate NEW" in r for r in full["filter"]["OUTPUT"][:2])


def assert_same_chains(ours_text: str, golden: str) -> None:
    ours = per_chain(ours_text)
    expected = per_chain(read_golden(golden))
    for table in ("filter", "nat"):
        assert sorted(ours[table]) == sorted(expected[table]), table
        for chain, rules in expected[table].items():
            assert ours[table][chain] == rules, f"{table} {chain}"


def test_sync_proxy_rules_repeated_initial() -> None:
    """TestSyncProxyRulesRepeated, first (full) sync; that test's fake has no nfacct counters."""
    services = (
        Service(namespace="ns1", name="svc1", cluster_ips=(A("172.30.0.41"),), ports=_p80()),
        Service(namespace="ns2", name="svc2", cluster_ips=(A("172.30.0.42"),),
                ports=(ServicePort(port=8080, name="p8080"),)),
    )
    slices = (
        slice_("ns1", "svc1", [ep("10.0.1.1")]),
        slice_("ns2", "svc2", [ep("10.0.2.1")], port=8080, port_name="p8080"),
    )
    rs = build_iptables_ruleset(cluster(services, slices), TEST_NODE, FAKE_CFG,
                                random_fully=False, nfacct=False)
    assert_same_chains(render_iptables(rs), "iptables_sync_repeated_initial.txt")
