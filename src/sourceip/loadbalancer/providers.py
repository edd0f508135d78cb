"""The one table of load-balancer behaviour per provider (``PROVIDERS``), each row cited.

A row says what the provider does when nothing overrides it: whether it forwards packets
(the client address survives to the node) or proxies (it terminates TCP and connects from its
own address), where it sends them (the VIP itself, each node's NodePort, or the pods), which
PROXY protocol versions it can send, what it health-checks for each externalTrafficPolicy and
which nodes can be in its pool. ``LoadBalancerProfile`` fields and Service annotations
override a row (``sourceip.loadbalancer.detect``); nothing else in sourceip encodes provider
behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from sourceip.cluster.model import (
    LB_HEALTH_PORTS,
    LB_MODES,
    LB_POOLS,
    LB_PROVIDERS,
    LB_PROXY_PROTOCOLS,
)
from sourceip.errors import ValidationError

TARGETS = ("vip", "nodePort", "pod")


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthDefault:
    """What the provider probes by default: a ``LB_HEALTH_PORTS`` kind and an HTTP path."""

    port: str
    path: str = ""

    def __post_init__(self) -> None:
        if self.port not in LB_HEALTH_PORTS:
            raise ValidationError(f"{self.port!r} is not a health check kind", field="port")


@dataclass(frozen=True, slots=True, kw_only=True)
class Provider:
    """One row of ``PROVIDERS``.

    * ``target``: ``vip`` (packets keep the LB IP as destination; kube-proxy's LB rules take
      them), ``nodePort`` (node IP:NodePort), ``pod`` (pod IP:targetPort, kube-proxy bypassed).
    * ``health``/``pool``: per externalTrafficPolicy (``Local``, ``Cluster``).
    * ``proxy_source``: where a proxying LB connects from (the pod sees that address).
    """

    name: str
    title: str
    mode: str
    target: str
    proxy_protocols: tuple[str, ...]
    health_local: HealthDefault
    health_cluster: HealthDefault
    pool_local: str
    pool_cluster: str
    proxy_source: str
    sources: tuple[str, ...]

    def __post_init__(self) -> None:
        checks = [
            (self.name in LB_PROVIDERS, "name"), (self.mode in LB_MODES, "mode"),
            (self.target in TARGETS, "target"),
            (all(p in LB_PROXY_PROTOCOLS[1:] for p in self.proxy_protocols), "proxy_protocols"),
            (self.pool_local in LB_POOLS, "pool_local"),
            (self.pool_cluster in LB_POOLS, "pool_cluster"), (bool(self.sources), "sources"),
        ]
        for ok, name in checks:
            if not ok:
                raise ValidationError(f"bad provider row {self.name!r}", field=name)

    def health(self, etp: str) -> HealthDefault:
        return self.health_local if etp == "Local" else self.health_cluster

    def pool(self, etp: str) -> str:
        return self.pool_local if etp == "Local" else self.pool_cluster


_HC_NODE_PORT = HealthDefault(port="healthCheckNodePort", path="/healthz")
_KUBE_PROXY = HealthDefault(port="kubeProxyHealthz", path="/healthz")
_NODE_PORT = HealthDefault(port="nodePort")
_NONE = HealthDefault(port="none")

_ROWS = (
    # sourceip's default when nothing names the LB: a forwarding LB that health-checks like GCE.
    Provider(
        name="generic", title="generic forwarding load balancer (health-checks like GCE)",
        mode="forwarding", target="vip", proxy_protocols=("v1", "v2"),
        health_local=_HC_NODE_PORT, health_cluster=_KUBE_PROXY,
        pool_local="all-nodes", pool_cluster="all-nodes",
        proxy_source="the load balancer's own address",
        sources=("sourceip default, modelled on the gce row",),
    ),
    # GCE/GKE passthrough Network LB: packets keep the forwarding-rule IP as destination.
    # eTP Local: HTTP health check on healthCheckNodePort, path /healthz
    # (servicehelpers.GetServiceHealthCheckPathPort); eTP Cluster: the shared nodes health
    # check on kube-proxy's healthz port 10256, path /healthz (gce_healthchecks.go
    # GetNodesHealthCheckPort / GetNodesHealthCheckPath). No PROXY protocol (kube-lego#57).
    Provider(
        name="gce", title="GCE/GKE passthrough Network Load Balancer",
        mode="forwarding", target="vip", proxy_protocols=(),
        health_local=_HC_NODE_PORT, health_cluster=_KUBE_PROXY,
        pool_local="all-nodes", pool_cluster="all-nodes",
        proxy_source="n/a (passthrough)",
        sources=(
            "kubernetes/cloud-provider-gcp providers/gce/gce_loadbalancer_external.go "
            "(ensureHTTPHealthCheck, makeNodesHealthCheck) and gce_healthchecks.go",
            "GKE 'LoadBalancer Service parameters' (cloud.google.com/l4-rbs, "
            "networking.gke.io/load-balancer-type)",
            "KEP-3836 (kube-proxy /healthz fails for nodes being deleted)",
        ),
    ),
    # AWS NLB with instance targets: node IP:NodePort, client IP preserved (target group
    # attribute preserve_client_ip.enabled defaults to true for instance targets). LBC
    # defaults: eTP Local -> HTTP /healthz on healthCheckNodePort
    # (defaultHealthCheckPathForInstanceModeLocal); otherwise TCP on traffic-port.
    # aws-load-balancer-proxy-protocol: "*" enables PROXY v2.
    Provider(
        name="aws-nlb-instance", title="AWS Network Load Balancer, instance targets",
        mode="forwarding", target="nodePort", proxy_protocols=("v2",),
        health_local=_HC_NODE_PORT, health_cluster=_NODE_PORT,
        pool_local="all-nodes", pool_cluster="all-nodes",
        proxy_source="the NLB's private address in each subnet",
        sources=(
            "kubernetes-sigs/aws-load-balancer-controller docs/guide/service/annotations.md "
            "(Health Check, target-group-attributes, nlb-target-type)",
            "aws-load-balancer-controller pkg/service/model_build_target_group.go "
            "(buildTargetGroupHealthCheckConfigForInstanceModeLocal)",
            "AWS 'Edit target group attributes for your Network Load Balancer' "
            "(client IP preservation)",
        ),
    ),
    # AWS NLB with IP targets: the pods are the targets (kube-proxy is not on the path).
    # preserve_client_ip defaults to false for TCP/TLS target groups: the pod sees the NLB's
    # private IP. Health check: TCP on the traffic port (the pod's port).
    Provider(
        name="aws-nlb-ip", title="AWS Network Load Balancer, IP targets",
        mode="proxying", target="pod", proxy_protocols=("v2",),
        health_local=_NODE_PORT, health_cluster=_NODE_PORT,
        pool_local="endpoint-nodes", pool_cluster="endpoint-nodes",
        proxy_source="the NLB's private address in each subnet",
        sources=(
            "kubernetes-sigs/aws-load-balancer-controller docs/guide/service/annotations.md "
            "('preserve client IP is disabled by default for IP targets')",
            "kubernetes-sigs/aws-load-balancer-controller#1825; aws/containers-roadmap#1260",
        ),
    ),
    # AWS Classic LB (the in-tree default for type LoadBalancer): a TCP listener terminates
    # the connection and opens a new one to node IP:NodePort from the ELB's address. Health
    # check: HTTP:healthCheckNodePort/healthz for eTP Local, TCP:NodePort otherwise.
    # aws-load-balancer-proxy-protocol: "*" enables PROXY v1.
    Provider(
        name="aws-clb", title="AWS Classic Load Balancer (TCP listener)",
        mode="proxying", target="nodePort", proxy_protocols=("v1",),
        health_local=_HC_NODE_PORT, health_cluster=_NODE_PORT,
        pool_local="all-nodes", pool_cluster="all-nodes",
        proxy_source="the ELB's private address in each subnet",
        sources=(
            "kubernetes/cloud-provider-aws pkg/providers/v1/aws_loadbalancer.go "
            "(ensureLoadBalancerHealthCheck)",
            "cloud-provider-aws.sigs.k8s.io 'The Service Controller' annotation table",
            "AWS 'HTTP headers and Classic Load Balancers'",
        ),
    ),
    # Azure Standard LB: floating IP (Direct Server Return) is on by default, so packets keep
    # the frontend IP as destination; azure-disable-load-balancer-floating-ip: "true" sends
    # them to node IP:NodePort instead. Probes: eTP Local -> HTTP healthCheckNodePort
    # /healthz; eTP Cluster -> TCP on the NodePort (clusterServiceLoadBalancerHealthProbeMode
    # "servicenodeport", the default; "shared" probes kube-proxy's 10256 /healthz).
    Provider(
        name="azure", title="Azure Standard Load Balancer",
        mode="forwarding", target="vip", proxy_protocols=(),
        health_local=_HC_NODE_PORT, health_cluster=_NODE_PORT,
        pool_local="all-nodes", pool_cluster="all-nodes",
        proxy_source="n/a (passthrough)",
        sources=(
            "kubernetes-sigs/cloud-provider-azure pkg/consts "
            "(ServiceAnnotationDisableLoadBalancerFloatingIP) and site docs 'Azure "
            "LoadBalancer' (health probes, clusterServiceLoadBalancerHealthProbeMode)",
            "AKS 'Use a public standard load balancer'",
        ),
    ),
    # MetalLB layer 2: one speaker answers ARP/NDP for the IP; no health check. The leader is
    # the first node when sorting sha256(node + "#" + ip) among nodes with a speaker (eTP
    # Local: nodes with a ready or serving endpoint) — speaker/layer2_controller.go
    # ShouldAnnounce. No PROXY protocol (metallb#797).
    Provider(
        name="metallb-l2", title="MetalLB layer 2 (ARP/NDP leader)",
        mode="forwarding", target="vip", proxy_protocols=(),
        health_local=_NONE, health_cluster=_NONE,
        pool_local="l2-leader", pool_cluster="l2-leader",
        proxy_source="n/a (passthrough)",
        sources=(
            "metallb/metallb speaker/layer2_controller.go (ShouldAnnounce, "
            "nodesWithEndpoint)",
            "metallb website/content/concepts/layer2.md; usage/_index.md §Traffic policies",
        ),
    ),
    # MetalLB BGP: every eligible speaker advertises the IP, the router spreads by ECMP; with
    # eTP Local only nodes with a serving endpoint advertise (speaker/bgp_controller.go).
    Provider(
        name="metallb-bgp", title="MetalLB BGP (ECMP)",
        mode="forwarding", target="vip", proxy_protocols=(),
        health_local=_NONE, health_cluster=_NONE,
        pool_local="endpoint-nodes", pool_cluster="all-nodes",
        proxy_source="n/a (passthrough)",
        sources=(
            "metallb/metallb speaker/bgp_controller.go (ShouldAnnounce)",
            "metallb website/content/usage/_index.md §Traffic policies, §Limitations",
        ),
    ),
    # OpenStack Octavia (amphora = haproxy): terminates TCP, members are node IP:NodePort.
    # loadbalancer.openstack.org/proxy-protocol: "true" sets the pool protocol PROXY (v1),
    # "v2" PROXYV2. Health monitor: HTTP /healthz on healthCheckNodePort for eTP Local, TCP on
    # the member port otherwise.
    Provider(
        name="octavia", title="OpenStack Octavia (amphora)",
        mode="proxying", target="nodePort", proxy_protocols=("v1", "v2"),
        health_local=_HC_NODE_PORT, health_cluster=_NODE_PORT,
        pool_local="all-nodes", pool_cluster="all-nodes",
        proxy_source="the amphora's address on the member subnet",
        sources=(
            "kubernetes/cloud-provider-openstack docs/openstack-cloud-controller-manager/"
            "expose-applications-using-loadbalancer-type-service.md",
            "cloud-provider-openstack pkg/openstack/loadbalancer.go (health monitor options)",
            "cloud-provider-openstack PR#2587 (ipMode Proxy with PROXY protocol)",
        ),
    ),
)

PROVIDERS: MappingProxyType[str, Provider] = MappingProxyType({p.name: p for p in _ROWS})

if tuple(PROVIDERS) != LB_PROVIDERS:  # pragma: no cover - a row missing is a programming error
    raise RuntimeError("PROVIDERS and cluster.model.LB_PROVIDERS disagree")

__all__ = ["PROVIDERS", "TARGETS", "HealthDefault", "Provider"]
