"""The cluster model: frozen Kubernetes objects, kube-proxy's config, the network profile."""

from sourceip.cluster.cluster import Cluster
from sourceip.cluster.endpoints import (
    Categorized,
    ProxyEndpoint,
    categorize_endpoints,
    externally_accessible,
    service_port_endpoints,
    uses_cluster_endpoints,
    uses_local_endpoints,
)
from sourceip.cluster.model import (
    ZONE_LABEL,
    ContainerPort,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Ingress,
    IngressPath,
    KubeProxyConfig,
    LoadBalancerIngress,
    NetworkProfile,
    Node,
    Pod,
    Service,
    ServicePort,
)

__all__ = [
    "ZONE_LABEL",
    "Categorized",
    "Cluster",
    "ContainerPort",
    "Endpoint",
    "EndpointPort",
    "EndpointSlice",
    "Ingress",
    "IngressPath",
    "KubeProxyConfig",
    "LoadBalancerIngress",
    "NetworkProfile",
    "Node",
    "Pod",
    "ProxyEndpoint",
    "Service",
    "ServicePort",
    "categorize_endpoints",
    "externally_accessible",
    "service_port_endpoints",
    "uses_cluster_endpoints",
    "uses_local_endpoints",
]
