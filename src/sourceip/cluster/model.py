"""Frozen, validated values for the parts of a cluster that decide a packet's path.

Every value validates on construction and raises ``ValidationError`` naming the field; nothing
half-valid is ever stored. Field paths are the Kubernetes API's (``spec.ports[0].nodePort``) so
that ``sources`` can point at the line of the manifest.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sourceip.errors import ValidationError
from sourceip.net.addr import PROTOCOLS, IPAddress, IPNetwork

ZONE_LABEL = "topology.kubernetes.io/zone"

ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]
TrafficPolicy = Literal["Cluster", "Local"]
DetectLocalMode = Literal["ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix", ""]
ProxyMode = Literal["iptables", "nftables", "ipvs"]
# spec.ipFamilyPolicy values (core/v1 IPFamilyPolicy; "" = unset as written, defaulted by the
# API server's allocator: pkg/registry/core/service/storage/alloc.go initIPFamilyFields).
IP_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
IP_FAMILY_NAMES = {"IPv4": 4, "IPv6": 6}


def family_name(version: int) -> str:
    """``IPv4`` / ``IPv6`` for 4 / 6 (the API's IPFamily spelling)."""
    return "IPv4" if version == 4 else "IPv6"


def one_per_family(items: tuple[IPAddress, ...] | tuple[IPNetwork, ...]) -> bool:
    """At most two items and no two of the same family (netutils.IsDualStack*Strings, which
    the API server applies to clusterIPs, podCIDRs and kube-proxy's clusterCIDR)."""
    return len(items) <= 2 and len({i.version for i in items}) == len(items)
# kube-proxy's ipvs.scheduler values (validateIPVSSchedulerMethod in
# pkg/proxy/apis/config/validation; "" means rr).
IPVS_SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh")


def _check(cond: bool, field_path: str, message: str) -> None:
    if not cond:
        raise ValidationError(message, field=field_path)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _port_ok(value: int, field_path: str, *, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    _check(
        isinstance(value, int) and low <= value <= 65535,
        field_path,
        f"{value} is outside {low}-65535",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """A node: its addresses (InternalIP first), pod CIDRs, labels, and whether it is being
    deleted (``deletion_timestamp``) or tainted (``taints``, the taint keys)."""

    name: str
    internal_ips: tuple[IPAddress, ...] = ()
    external_ips: tuple[IPAddress, ...] = ()
    pod_cidrs: tuple[IPNetwork, ...] = ()
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    # metadata.deletionTimestamp as written ("" = not being deleted) and the keys of
    # spec.taints: kube-proxy's /healthz reads both (pkg/proxy/healthcheck NodeEligible).
    deletion_timestamp: str = ""
    taints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check(bool(self.name), "metadata.name", "a node needs a name")
        # ValidateNode (pkg/apis/core/validation/validation.go): more than one podCIDR must be
        # a dual-stack pair.
        _check(one_per_family(self.pod_cidrs), "spec.podCIDRs",
               "may specify no more than one CIDR for each IP family")

    @property
    def zone(self) -> str:
        return self.labels.get(ZONE_LABEL, "")

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        """Every address the node owns, InternalIPs first."""
        return self.internal_ips + self.external_ips

    def primary_ip(self, version: int = 4) -> IPAddress | None:
        """The first InternalIP of that family (kube-proxy's primary node IP)."""
        for ip in self.internal_ips:
            if ip.version == version:
                return ip
        return None

    def pod_cidr(self, version: int = 4) -> IPNetwork | None:
        for net in self.pod_cidrs:
            if net.version == version:
                return net
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerPort:
    """A port a container declares (named ports are what targetPort names refer to)."""

    container_port: int
    name: str = ""
    protocol: str = "tcp"
    host_port: int | None = None
    host_ip: IPAddress | None = None  # hostIP: the node address a hostPort is bound to

    def __post_init__(self) -> None:
        _port_ok(self.container_port, "containerPort")
        _check(self.protocol in PROTOCOLS, "protocol", f"{self.protocol!r} is not TCP/UDP/SCTP")
        if self.host_port is not None:
            _port_ok(self.host_port, "hostPort")


@dataclass(frozen=True, slots=True, kw_only=True)
class Container:
    """A container's identity and command line (what an ingress controller is configured by)."""

    name: str
    image: str = ""
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Pod:
    """A pod: where it runs, its IP(s), labels and the ports its containers declare."""

    namespace: str
    name: str
    node_name: str = ""
    ips: tuple[IPAddress, ...] = ()
    host_network: bool = False
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    ports: tuple[ContainerPort, ...] = ()
    phase: str = "Running"
    ready: bool = True
    terminating: bool = False
    # Containers with an image or args (kept for recognising ingress controllers; plain
    # application containers without args are not stored).
    containers: tuple[Container, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ip(self) -> IPAddress | None:
        return self.ips[0] if self.ips else None

    def port_named(self, name: str, protocol: str) -> ContainerPort | None:
        for p in self.ports:
            if p.name == name and p.protocol == protocol:
                return p
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServicePort:
    """One port of a Service; ``target_port`` is a number or a container port name."""

    port: int
    name: str = ""
    protocol: str = "tcp"
    target_port: int | str = 0
    node_port: int | None = None

    def __post_init__(self) -> None:
        _port_ok(self.port, "port")
        _check(self.protocol in PROTOCOLS, "protocol", f"{self.protocol!r} is not TCP/UDP/SCTP")
        if isinstance(self.target_port, int):
            _port_ok(self.target_port, "targetPort", allow_zero=True)
        else:
            _check(bool(self.target_port), "targetPort", "an empty port name")
        if self.node_port is not None:
            _port_ok(self.node_port, "nodePort")

    @property
    def effective_target(self) -> int | str:
        """targetPort, defaulting to port as the API server does."""
        return self.target_port if self.target_port else self.port


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadBalancerIngress:
    """One entry of status.loadBalancer.ingress."""

    ip: IPAddress | None = None
    hostname: str = ""
    ip_mode: Literal["VIP", "Proxy"] = "VIP"


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """A Service with every field that changes the path of a packet."""

    namespace: str
    name: str
    type: ServiceType = "ClusterIP"
    cluster_ips: tuple[IPAddress, ...] = ()
    headless: bool = False
    ports: tuple[ServicePort, ...] = ()
    selector: dict[str, str] | None = field(default=None, hash=False)
    external_ips: tuple[IPAddress, ...] = ()
    load_balancer_ip: IPAddress | None = None
    lb_ingress: tuple[LoadBalancerIngress, ...] = ()
    external_traffic_policy: TrafficPolicy = "Cluster"
    internal_traffic_policy: TrafficPolicy = "Cluster"
    health_check_node_port: int | None = None
    lb_source_ranges: tuple[IPNetwork, ...] = ()
    session_affinity: Literal["None", "ClientIP"] = "None"
    affinity_timeout: int = 10800
    allocate_lb_node_ports: bool = True
    # spec.ipFamilies ("IPv4"/"IPv6", primary first) and spec.ipFamilyPolicy as the API
    # server stores them; sources/convert.py fills in what the allocator defaults (the cluster's
    # families, SingleStack), code building objects by hand may leave them empty.
    ip_families: tuple[str, ...] = ()
    ip_family_policy: str = ""
    external_name: str = ""
    annotations: dict[str, str] = field(default_factory=dict, hash=False)
    load_balancer_class: str = ""
    # Written by EndpointSlice controller semantics: whether `type` was given explicitly
    # (ExternalPolicyLocal needs type exactly ClusterIP/NodePort/LoadBalancer).
    type_set: bool = True

    def __post_init__(self) -> None:
        _check(bool(self.name), "metadata.name", "a Service needs a name")
        names = [p.name for p in self.ports]
        if len(self.ports) > 1:
            _check(all(names), "spec.ports", "every port needs a name when there are several")
        _check(len(set(names)) == len(names), "spec.ports", "port names must be unique")
        if self.health_check_node_port is not None:
            _port_ok(self.health_check_node_port, "spec.healthCheckNodePort")
        _check(
            0 < self.affinity_timeout <= 86400,
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            f"{self.affinity_timeout} is outside 1-86400",
        )
        self._check_families()

    def _check_families(self) -> None:
        """The stand-alone checks of ValidateServiceClusterIPsRelatedFields
        (pkg/apis/core/validation/validation.go): policy and family names, no family twice,
        at most one ClusterIP per family, clusterIPs[i] of the family ipFamilies[i] names."""
        _check(not self.ip_family_policy or self.ip_family_policy in IP_FAMILY_POLICIES,
               "spec.ipFamilyPolicy", f"{self.ip_family_policy!r} is not one of "
               f"{', '.join(IP_FAMILY_POLICIES)}")
        for i, fam in enumerate(self.ip_families):
            _check(fam in IP_FAMILY_NAMES, f"spec.ipFamilies[{i}]",
                   f"{fam!r} is not IPv4 or IPv6")
            _check(fam not in self.ip_families[:i], f"spec.ipFamilies[{i}]",
                   f"duplicate value {fam!r}")
        _check(len(self.cluster_ips) <= 2, "spec.clusterIPs", "may only hold up to 2 values")
        _check(one_per_family(self.cluster_ips), "spec.clusterIPs",
               "may specify no more than one IP for each IP family")
        for i, (ip, fam) in enumerate(zip(self.cluster_ips, self.ip_families, strict=False)):
            _check(ip.version == IP_FAMILY_NAMES[fam], f"spec.clusterIPs[{i}]",
                   f"{ip}: expected an {fam} value as indicated by `ipFamilies[{i}]`")
        if self.ip_family_policy == "SingleStack":
            _check(len(self.cluster_ips) < 2, "spec.ipFamilyPolicy",
                   "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs "
                   "are specified")
            _check(len(self.ip_families) < 2, "spec.ipFamilyPolicy",
                   "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families "
                   "are specified")

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def families(self) -> tuple[int, ...]:
        """The Service's IP families as 4/6, primary first: ``ipFamilies``, else the families
        of its ClusterIPs (objects built in code)."""
        if self.ip_families:
            return tuple(IP_FAMILY_NAMES[f] for f in self.ip_families)
        return tuple(dict.fromkeys(ip.version for ip in self.cluster_ips))

    def cluster_ip(self, family: int) -> IPAddress | None:
        """The ClusterIP of that family (what that family's kube-proxy proxier programs), or
        None: a single-stack Service has no ClusterIP, hence no rules, in the other family."""
        for ip in self.cluster_ips:
            if ip.version == family:
                return ip
        return None

    @property
    def lb_ips(self) -> tuple[IPAddress, ...]:
        """LoadBalancer ingress IPs kube-proxy programs (ipMode VIP only; Proxy is left alone)."""
        if self.type != "LoadBalancer":
            return ()
        return tuple(i.ip for i in self.lb_ingress if i.ip is not None and i.ip_mode == "VIP")

    @property
    def all_lb_ips(self) -> tuple[IPAddress, ...]:
        if self.type != "LoadBalancer":
            return ()
        return tuple(i.ip for i in self.lb_ingress if i.ip is not None)

    @property
    def proxied(self) -> bool:
        """kube-proxy handles this Service (not headless, not ExternalName)."""
        return self.type != "ExternalName" and not self.headless and bool(self.cluster_ips)

    @property
    def externally_accessible_by_type(self) -> bool:
        """apiservice.ExternallyAccessible: LoadBalancer, NodePort, or exactly ClusterIP with
        externalIPs (an unset type does not count)."""
        if self.type in ("LoadBalancer", "NodePort"):
            return True
        return self.type == "ClusterIP" and self.type_set and bool(self.external_ips)

    @property
    def external_policy_local(self) -> bool:
        """apiservice.ExternalPolicyLocal."""
        return self.externally_accessible_by_type and self.external_traffic_policy == "Local"

    @property
    def internal_policy_local(self) -> bool:
        return self.internal_traffic_policy == "Local"

    @property
    def needs_health_check(self) -> bool:
        """apiservice.NeedsHealthCheck: LoadBalancer with ETP Local."""
        return self.type == "LoadBalancer" and self.external_policy_local


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One endpoint of an EndpointSlice; ``None`` conditions mean unset (kube-proxy reads an unset
    ready/serving as true)."""

    addresses: tuple[IPAddress, ...]
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None
    node_name: str = ""
    zone: str = ""
    hint_zones: tuple[str, ...] = ()
    hint_nodes: tuple[str, ...] = ()
    target_ref: str = ""

    def __post_init__(self) -> None:
        _check(bool(self.addresses), "addresses", "an endpoint needs at least one address")

    @property
    def is_ready(self) -> bool:
        return self.ready is None or self.ready

    @property
    def is_serving(self) -> bool:
        return self.serving is None or self.serving

    @property
    def is_terminating(self) -> bool:
        return bool(self.terminating)


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointPort:
    port: int
    name: str = ""
    protocol: str = "tcp"

    def __post_init__(self) -> None:
        _port_ok(self.port, "port")
        _check(self.protocol in PROTOCOLS, "protocol", f"{self.protocol!r} is not TCP/UDP/SCTP")


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointSlice:
    """An EndpointSlice (discovery.k8s.io/v1) of a Service."""

    namespace: str
    name: str
    service_name: str
    address_type: Literal["IPv4", "IPv6", "FQDN"] = "IPv4"
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()
    derived: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class IngressPath:
    host: str
    path: str
    service_name: str
    service_port: int | str


@dataclass(frozen=True, slots=True, kw_only=True)
class Ingress:
    """An Ingress, kept for the L7 step (routes from host/path to a Service port)."""

    namespace: str
    name: str
    ingress_class: str = ""
    paths: tuple[IngressPath, ...] = ()
    lb_ips: tuple[IPAddress, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict, hash=False)
    # "Ingress", or "HTTPRoute" for a Gateway API route (its parent Gateways in ``parents``,
    # ``ns/name``; the controller is found through Gateway -> GatewayClass)
    kind: str = "Ingress"
    parents: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayClass:
    """A Gateway API GatewayClass: which controller implements its Gateways."""

    name: str
    controller_name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Gateway:
    """A Gateway API Gateway: its class and listener ports (HTTP ones route HTTPRoutes)."""

    namespace: str
    name: str
    gateway_class: str = ""
    listener_ports: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyObject:
    """An implementation's policy attached to a Gateway (Envoy Gateway's
    ClientTrafficPolicy), kept whole for the controller model to read; ``targets`` are the
    ``Kind/ns/name`` it attaches to; ``locate`` as for :class:`ConfigMap`."""

    kind: str
    namespace: str
    name: str
    targets: tuple[str, ...] = ()
    obj: dict[str, object] = field(default_factory=dict, hash=False, compare=False)
    locate: Callable[[Exception], Exception] | None = field(default=None, compare=False,
                                                            hash=False, repr=False)


_RELEASE_RE = re.compile(r"1\.[0-9]{1,3}|master")
_RELEASE_TEXT_RE = re.compile(r"v?(1)\.([0-9]{1,3})(?:\.[0-9]+)?(?:[-+].*)?")


def kube_proxy_release_text(text: str) -> str:
    """A kube-proxy release as written by people (``v1.35.2``, ``1.35``, ``master``, ``main``)
    in ``KubeProxyConfig.version``'s form: ``1.35`` or ``master``; empty stays empty. Raises
    ``ValueError`` for anything else (whether the release is modelled is
    ``kubeproxy.releases``' business)."""
    t = text.strip().lower()
    if t in ("", "master"):
        return t
    if t == "main":
        return "master"
    m = _RELEASE_TEXT_RE.fullmatch(t)
    if m is None:
        raise ValueError(f"{text!r} is not a kube-proxy release like 1.35 or v1.35.2")
    return f"{m.group(1)}.{int(m.group(2))}"


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeProxyConfig:
    """The fields of KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) that change rules.

    Defaults are kube-proxy's. ``cluster_cidrs`` is ``clusterCIDR`` split on commas.
    """

    mode: ProxyMode = "iptables"
    cluster_cidrs: tuple[IPNetwork, ...] = ()
    detect_local_mode: DetectLocalMode = ""
    bridge_interface: str = ""
    interface_name_prefix: str = ""
    masquerade_all: bool = False
    masquerade_bit: int = 14
    localhost_node_ports: bool = True
    node_port_addresses: tuple[str, ...] = ()  # CIDRs, or the special value "primary"
    conntrack_tcp_be_liberal: bool = False
    hostname_override: str = ""
    # The kube-proxy release whose rules to build, "1.NN" or "master" (kubeproxy/releases.py
    # has the table; empty: its DEFAULT_VERSION). Read from the sourceip.dev/kubeProxyVersion
    # annotation or --kube-proxy-version.
    version: str = ""
    # ipvs mode (KubeProxyIPVSConfiguration): the scheduler of every virtual server ("": rr),
    # strictARP (arp_ignore/arp_announce sysctls, no rule changes), excludeCIDRs (virtual
    # servers kube-proxy leaves alone when it cleans up).
    ipvs_scheduler: str = ""
    ipvs_strict_arp: bool = False
    ipvs_exclude_cidrs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check(self.mode in ("iptables", "nftables", "ipvs"), "mode",
               f"{self.mode!r}: sourceip models the iptables, nftables and ipvs modes")
        _check(not self.ipvs_scheduler or self.ipvs_scheduler in IPVS_SCHEDULERS,
               "ipvs.scheduler", f"{self.ipvs_scheduler!r} is not one of "
               f"{', '.join(IPVS_SCHEDULERS)}")
        for i, cidr in enumerate(self.ipvs_exclude_cidrs):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValidationError(f"{cidr!r} is not a CIDR",
                                      field=f"ipvs.excludeCIDRs[{i}]") from None
        _check(not self.version or _RELEASE_RE.fullmatch(self.version) is not None,
               "kubeProxyVersion", f"{self.version!r} is not a release like 1.35 (or master)")
        # pkg/proxy/apis/config/validation Validate: clusterCIDR is one CIDR or a dual-stack
        # pair ("10.100.0.0/16,fde4:8dba:82e1::/48").
        _check(one_per_family(self.cluster_cidrs), "clusterCIDR",
               "only one CIDR allowed or a valid DualStack CIDR (e.g. "
               "10.100.0.0/16,fde4:8dba:82e1::/48)")
        _check(0 <= self.masquerade_bit <= 31, "iptables.masqueradeBit",
               f"{self.masquerade_bit} is outside 0-31")
        for i, cidr in enumerate(self.node_port_addresses):
            if cidr == "primary":
                continue
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValidationError(
                    f"{cidr!r} is not a CIDR", field=f"nodePortAddresses[{i}]"
                ) from None

    @property
    def effective_detect_local_mode(self) -> str:
        """kube-proxy's default: ClusterCIDR (it is a no-op detector without a clusterCIDR)."""
        return self.detect_local_mode or "ClusterCIDR"

    @property
    def masquerade_mark(self) -> int:
        return 1 << self.masquerade_bit

    def cluster_cidr(self, family: int) -> IPNetwork | None:
        """The clusterCIDR of that family (the one its proxier's local detector uses), or None."""
        for net in self.cluster_cidrs:
            if net.version == family:
                return net
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkProfile:
    """How the CNI wires pods (sourceip's own kind, ``sourceip.dev/v1alpha1 NetworkProfile``).

    * ``pod_attach``: ``bridge`` (pods on a bridge whose address is ``bridge_gateway`` — by default
      the first address of the node's pod CIDR) or ``routed`` (a veth per pod, routes via the
      node; the node answers with its own address).
    * ``inter_node``: ``direct`` (routes to other nodes' pod CIDRs via their node IPs) or
      ``tunnel`` (an overlay device ``tunnel_device`` whose address is the pod CIDR's network
      address, as flannel does).
    * ``egress_masquerade``: the CNI masquerades pod traffic to destinations outside
      ``pod_cidrs`` (flannel/calico natOutgoing).
    """

    name: str = "default"
    pod_attach: Literal["bridge", "routed"] = "bridge"
    bridge_name: str = "cni0"
    inter_node: Literal["direct", "tunnel"] = "direct"
    tunnel_device: str = "flannel.1"
    node_interface: str = "eth0"
    egress_masquerade: bool = False
    pod_cidrs: tuple[IPNetwork, ...] = ()
    # the API server's --service-cluster-ip-range (or ServiceCIDR objects): primary first; one
    # per family decides which families the cluster's Services may have
    service_cidrs: tuple[IPNetwork, ...] = ()

    def service_cidrs_of(self, family: int) -> tuple[IPNetwork, ...]:
        """The service CIDRs of that family."""
        return tuple(c for c in self.service_cidrs if c.version == family)

    def __post_init__(self) -> None:
        _check(self.pod_attach in ("bridge", "routed"), "spec.podAttach",
               f"{self.pod_attach!r} is not bridge or routed")
        _check(self.inter_node in ("direct", "tunnel"), "spec.interNode",
               f"{self.inter_node!r} is not direct or tunnel")
        for name in ("bridge_name", "tunnel_device", "node_interface"):
            value = getattr(self, name)
            _check(bool(value) and len(value) <= 15 and "/" not in value and " " not in value,
                   f"spec.{_camel(name)}", f"{value!r} is not a Linux interface name")


@dataclass(frozen=True, slots=True, kw_only=True)
class IngressClass:
    """An IngressClass (networking.k8s.io/v1): which controller serves Ingresses of this class."""

    name: str
    controller: str = ""
    default: bool = False  # ingressclass.kubernetes.io/is-default-class: "true"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigMap:
    """A ConfigMap's data, with a way back to the input line of each key for errors.

    ``locate(exc)`` fills in the file and line of ``exc.field`` (a path such as
    ``data["use-forwarded-headers"]``) and returns it; it is a no-op for objects built in code.
    """

    namespace: str
    name: str
    data: dict[str, str] = field(default_factory=dict, hash=False)
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    locate: Callable[[Exception], Exception] | None = field(default=None, compare=False,
                                                            hash=False, repr=False)
    # data keys that are configuration files (``*.yaml``, ``*.yml``, ``*.toml``), parsed;
    # a file that does not parse is left out (the ConfigMap may belong to anything)
    files: dict[str, object] = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


LB_PROVIDERS = ("generic", "gce", "aws-nlb-instance", "aws-nlb-ip", "aws-clb", "azure",
                "metallb-l2", "metallb-bgp", "octavia")
LB_MODES = ("forwarding", "proxying")
LB_PROXY_PROTOCOLS = ("none", "v1", "v2")
LB_HEALTH_PORTS = ("healthCheckNodePort", "nodePort", "kubeProxyHealthz", "none")
LB_POOLS = ("all-nodes", "endpoint-nodes", "l2-leader")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadBalancerProfile:
    """What a Service's annotations cannot say about the load balancer in front of it
    (sourceip's own kind ``sourceip.dev/v1alpha1 LoadBalancerProfile``).

    Empty fields mean "the provider's behaviour" (``sourceip.loadbalancer`` holds the provider
    table). ``services`` (``ns/name``) and ``load_balancer_class`` select the Services it applies
    to; with neither it applies to every LoadBalancer Service without a more specific profile.
    ``source_address`` is the address a proxying load balancer connects to the nodes from.
    """

    name: str = "default"
    provider: str = ""
    services: tuple[str, ...] = ()
    load_balancer_class: str = ""
    mode: str = ""
    proxy_protocol: str = ""
    health_check_port: str = ""
    health_check_path: str = ""
    pool: str = ""
    source_address: IPAddress | None = None

    def __post_init__(self) -> None:
        _check(not self.provider or self.provider in LB_PROVIDERS, "spec.provider",
               f"{self.provider!r} is not one of {', '.join(LB_PROVIDERS)}")
        _check(not self.mode or self.mode in LB_MODES, "spec.mode",
               f"{self.mode!r} is not forwarding or proxying")
        _check(not self.proxy_protocol or self.proxy_protocol in LB_PROXY_PROTOCOLS,
               "spec.proxyProtocol", f"{self.proxy_protocol!r} is not none, v1 or v2")
        _check(not self.health_check_port or self.health_check_port in LB_HEALTH_PORTS,
               "spec.healthCheck.port",
               f"{self.health_check_port!r} is not one of {', '.join(LB_HEALTH_PORTS)}")
        _check(not self.health_check_path or self.health_check_path.startswith("/"),
               "spec.healthCheck.path", f"{self.health_check_path!r} does not start with /")
        _check(not self.pool or self.pool in LB_POOLS, "spec.pool",
               f"{self.pool!r} is not one of {', '.join(LB_POOLS)}")
        for i, key in enumerate(self.services):
            _check(key.count("/") == 1 and all(key.split("/")), f"spec.services[{i}]",
                   f"{key!r} is not namespace/name")
