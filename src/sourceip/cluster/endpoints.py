"""Endpoints as kube-proxy sees them, and CategorizeEndpoints.

Mirrors kubernetes/kubernetes pkg/proxy: ``endpointslicecache.go`` (addEndpoints: only
Addresses[0], unset ready/serving mean true, dedup by ip:port, ports matched by name and
protocol) and ``topology.go`` (CategorizeEndpoints, topologyModeFromHints, availableForTopology).
"""

from __future__ import annotations

from dataclasses import dataclass

from sourceip.cluster.cluster import Cluster
from sourceip.cluster.model import Service, ServicePort
from sourceip.net.addr import IPAddress, host_port


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyEndpoint:
    """One endpoint of one Service port, with the conditions kube-proxy reads."""

    ip: IPAddress
    port: int
    ready: bool
    serving: bool
    terminating: bool
    node_name: str
    zone_hints: frozenset[str] = frozenset()
    node_hints: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return host_port(self.ip, self.port)


def service_port_endpoints(
    cluster: Cluster, svc: Service, port: ServicePort, *, version: int = 4
) -> tuple[ProxyEndpoint, ...]:
    """The endpoints of ``svc``'s ``port`` for the IP family ``version``, in slice order,
    de-duplicated by ip:port as kube-proxy's EndpointSliceCache does."""
    family = "IPv4" if version == 4 else "IPv6"
    seen: set[tuple[IPAddress, int]] = set()
    out: list[ProxyEndpoint] = []
    for es in sorted(cluster.slices_for(svc), key=lambda s: s.name):
        if es.address_type != family:
            continue
        for ep_port in es.ports:
            if ep_port.name != port.name or ep_port.protocol != port.protocol:
                continue
            for ep in es.endpoints:
                ip = ep.addresses[0]
                if (ip, ep_port.port) in seen:
                    continue
                seen.add((ip, ep_port.port))
                out.append(
                    ProxyEndpoint(
                        ip=ip,
                        port=ep_port.port,
                        ready=ep.is_ready,
                        serving=ep.is_serving,
                        terminating=ep.is_terminating,
                        node_name=ep.node_name,
                        zone_hints=frozenset(ep.hint_zones),
                        node_hints=frozenset(ep.hint_nodes),
                    )
                )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Categorized:
    """Result of CategorizeEndpoints for one node."""

    cluster: tuple[ProxyEndpoint, ...]
    local: tuple[ProxyEndpoint, ...]
    all_reachable: tuple[ProxyEndpoint, ...]
    has_any: bool


def uses_cluster_endpoints(svc: Service) -> bool:
    """ServicePort.UsesClusterEndpoints: ITP != Local or externally accessible."""
    return not svc.internal_policy_local or externally_accessible(svc)


def uses_local_endpoints(svc: Service) -> bool:
    """ServicePort.UsesLocalEndpoints: ITP Local, or ETP Local and externally accessible."""
    return svc.internal_policy_local or (svc.external_policy_local and externally_accessible(svc))


def externally_accessible(svc: Service, port: ServicePort | None = None) -> bool:
    """BaseServicePortInfo.ExternallyAccessible: a nodePort, an LB VIP or an externalIP."""
    has_node_port = (
        any(p.node_port for p in svc.ports) if port is None else bool(port.node_port)
    )
    return has_node_port or bool(svc.lb_ips) or bool(svc.external_ips)


def _topology_mode(endpoints: tuple[ProxyEndpoint, ...], node_name: str, zone: str,
                   prefer_same_node: bool) -> str:
    has_for_node = has_for_zone = False
    all_node_hints = all_zone_hints = True
    for ep in endpoints:
        if not ep.ready:
            continue
        if not ep.node_hints:
            all_node_hints = False
        elif node_name in ep.node_hints:
            has_for_node = True
        if not ep.zone_hints:
            all_zone_hints = False
        elif zone in ep.zone_hints:
            has_for_zone = True
    if prefer_same_node and all_node_hints and has_for_node:
        return "PreferSameNode"
    if all_zone_hints and has_for_zone:
        return "PreferSameZone"
    return ""


def _available(ep: ProxyEndpoint, mode: str, node_name: str, zone: str) -> bool:
    if mode == "":
        return True
    if mode == "PreferSameNode":
        return node_name in ep.node_hints
    if mode == "PreferSameZone":
        return zone in ep.zone_hints
    return False


def categorize_endpoints(
    endpoints: tuple[ProxyEndpoint, ...],
    svc: Service,
    node_name: str,
    zone: str = "",
    *,
    prefer_same_node: bool = True,
) -> Categorized:
    """CategorizeEndpoints (pkg/proxy/topology.go): the endpoints the cluster policy and the
    local policy may use on ``node_name``, all reachable ones, and whether any usable endpoint
    exists anywhere."""
    cluster_eps: tuple[ProxyEndpoint, ...] = ()
    local_eps: tuple[ProxyEndpoint, ...] = ()
    has_any = False
    use_cluster = uses_cluster_endpoints(svc)
    if use_cluster:
        mode = _topology_mode(endpoints, node_name, zone, prefer_same_node)
        cluster_eps = tuple(
            ep for ep in endpoints if ep.ready and _available(ep, mode, node_name, zone)
        )
        if not cluster_eps:
            # No ready endpoint: fall back to serving+terminating ones.
            cluster_eps = tuple(ep for ep in endpoints if ep.serving and ep.terminating)
        if cluster_eps:
            has_any = True
    if not uses_local_endpoints(svc):
        return Categorized(cluster_eps, (), cluster_eps, has_any)

    has_local_ready = has_local_st = False
    for ep in endpoints:
        if ep.ready:
            has_any = True
            if ep.node_name == node_name:
                has_local_ready = True
        elif ep.serving and ep.terminating:
            has_any = True
            if ep.node_name == node_name:
                has_local_st = True
    if has_local_ready:
        local_eps = tuple(ep for ep in endpoints if ep.node_name == node_name and ep.ready)
    elif has_local_st:
        local_eps = tuple(
            ep for ep in endpoints
            if ep.node_name == node_name and ep.serving and ep.terminating
        )
    if not use_cluster:
        return Categorized((), local_eps, local_eps, has_any)
    if not local_eps:
        return Categorized(cluster_eps, local_eps, cluster_eps, has_any)
    union = {(ep.ip, ep.port): ep for ep in cluster_eps}
    for ep in local_eps:
        union.setdefault((ep.ip, ep.port), ep)
    return Categorized(cluster_eps, local_eps, tuple(union.values()), has_any)
