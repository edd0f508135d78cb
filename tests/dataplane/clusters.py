"""Clusters built from model objects for tracer tests (no loader needed)."""

from __future__ import annotations

from sourceip.cluster import (
    Cluster,
    ContainerPort,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    KubeProxyConfig,
    NetworkProfile,
    Node,
    Pod,
    Service,
    ServicePort,
)
from sourceip.net import parse_ip, parse_network


def design_cluster(
    *,
    attach: str = "bridge",
    etp: str = "Cluster",
    mode: str = "iptables",
    masquerade_all: bool = False,
    cluster_cidr: str | None = "10.244.0.0/16",
    inter_node: str = "direct",
) -> Cluster:
    """docs/architecture.md, "Measured": nodes 10.0.0.11/12, pod CIDRs 10.244.1.0/24 and
    10.244.2.0/24, the server pod on node1, a client pod on each node; Service web (ClusterIP
    10.96.0.10:80, NodePort 30080) with the given externalTrafficPolicy."""
    nodes = (
        Node(name="node1", internal_ips=(parse_ip("10.0.0.11"),),
             pod_cidrs=(parse_network("10.244.1.0/24"),)),
        Node(name="node2", internal_ips=(parse_ip("10.0.0.12"),),
             pod_cidrs=(parse_network("10.244.2.0/24"),)),
    )
    pods = (
        Pod(namespace="default", name="server", node_name="node1",
            ips=(parse_ip("10.244.1.10"),), labels={"app": "web"},
            ports=(ContainerPort(container_port=8080, name="http"),)),
        Pod(namespace="default", name="client1", node_name="node1",
            ips=(parse_ip("10.244.1.20"),)),
        Pod(namespace="default", name="client2", node_name="node2",
            ips=(parse_ip("10.244.2.20"),)),
    )
    svc = Service(
        namespace="default", name="web", type="NodePort",
        cluster_ips=(parse_ip("10.96.0.10"),),
        ports=(ServicePort(port=80, name="http", target_port=8080, node_port=30080),),
        selector={"app": "web"}, external_traffic_policy=etp,  # type: ignore[arg-type]
    )
    es = EndpointSlice(
        namespace="default", name="web-abc", service_name="web",
        endpoints=(Endpoint(addresses=(parse_ip("10.244.1.10"),), node_name="node1",
                            target_ref="server"),),
        ports=(EndpointPort(port=8080, name="http"),),
    )
    kp = KubeProxyConfig(
        mode=mode,  # type: ignore[arg-type]
        cluster_cidrs=(parse_network(cluster_cidr),) if cluster_cidr else (),
        masquerade_all=masquerade_all,
    )
    profile = NetworkProfile(pod_attach=attach, inter_node=inter_node,  # type: ignore[arg-type]
                             service_cidrs=(parse_network("10.96.0.0/12"),))
    return Cluster(nodes=nodes, pods=pods, services=(svc,), endpoint_slices=(es,),
                   kube_proxy=kp, profile=profile)
