"""Every built-in example loads, is self-consistent, and says what it promises."""

from __future__ import annotations

import ipaddress

import pytest

from sourceip.cluster import categorize_endpoints, service_port_endpoints
from sourceip.errors import LookupFailed
from sourceip.sources import example_text, list_examples, load_example
from sourceip.sources.convert import DEFAULT_NODE_PORT_RANGE

NAMES = [name for name, _ in list_examples()]


def test_the_promised_examples_exist_with_descriptions() -> None:
    assert {"seed", "seed-local", "loadbalancer", "routed", "design-table"} <= set(NAMES)
    for name, desc in list_examples():
        assert desc, f"{name} has no description comment"
        assert example_text(name).startswith("# ")


@pytest.mark.parametrize("name", NAMES)
def test_example_loads_and_is_consistent(name: str) -> None:
    c = load_example(name)
    # an example of direct paths (hostNetwork / hostPort pods) needs no Service
    assert c.nodes and c.pods and (c.services or any(
        p.host_network or any(cp.host_port for cp in p.ports) for p in c.pods))
    lo, hi = DEFAULT_NODE_PORT_RANGE
    for svc in c.services:
        for p in svc.ports:
            assert p.node_port is None or lo <= p.node_port <= hi
        for ip in svc.cluster_ips:
            assert any(ip in cidr for cidr in c.profile.service_cidrs)
        assert c.slices_for(svc), f"{svc.key} has no endpoints"
    for pod in c.pods:
        node = c.node(pod.node_name)
        if pod.host_network:  # the node's own address
            assert pod.ip in node.internal_ips
            continue
        assert pod.ip is not None and pod.ip in node.pod_cidr(4)  # type: ignore[operator]
        assert any(pod.ip in cidr for cidr in c.kube_proxy.cluster_cidrs)
    assert not any("allocated" in n for n in c.notes), "examples must not rely on allocation"


def test_seed() -> None:
    c = load_example("seed")
    assert [(n.name, str(n.primary_ip()), str(n.pod_cidr())) for n in c.nodes] == [
        ("node1", "10.0.0.11", "192.168.1.0/24"), ("node2", "10.0.0.12", "192.168.2.0/24")]
    svc = c.service("nginx")
    assert (svc.type, str(svc.cluster_ips[0]), svc.ports[0].port, svc.ports[0].node_port) == (
        "NodePort", "10.96.9.42", 80, 30080)
    assert svc.external_traffic_policy == "Cluster"
    assert c.skipped == {"Deployment": 1}
    assert c.kube_proxy.cluster_cidrs == (ipaddress.ip_network("192.168.0.0/16"),)
    assert (c.profile.pod_attach, c.profile.bridge_name, c.profile.inter_node) == (
        "bridge", "cni0", "direct")
    eps = service_port_endpoints(c, svc, svc.ports[0])
    assert [str(e) for e in eps] == ["192.168.1.10:80"] and eps[0].node_name == "node1"
    assert {p.node_name for p in c.pods if p.labels.get("app") == "client"} == {"node1", "node2"}


def test_variants_differ_from_seed_only_where_they_say() -> None:
    assert load_example("seed-local").service("nginx").external_traffic_policy == "Local"
    assert load_example("routed").profile.pod_attach == "routed"


def test_loadbalancer() -> None:
    c = load_example("loadbalancer")
    svc = c.service("web")
    assert len(c.nodes) == 3
    assert svc.needs_health_check and svc.health_check_node_port is not None
    assert [str(i) for i in svc.lb_ips] == ["172.18.255.10"]
    eps = service_port_endpoints(c, svc, svc.ports[0])
    assert sorted(e.node_name for e in eps) == ["node1", "node2"]
    assert categorize_endpoints(eps, svc, "node3").local == ()


def test_design_table() -> None:
    c = load_example("design-table")
    assert [(str(n.primary_ip()), str(n.pod_cidr())) for n in c.nodes] == [
        ("10.0.0.11", "10.244.1.0/24"), ("10.0.0.12", "10.244.2.0/24")]
    server = c.pod("server")
    assert server.node_name == "node1"
    assert {p.node_name for p in c.pods if p.name.startswith("client")} == {"node1", "node2"}
    cluster_svc, local_svc = c.service("server"), c.service("server-local")
    assert cluster_svc.external_traffic_policy == "Cluster" and cluster_svc.ports[0].node_port
    assert local_svc.external_traffic_policy == "Local" and local_svc.ports[0].node_port
    assert c.kube_proxy.cluster_cidrs == (ipaddress.ip_network("10.244.0.0/16"),)


def test_unknown_example() -> None:
    with pytest.raises(LookupFailed, match="no example named 'x'.*seed"):
        load_example("x")
    with pytest.raises(LookupFailed):
        load_example("../convert")
