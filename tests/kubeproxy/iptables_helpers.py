"""Shared helpers for the iptables-mode tests: kube-proxy's test fixtures as sourceip objects,
and a per-chain view of iptables-restore text."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from sourceip.cluster import (
    Cluster,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    KubeProxyConfig,
    Node,
)

GOLDEN = Path(__file__).parent / "golden"
BUILTIN = {"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"}

A = ipaddress.ip_address
N = ipaddress.ip_network

# NewFakeProxier (pkg/proxy/iptables/proxier_test.go): node "test-node", eth0 addresses
# 192.168.0.2 (primary), 192.168.1.2, 192.168.99.11 and two IPv6 ones; pod CIDR 10.0.0.0/8
# detected with NewDetectLocalByCIDR; masquerade mark 0x4000; localhostNodePorts on;
# nodePortAddresses unset; nfacct counters available; no --random-fully.
TEST_NODE = Node(
    name="test-node",
    internal_ips=(A("192.168.0.2"), A("192.168.1.2"), A("2001:db8::1"), A("2001:db8:1::2")),
    external_ips=(A("192.168.99.11"),),
    pod_cidrs=(N("10.0.0.0/24"),),
)
FAKE_CFG = KubeProxyConfig(cluster_cidrs=(N("10.0.0.0/8"),))


def slice_(
    ns: str,
    svc: str,
    endpoints: list[Endpoint],
    *,
    port: int = 80,
    port_name: str = "p80",
    protocol: str = "tcp",
    num: int = 1,
) -> EndpointSlice:
    """makeTestEndpointSlice: slice ``<svc>-<num>`` with one port."""
    return EndpointSlice(
        namespace=ns,
        name=f"{svc}-{num}",
        service_name=svc,
        endpoints=tuple(endpoints),
        ports=(EndpointPort(port=port, name=port_name, protocol=protocol),),
    )


def ep(ip: str, node: str = "", **conds: bool | None) -> Endpoint:
    return Endpoint(addresses=(A(ip),), node_name=node, **conds)  # type: ignore[arg-type]


def cluster(services: tuple[object, ...], slices: tuple[EndpointSlice, ...],
            node: Node = TEST_NODE) -> Cluster:
    return Cluster(nodes=(node,), services=services, endpoint_slices=slices)  # type: ignore[arg-type]


def per_chain(text: str, *, drop_builtin: bool = True) -> dict[str, dict[str, list[str]]]:
    """iptables-restore text as table -> chain -> rule lines (``#`` lines ignored). With
    ``drop_builtin`` the built-in chains and their rules (our EnsureRule jumps) are left out."""
    tables: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            current = tables.setdefault(line[1:], {})
        elif line.startswith(":"):
            name = line[1:].split()[0]
            if not (drop_builtin and name in BUILTIN):
                current.setdefault(name, [])
        elif line.startswith("-A "):
            name = line.split()[1]
            if not (drop_builtin and name in BUILTIN):
                assert name in current, f"rule for undeclared chain: {line}"
                current[name].append(line)
        else:
            raise AssertionError(f"unexpected line {line!r}")
    return tables


def read_golden(name: str) -> str:
    return (GOLDEN / name).read_text()


# ----------------------------------------------------------------------------- a varied cluster

N1 = Node(
    name="n1",
    internal_ips=(A("10.0.0.11"), A("fd00::11")),
    pod_cidrs=(N("10.244.1.0/24"), N("fd00:244:1::/64")),
)
N2 = Node(name="n2", internal_ips=(A("10.0.0.12"), A("fd00::12")),
          pod_cidrs=(N("10.244.2.0/24"), N("fd00:244:2::/64")))
POD_CIDRS = (N("10.244.0.0/16"), N("fd00:244::/48"))


def feature_cluster() -> Cluster:
    """Every feature the iptables builder handles, seen from node n1 (pods on n1 are
    10.244.1.x, on n2 10.244.2.x)."""
    from sourceip.cluster import LoadBalancerIngress, Service, ServicePort

    def svc(name: str, ip: str, ports: tuple[ServicePort, ...] | None = None, **kw: object
            ) -> Service:
        return Service(namespace="default", name=name, cluster_ips=(A(ip),),
                       ports=ports or (ServicePort(port=80, name="http", target_port=8080),),
                       **kw)  # type: ignore[arg-type]

    def eps(name: str, *endpoints: Endpoint, port: int = 8080, pname: str = "http",
            proto: str = "tcp", v6: bool = False) -> EndpointSlice:
        return EndpointSlice(namespace="default", name=f"{name}-{'v6' if v6 else 'v4'}",
                             service_name=name, address_type="IPv6" if v6 else "IPv4",
                             endpoints=endpoints,
                             ports=(EndpointPort(port=port, name=pname, protocol=proto),))

    def lb(ip: str, mode: str = "VIP") -> tuple[LoadBalancerIngress, ...]:
        return (LoadBalancerIngress(ip=A(ip), ip_mode=mode),)  # type: ignore[arg-type]

    http = ServicePort(port=80, name="http", target_port=8080)
    services = (
        svc("web", "10.96.0.10", (http, ServicePort(port=53, name="dns", protocol="udp"))),
        svc("np", "10.96.0.11", (ServicePort(port=80, name="http", node_port=30080),),
            type="NodePort"),
        svc("lb-local", "10.96.0.12", (ServicePort(port=80, name="http", node_port=30081),),
            type="LoadBalancer", external_traffic_policy="Local", health_check_node_port=32000,
            lb_ingress=lb("192.0.2.10")),
        svc("lb-local-none", "10.96.0.13", (ServicePort(port=80, name="http", node_port=30082),),
            type="LoadBalancer", external_traffic_policy="Local", health_check_node_port=32001,
            lb_ingress=lb("192.0.2.11")),
        svc("lb-ranges", "10.96.0.14", (ServicePort(port=443, name="https", node_port=30443),),
            type="LoadBalancer", lb_ingress=lb("192.0.2.12"),
            lb_source_ranges=(N("203.0.113.0/24"), N("10.0.0.0/16")),
            session_affinity="ClientIP", affinity_timeout=600),
        svc("ext", "10.96.0.15", external_ips=(A("198.51.100.7"),),
            external_traffic_policy="Local"),
        svc("itp-local", "10.96.0.16", internal_traffic_policy="Local"),
        svc("itp-local-ok", "10.96.0.17", internal_traffic_policy="Local"),
        svc("empty", "10.96.0.18", (ServicePort(port=80, name="http", node_port=30083),),
            type="NodePort", external_ips=(A("198.51.100.8"),)),
        svc("term", "10.96.0.19"),
        svc("lb-proxy", "10.96.0.20", (ServicePort(port=80, name="http", node_port=30084),),
            type="LoadBalancer", lb_ingress=lb("192.0.2.13", "Proxy")),
        svc("sctp", "10.96.0.21", (ServicePort(port=9000, name="s", protocol="sctp"),)),
        Service(namespace="default", name="headless", headless=True,
                ports=(ServicePort(port=80, name="http"),)),
        Service(namespace="default", name="extname", type="ExternalName",
                external_name="example.com"),
        Service(namespace="default", name="dual", cluster_ips=(A("10.96.0.30"), A("fd00:96::30")),
                ports=(http,), type="NodePort"),
        Service(namespace="default", name="v6only", cluster_ips=(A("fd00:96::31"),),
                ports=(http,)),
    )
    slices = (
        eps("web", ep("10.244.1.5", "n1"), ep("10.244.2.5", "n2"),
            ep("10.244.2.6", "n2", ready=False)),
        EndpointSlice(namespace="default", name="web-dns", service_name="web",
                      endpoints=(ep("10.244.1.5", "n1"), ep("10.244.2.5", "n2")),
                      ports=(EndpointPort(port=53, name="dns", protocol="udp"),)),
        eps("np", ep("10.244.2.7", "n2")),
        eps("lb-local", ep("10.244.1.8", "n1"), ep("10.244.2.8", "n2")),
        eps("lb-local-none", ep("10.244.2.9", "n2")),
        eps("lb-ranges", ep("10.244.1.10", "n1"), ep("10.244.2.10", "n2"), port=8443,
            pname="https"),
        eps("ext", ep("10.244.1.11", "n1")),
        eps("itp-local", ep("10.244.2.12", "n2")),
        eps("itp-local-ok", ep("10.244.1.13", "n1"), ep("10.244.2.13", "n2")),
        eps("term", ep("10.244.1.14", "n1", ready=False, serving=True, terminating=True),
            ep("10.244.2.14", "n2", ready=False, serving=False, terminating=True)),
        eps("lb-proxy", ep("10.244.2.15", "n2")),
        eps("sctp", ep("10.244.2.16", "n2"), port=9000, pname="s", proto="sctp"),
        eps("dual", ep("10.244.1.17", "n1")),
        eps("dual", ep("fd00:244:1::17", "n1"), v6=True),
        eps("v6only", ep("fd00:244:2::18", "n2"), v6=True),
    )
    return Cluster(nodes=(N1, N2), services=services, endpoint_slices=slices)


CONFIGS: dict[str, KubeProxyConfig] = {
    "cluster-cidr": KubeProxyConfig(cluster_cidrs=POD_CIDRS),
    "node-cidr": KubeProxyConfig(cluster_cidrs=POD_CIDRS, detect_local_mode="NodeCIDR"),
    "bridge": KubeProxyConfig(detect_local_mode="BridgeInterface", bridge_interface="cni0"),
    "prefix": KubeProxyConfig(detect_local_mode="InterfaceNamePrefix",
                              interface_name_prefix="veth"),
    "noop": KubeProxyConfig(),
    "masquerade-all": KubeProxyConfig(cluster_cidrs=POD_CIDRS, masquerade_all=True),
    "no-localhost-nodeports": KubeProxyConfig(cluster_cidrs=POD_CIDRS,
                                              localhost_node_ports=False),
    "nodeport-addresses": KubeProxyConfig(
        cluster_cidrs=POD_CIDRS, node_port_addresses=("10.0.0.0/24", "127.0.0.1/32", "fd00::/64")
    ),
    "nodeport-primary": KubeProxyConfig(cluster_cidrs=POD_CIDRS, node_port_addresses=("primary",)),
    "tcp-be-liberal": KubeProxyConfig(cluster_cidrs=POD_CIDRS, conntrack_tcp_be_liberal=True,
                                      masquerade_bit=5),
}
