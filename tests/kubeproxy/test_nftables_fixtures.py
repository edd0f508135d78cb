"""Cluster builders mirroring kube-proxy's nftables test fake (``NewFakeProxier`` in
``pkg/proxy/nftables/proxier_test.go``), shared by the nftables tests, plus checks of the fake
itself."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from sourceip.cluster import (
    Cluster,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    KubeProxyConfig,
    LoadBalancerIngress,
    NetworkProfile,
    Node,
    Service,
    ServicePort,
)

TEST_NODE = "test-node"
TEST_NODE_IP = "192.168.0.2"
TEST_NODE_IP_ALT = "192.168.1.2"
TEST_EXTERNAL_IP = "192.168.99.11"
TEST_NODE_IPV6 = "2001:db8::1"
TEST_NODE_IPV6_ALT = "2001:db8:1::2"

ip = ipaddress.ip_address
net = ipaddress.ip_network


def fake_node(name: str = TEST_NODE) -> Node:
    """The fake's node: primary IP 192.168.0.2, further addresses 192.168.1.2, 192.168.99.11
    and the IPv6 pair."""
    return Node(
        name=name,
        internal_ips=(ip(TEST_NODE_IP), ip(TEST_NODE_IPV6), ip(TEST_NODE_IP_ALT),
                      ip(TEST_NODE_IPV6_ALT)),
        external_ips=(ip(TEST_EXTERNAL_IP),),
        pod_cidrs=(net("10.0.0.0/24"), net("fd00:10::/64")),
    )


def fake_config(**changes: Any) -> KubeProxyConfig:
    """The fake's kube-proxy settings: nftables mode, detect-local by the cluster CIDR
    10.0.0.0/8, nodePortAddresses = the node's primary IPs as /32 and /128, mark 0x4000;
    release 1.35 (the proxier_test.go these fixtures and goldens come from, 81810de6; the
    per-release tests pass ``version=``)."""
    base: dict[str, Any] = dict(
        mode="nftables",
        version="1.35",
        cluster_cidrs=(net("10.0.0.0/8"), net("fd00:10::/64")),
        detect_local_mode="ClusterCIDR",
        node_port_addresses=(f"{TEST_NODE_IP}/32", f"{TEST_NODE_IPV6}/128"),
        masquerade_bit=14,
    )
    base.update(changes)
    return KubeProxyConfig(**base)


def fake_cluster(services: Iterable[Service], slices: Iterable[EndpointSlice] = (),
                 *, nodes: Iterable[Node] = (), service_cidrs: tuple[str, ...] | None = None,
                 **cfg: Any) -> Cluster:
    cidrs = ("172.30.0.0/16", "fd00:10:96::/112") if service_cidrs is None else service_cidrs
    return Cluster(
        nodes=(fake_node(), *nodes),
        services=tuple(services),
        endpoint_slices=tuple(slices),
        kube_proxy=fake_config(**cfg),
        profile=NetworkProfile(service_cidrs=tuple(net(c) for c in cidrs)),
    )


def svc(ns: str, name: str, cluster_ip: str, *, port: int = 80, port_name: str = "p80",
        protocol: str = "tcp", node_port: int | None = None, target_port: int = 0,
        **fields: Any) -> Service:
    """A Service in the style of upstream's makeTestService with one port."""
    lb = fields.pop("lb", ())
    return Service(
        namespace=ns, name=name, cluster_ips=(ip(cluster_ip),),
        ports=(ServicePort(port=port, name=port_name, protocol=protocol, node_port=node_port,
                           target_port=target_port),),
        lb_ingress=tuple(LoadBalancerIngress(ip=ip(a)) for a in lb),
        **fields,
    )


def ep(address: str, node: str = "", **conds: Any) -> Endpoint:
    return Endpoint(addresses=(ip(address),), node_name=node, **conds)


def eps(ns: str, name: str, *endpoints: Endpoint, port: int = 80, port_name: str = "p80",
        protocol: str = "tcp", num: int = 1) -> EndpointSlice:
    """An EndpointSlice in the style of upstream's makeTestEndpointSlice."""
    family = "IPv6" if endpoints and endpoints[0].addresses[0].version == 6 else "IPv4"
    return EndpointSlice(
        namespace=ns, name=f"{name}-{num}", service_name=name, address_type=family,
        endpoints=endpoints,
        ports=(EndpointPort(port=port, name=port_name, protocol=protocol),),
    )


def overall_cluster(**cfg: Any) -> Cluster:
    """The inputs of upstream's TestOverallNFTablesRules (81810de6)."""
    services = [
        svc("ns1", "svc1", "172.30.0.41"),
        svc("ns2", "svc2", "172.30.0.42", type="LoadBalancer", node_port=3001,
            external_traffic_policy="Local", lb=("1.2.3.4",),
            external_ips=(ip("192.168.99.22"),), health_check_node_port=30000),
        svc("ns3", "svc3", "172.30.0.43", type="NodePort", node_port=3003),
        svc("ns4", "svc4", "172.30.0.44", type="NodePort", target_port=80,
            external_ips=(ip("192.168.99.33"),)),
        svc("ns5", "svc5", "172.30.0.45", type="LoadBalancer", node_port=3002,
            external_traffic_policy="Cluster", lb=("5.6.7.8",), health_check_node_port=30000,
            lb_source_ranges=(net("203.0.113.0/25"),), session_affinity="ClientIP",
            affinity_timeout=10800),
        svc("ns6", "svc6", "172.30.0.46", type="ClusterIP", target_port=80),
    ]
    slices = [
        eps("ns1", "svc1", ep("10.180.0.1")),
        eps("ns2", "svc2", ep("10.180.0.2")),
        eps("ns3", "svc3", ep("10.180.0.3")),
        eps("ns4", "svc4", ep("10.180.0.4"), ep("10.180.0.5", TEST_NODE)),
        eps("ns5", "svc5", ep("10.180.0.3")),
    ]
    return fake_cluster(services, slices, **cfg)


def test_fake_node_addresses() -> None:
    node = fake_node()
    assert str(node.primary_ip(4)) == TEST_NODE_IP
    assert str(node.primary_ip(6)) == TEST_NODE_IPV6
    assert {str(a) for a in node.addresses} >= {TEST_NODE_IP_ALT, TEST_EXTERNAL_IP}


def test_overall_cluster_shape() -> None:
    c = overall_cluster()
    assert [s.key for s in c.services] == [f"ns{i}/svc{i}" for i in range(1, 7)]
    assert c.kube_proxy.masquerade_mark == 0x4000
    assert c.service("ns5/svc5").lb_ips == (ip("5.6.7.8"),)
