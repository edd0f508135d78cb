"""The measured cluster (docs/architecture.md, "Measured") built from sourceip.cluster objects,
and generated big clusters."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

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

SERVER_IP = "10.244.1.10"
CLIENT1_IP = "10.244.1.20"
CLIENT2_IP = "10.244.2.20"
NODE1_IP = "10.0.0.11"
NODE2_IP = "10.0.0.12"
BRIDGE1_IP = "10.244.1.1"
EXTERNAL_IP = "192.168.100.2"
CLUSTER_IP = "10.96.0.100"
LOCAL_CLUSTER_IP = "10.96.0.101"


def design_cluster(*, pod_attach: str = "bridge", inter_node: str = "direct",
                   mode: str = "iptables", egress_masquerade: bool = False) -> Cluster:
    """Two nodes (10.0.0.11/12, pod CIDRs 10.244.1.0/24 and 10.244.2.0/24, bridge gateways
    .1), the server pod on node1 (tcp 8080, udp 5353), a client pod on each node, Service
    ``server`` (ETP Cluster; http 80→8080 NodePort 30080, dns 53→5353/udp NodePort 30053) and
    ``server-local`` (ETP Local; 80→8080 NodePort 30081)."""
    nodes = (
        Node(name="node1", internal_ips=(ip_address(NODE1_IP),),
             pod_cidrs=(ip_network("10.244.1.0/24"),)),
        Node(name="node2", internal_ips=(ip_address(NODE2_IP),),
             pod_cidrs=(ip_network("10.244.2.0/24"),)),
    )
    pods = (
        Pod(namespace="default", name="server", node_name="node1",
            ips=(ip_address(SERVER_IP),), labels={"app": "server"},
            ports=(ContainerPort(container_port=8080, name="http"),
                   ContainerPort(container_port=5353, name="dns", protocol="udp"))),
        Pod(namespace="default", name="client1", node_name="node1",
            ips=(ip_address(CLIENT1_IP),)),
        Pod(namespace="default", name="client2", node_name="node2",
            ips=(ip_address(CLIENT2_IP),)),
    )
    server = Service(
        namespace="default", name="server", type="NodePort",
        cluster_ips=(ip_address(CLUSTER_IP),), selector={"app": "server"},
        ports=(ServicePort(name="http", port=80, target_port=8080, node_port=30080),
               ServicePort(name="dns", port=53, protocol="udp", target_port=5353,
                           node_port=30053)),
    )
    local = Service(
        namespace="default", name="server-local", type="NodePort",
        cluster_ips=(ip_address(LOCAL_CLUSTER_IP),), selector={"app": "server"},
        external_traffic_policy="Local",
        ports=(ServicePort(port=80, target_port=8080, node_port=30081),),
    )
    ep = Endpoint(addresses=(ip_address(SERVER_IP),), node_name="node1",
                  target_ref="default/server")
    slices = (
        EndpointSlice(namespace="default", name="server-x1", service_name="server",
                      endpoints=(ep,),
                      ports=(EndpointPort(name="http", port=8080),
                             EndpointPort(name="dns", port=5353, protocol="udp"))),
        EndpointSlice(namespace="default", name="server-local-x1", service_name="server-local",
                      endpoints=(ep,), ports=(EndpointPort(port=8080),)),
    )
    return Cluster(
        nodes=nodes, pods=pods, services=(server, local), endpoint_slices=slices,
        kube_proxy=KubeProxyConfig(mode=mode,  # type: ignore[arg-type]
                                   cluster_cidrs=(ip_network("10.244.0.0/16"),)),
        profile=NetworkProfile(pod_attach=pod_attach,  # type: ignore[arg-type]
                               inter_node=inter_node,  # type: ignore[arg-type]
                               egress_masquerade=egress_masquerade,
                               pod_cidrs=(ip_network("10.244.0.0/16"),)),
    )


def generated_cluster(n_nodes: int, *, pod_attach: str = "bridge") -> Cluster:
    """``n_nodes`` nodes (10.0.x.y), one server pod each, one NodePort Service over all."""
    nodes, pods, eps = [], [], []
    for i in range(n_nodes):
        name = f"node{i + 1}"
        nodes.append(Node(name=name, internal_ips=(ip_address(f"10.0.{i // 200}.{i % 200 + 10}"),),
                          pod_cidrs=(ip_network(f"10.{100 + i // 250}.{i % 250}.0/24"),)))
        pod_ip = ip_address(f"10.{100 + i // 250}.{i % 250}.10")
        pods.append(Pod(namespace="default", name=f"web-{i + 1}", node_name=name,
                        ips=(pod_ip,), labels={"app": "web"},
                        ports=(ContainerPort(container_port=8080),)))
        eps.append(Endpoint(addresses=(pod_ip,), node_name=name))
    svc = Service(namespace="default", name="web", type="NodePort",
                  cluster_ips=(ip_address("10.96.0.10"),), selector={"app": "web"},
                  ports=(ServicePort(port=80, target_port=8080, node_port=30080),))
    es = EndpointSlice(namespace="default", name="web-x", service_name="web",
                       endpoints=tuple(eps), ports=(EndpointPort(port=8080),))
    return Cluster(nodes=tuple(nodes), pods=tuple(pods), services=(svc,), endpoint_slices=(es,),
                   kube_proxy=KubeProxyConfig(cluster_cidrs=(ip_network("10.100.0.0/14"),)),
                   profile=NetworkProfile(pod_attach=pod_attach))  # type: ignore[arg-type]
