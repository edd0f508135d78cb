"""The Cluster snapshot: every object of the model plus the indexes the other packages query."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from sourceip.cluster.model import (
    ConfigMap,
    EndpointSlice,
    Gateway,
    GatewayClass,
    Ingress,
    IngressClass,
    KubeProxyConfig,
    LoadBalancerProfile,
    NetworkProfile,
    Node,
    Pod,
    PolicyObject,
    Service,
)
from sourceip.errors import LookupFailed
from sourceip.net.addr import IPAddress


@dataclass(frozen=True, slots=False, kw_only=True)
class Cluster:
    """An immutable snapshot of a cluster. ``notes`` are things the loader wants the user to
    know (skipped kinds, IPv6 not yet programmed, derived EndpointSlices)."""

    nodes: tuple[Node, ...] = ()
    pods: tuple[Pod, ...] = ()
    services: tuple[Service, ...] = ()
    endpoint_slices: tuple[EndpointSlice, ...] = ()
    ingresses: tuple[Ingress, ...] = ()
    ingress_classes: tuple[IngressClass, ...] = ()
    config_maps: tuple[ConfigMap, ...] = ()
    lb_profiles: tuple[LoadBalancerProfile, ...] = ()
    gateway_classes: tuple[GatewayClass, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    policies: tuple[PolicyObject, ...] = ()
    kube_proxy: KubeProxyConfig = field(default_factory=KubeProxyConfig)
    profile: NetworkProfile = field(default_factory=NetworkProfile)
    # The IP families the cluster serves Services in (4/6), primary first: the families of the
    # API server's --service-cluster-ip-range (profile.service_cidrs / ServiceCIDR objects),
    # else those the input shows (sources/convert.py cluster_families). Two: dual-stack.
    ip_families: tuple[int, ...] = (4,)
    notes: tuple[str, ...] = ()
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def dual_stack(self) -> bool:
        """The cluster serves both families (kube-proxy runs a proxier for each)."""
        return len(self.ip_families) == 2

    # ---- indexes (computed once, on first use) ----
    @cached_property
    def node_by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    @cached_property
    def service_by_key(self) -> dict[str, Service]:
        return {s.key: s for s in self.services}

    @cached_property
    def pod_by_key(self) -> dict[str, Pod]:
        return {p.key: p for p in self.pods}

    @cached_property
    def pods_by_node(self) -> dict[str, tuple[Pod, ...]]:
        acc: dict[str, list[Pod]] = defaultdict(list)
        for p in self.pods:
            acc[p.node_name].append(p)
        return {k: tuple(v) for k, v in acc.items()}

    @cached_property
    def pod_by_ip(self) -> dict[IPAddress, Pod]:
        return {ip: p for p in self.pods if not p.host_network for ip in p.ips}

    @cached_property
    def node_by_ip(self) -> dict[IPAddress, Node]:
        return {ip: n for n in self.nodes for ip in n.addresses}

    @cached_property
    def slices_by_service(self) -> dict[str, tuple[EndpointSlice, ...]]:
        acc: dict[str, list[EndpointSlice]] = defaultdict(list)
        for s in self.endpoint_slices:
            acc[f"{s.namespace}/{s.service_name}"].append(s)
        return {k: tuple(v) for k, v in acc.items()}

    # ---- lookups with errors that name what is missing ----
    def node(self, name: str) -> Node:
        try:
            return self.node_by_name[name]
        except KeyError:
            known = ", ".join(sorted(self.node_by_name)[:10]) or "none"
            raise LookupFailed(f"no node named {name!r} (nodes: {known})") from None

    def service(self, key: str) -> Service:
        """``key`` is ``ns/name`` or a bare name (namespace ``default``)."""
        if "/" not in key:
            key = f"default/{key}"
        try:
            return self.service_by_key[key]
        except KeyError:
            raise LookupFailed(f"no Service {key!r}") from None

    def pod(self, key: str) -> Pod:
        if "/" not in key:
            key = f"default/{key}"
        try:
            return self.pod_by_key[key]
        except KeyError:
            raise LookupFailed(f"no Pod {key!r}") from None

    def config_map(self, key: str) -> ConfigMap | None:
        """The ConfigMap ``ns/name``, or None."""
        for cm in self.config_maps:
            if cm.key == key:
                return cm
        return None

    def slices_for(self, svc: Service) -> tuple[EndpointSlice, ...]:
        return self.slices_by_service.get(svc.key, ())

    def with_(self, **changes: object) -> Cluster:
        """A new snapshot with fields replaced (indexes are rebuilt lazily)."""
        from dataclasses import replace

        return replace(self, **changes)  # type: ignore[arg-type]

    def services_matching(self, names: Iterable[str]) -> tuple[Service, ...]:
        return tuple(self.service(n) for n in names)
