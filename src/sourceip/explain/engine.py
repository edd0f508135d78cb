"""explain: for each Service, every path that applies, what the pod sees and how to fix it.

Every answer comes from a trace through the rules kube-proxy would install (``dataplane``);
nothing here re-decides whether a packet is masqueraded. Nodes that behave the same are traced
once: kube-proxy's rules for a Service differ between nodes only by which endpoints are local,
so nodes are grouped by their local endpoints and one representative of each group is traced.
Settings that would change an answer (masqueradeAll, a pod range outside clusterCIDR, a
hostNetwork client, externalTrafficPolicy) are found by tracing the changed configuration too.

Each IP family a Service has (its ``clusterIPs``) is explained on its own, as kube-proxy
proxies each family on its own: one explanation per family and port, with the family's
ClusterIP, node addresses, LoadBalancer IPs and externalIPs, clients using their address of
that family (the external client: ``external_ip`` / ``external_ip6``). A single-stack
Service has no path of the other family (said in a note where the cluster has both).
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any

from sourceip.cluster import Cluster, EndpointSlice, Pod, Service, ServicePort
from sourceip.dataplane.topology import Topology, family_name
from sourceip.dataplane.trace import Outcome, Trace, fmt_prob
from sourceip.dataplane.tracer import DEFAULT_EXTERNAL_IP, DEFAULT_EXTERNAL_IP6, Start, Tracer
from sourceip.net.addr import IPAddress, host_port, parse_ip, parse_network

MAX_LISTED_NODES = 50
# A clusterCIDR that leaves a client pod out (the first that does not hold it), per family.
OUTSIDE_POD_RANGES = {4: ("100.64.0.0/10", "198.18.0.0/15"),
                      6: ("2001:db8:ff00::/40", "2001:db8:fe00::/40")}


@dataclass(frozen=True, slots=True, kw_only=True)
class Fix:
    """A change that would give the pod the real client address, and what it costs."""

    change: str
    effect: str
    side_effects: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"change": self.change, "effect": self.effect,
                "side_effects": list(self.side_effects)}


@dataclass(frozen=True, slots=True, kw_only=True)
class PathResult:
    """One path to a Service: who connects, to what, through which nodes, and the verdict."""

    kind: str  # pod-same-node | pod-other-node | node | hairpin | nodeport | loadbalancer |
    #            external-ip | pod-to-lb
    title: str
    client: str
    target: str
    nodes: tuple[str, ...]  # the first MAX_LISTED_NODES of the group
    trace: Trace
    seen: tuple[str, ...]  # "IP (what it is)" for each delivered outcome, most likely first
    real_client: bool | None  # None: nothing is delivered
    rewritten_by: tuple[str, ...]
    summary: str
    fixes: tuple[Fix, ...] = ()
    changes: tuple[str, ...] = ()  # settings that would change this answer
    node_count: int = 0  # how many nodes behave this way
    # kind "ingress": what the app receives behind the controller (peer, headers, the client
    # the recommended clientip strategy resolves, whether a client can forge it)
    app_sees: dict[str, Any] | None = None
    # paths through a load balancer: its profile, health checks per node and pool
    load_balancer: dict[str, Any] | None = None
    findings: tuple[str, ...] = ()
    # (probability, what the pod sees, is it the client) per distinct answer, most likely
    # first; more than one when outcomes differ (text output: "50%: ... NO | 50%: ... yes")
    shares: tuple[tuple[float, str, bool], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "title": self.title, "client": self.client,
            "target": self.target, "nodes": list(self.nodes), "node_count": self.node_count,
            "seen": list(self.seen),
            "real_client": self.real_client, "rewritten_by": list(self.rewritten_by),
            "summary": self.summary, "fixes": [f.to_dict() for f in self.fixes],
            "what_would_change_this": list(self.changes),
            "shares": [{"probability": prob, "seen": seen, "real_client": ok}
                       for prob, seen, ok in self.shares],
            "outcomes": [o.to_dict() for o in self.trace.outcomes],
            **({"app_sees": self.app_sees} if self.app_sees is not None else {}),
            **({"load_balancer": self.load_balancer} if self.load_balancer is not None else {}),
            **({"findings": list(self.findings)} if self.findings else {}),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceExplanation:
    service: str
    type: str
    cluster_ip: str | None
    port: str
    external_traffic_policy: str
    internal_traffic_policy: str
    paths: tuple[PathResult, ...]
    notes: tuple[str, ...] = ()
    family: int = 4  # the IP family of cluster_ip and of every path

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service, "type": self.type, "family": family_name(self.family),
            "cluster_ip": self.cluster_ip,
            "port": self.port, "external_traffic_policy": self.external_traffic_policy,
            "internal_traffic_policy": self.internal_traffic_policy,
            "paths": [p.to_dict() for p in self.paths], "notes": list(self.notes),
        }


@dataclass(slots=True)
class Explainer:
    """Explains Services of one cluster; shares routing state across Services."""

    cluster: Cluster
    external_ip: str = DEFAULT_EXTERNAL_IP  # either family: the external client of that family
    external_ip6: str = DEFAULT_EXTERNAL_IP6
    # Trace every node on its own instead of one representative per group (the lab probes
    # each node this way).
    expand_groups: bool = False
    # Large clusters: keep the endpoints of at most this many nodes per endpoint condition
    # (plus each node group's representative) when tracing a Service. What a pod sees depends
    # on the client's node and the endpoint's node class, not on which of many alike nodes
    # the endpoint runs on; probabilities are then those of the sample. None: every endpoint.
    sample_nodes: int | None = None
    topo: Topology = field(init=False)
    _transit: dict[Any, Any] = field(init=False)
    _slice_cache: dict[str, tuple[EndpointSlice, ...]] = field(init=False)
    _sorted_nodes: list[str] = field(init=False)
    _changes_cache: dict[tuple[Any, ...], tuple[str, ...]] = field(init=False)
    _eps_for: str = field(init=False)
    _eps: frozenset[IPAddress] = field(init=False)
    _discovery: Any = field(init=False)
    _ctrl_paths: dict[tuple[str, int], tuple[PathResult, ...]] = field(init=False)

    def __post_init__(self) -> None:
        self.topo = Topology(self.cluster)
        self._transit = {}
        self._slice_cache = {}
        self._changes_cache = {}
        self._eps_for = ""
        self._eps = frozenset()
        self._sorted_nodes = sorted(self.topo.nets)
        self._discovery = None
        self._ctrl_paths = {}

    @property
    def discovery(self) -> Any:
        """The cluster's ingress controllers and routes (``sourceip.ingress.discover``)."""
        if self._discovery is None:
            from sourceip.ingress.discover import discover

            self._discovery = discover(self.cluster)
        return self._discovery

    def controller_paths(self, svc: Service, sp: ServicePort) -> tuple[PathResult, ...]:
        """The paths of an ingress controller's own Service port (memoized: every Ingress
        rule behind the controller enters through them)."""
        key = (svc.key, sp.port)
        hit = self._ctrl_paths.get(key)
        if hit is None:
            hit = self._ctrl_paths[key] = self._explain_port(svc, sp, ingress=False,
                                                             family=None).paths
        return hit

    # ------------------------------------------------------------------ entry points
    def explain(self, names: list[str] | None = None) -> list[ServiceExplanation]:
        """Explanations for the named Services (``ns/name`` or ``name``), or all proxied ones."""
        if names:
            services = [self.cluster.service(n) for n in names]
        else:
            services = [s for s in self.cluster.services if s.proxied]
        out: list[ServiceExplanation] = []
        # Explaining keeps many acyclic objects (traces, compiled chains); the cyclic GC's
        # full-heap passes over them took a third of the time while finding almost no
        # garbage cycles (25 objects for 200 Services of bench/gen_cluster.py), so it is
        # paused meanwhile, as for loading and rule building.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            for svc in services:
                out.extend(self.explain_service(svc))
            if not names:  # pods reached without a Service: hostNetwork ports, hostPorts
                out.extend(self.explain_direct())
        finally:
            if was_enabled:
                gc.enable()
        return out

    def explain_direct(self) -> list[ServiceExplanation]:
        """Direct paths to every hostNetwork pod port and hostPort (``direct_paths``)."""
        from sourceip.explain.direct_paths import explain_direct

        return list(explain_direct(self))

    def explain_service(self, svc: Service) -> list[ServiceExplanation]:
        if not svc.proxied:
            why = "headless" if svc.headless else (
                "ExternalName" if svc.type == "ExternalName" else "has no ClusterIP")
            return [ServiceExplanation(
                service=svc.key, type=svc.type, cluster_ip=None, port="-",
                external_traffic_policy=svc.external_traffic_policy,
                internal_traffic_policy=svc.internal_traffic_policy, paths=(),
                notes=(f"not proxied by kube-proxy ({why}): clients connect to pod IPs "
                       "directly and the pod sees the client's own address",),
            )]
        out: list[ServiceExplanation] = []
        families = list(dict.fromkeys(ip.version for ip in svc.cluster_ips))
        ipvs = self.cluster.kube_proxy.mode == "ipvs"  # modelled for IPv4 only
        traced = [f for f in families if self.topo.family_nets[f] and not (ipvs and f == 6)]
        untraced = [f for f in families if f not in traced]
        if not traced and self.topo.nets:  # nothing of its families is traced: say why
            cip = svc.cluster_ips[0]
            out = [ServiceExplanation(
                service=svc.key, type=svc.type, cluster_ip=str(cip),
                port=f"{sp.name + ' ' if sp.name else ''}{sp.port}/{sp.protocol}",
                external_traffic_policy=svc.external_traffic_policy,
                internal_traffic_policy=svc.internal_traffic_policy, paths=(),
                family=cip.version) for sp in svc.ports]
        for fam in traced or families[:1]:  # no node at all: one explanation, no path
            if traced or not self.topo.nets:
                out += [self._explain_port(svc, sp, family=fam) for sp in svc.ports]
        if untraced and out and self.topo.nets:
            name = family_name(untraced[0])
            ips = ", ".join(str(ip) for ip in svc.cluster_ips if ip.version in untraced)
            why = (f"kube-proxy ipvs mode is modelled for IPv4 only, so no {name} path is "
                   "traced" if ipvs and self.topo.family_nets[untraced[0]] else
                   f"no node has an {name} address, so no {name} path is traced")
            note = f"{name} ClusterIP {ips}: {why}"
            out = [replace(e, notes=(*e.notes, note)) for e in out]
        return out

    # ------------------------------------------------------------------ per port
    def _slices(self, svc: Service) -> tuple[EndpointSlice, ...]:
        slices = self.cluster.slices_for(svc)
        k = self.sample_nodes
        if k is None:
            return slices
        eps = [ep for es in slices for ep in es.endpoints]
        if len({ep.node_name for ep in eps}) <= k or any(
                ep.hint_zones or ep.hint_nodes for ep in eps):
            return slices
        keep: set[str] = set()
        for sp in svc.ports:
            keep.update(nodes[0] for _, nodes in self._node_groups(svc, sp))
        per_class: dict[tuple[bool, bool, bool], list[str]] = defaultdict(list)
        for ep in eps:
            cls = (ep.is_ready, ep.is_serving, ep.is_terminating)
            if ep.node_name not in per_class[cls] and len(per_class[cls]) < k:
                per_class[cls].append(ep.node_name)
        for nodes in per_class.values():
            keep.update(nodes)
        return tuple(replace(es, endpoints=tuple(ep for ep in es.endpoints
                                                 if ep.node_name in keep))
                     for es in slices)

    def _external(self, tracer: Tracer, family: int) -> Start:
        """The external client of ``family``."""
        ip = tracer.external_ips[family]
        return tracer.start(f"external=[{ip}]" if family == 6 else f"external={ip}")

    def _tracer(self, svc: Service, family: int | None = None, **cfg_changes: Any) -> Tracer:
        """A tracer whose rules are those of ``svc`` alone; with ``family``, of a dual-stack
        Service's EndpointSlices only that family's (kube-proxy's proxier of a family reads
        the slices of its address type only; the other family's would be skipped anyway)."""
        key = svc.key if family is None or len(svc.cluster_ips) < 2 else f"{svc.key}\0{family}"
        slices = self._slice_cache.get(key)
        if slices is None:
            slices = self._slice_cache.get(svc.key)
            if slices is None:
                slices = self._slice_cache[svc.key] = self._slices(svc)
            if key != svc.key:
                kind = family_name(family or 4)
                slices = self._slice_cache[key] = tuple(
                    es for es in slices if es.address_type == kind)
        sub = Cluster(nodes=self.cluster.nodes, services=(svc,),
                      endpoint_slices=slices,
                      kube_proxy=self.cluster.kube_proxy, profile=self.cluster.profile)
        cfg = replace(self.cluster.kube_proxy, **cfg_changes) if cfg_changes else None
        return Tracer(self.cluster, cfg, topology=self.topo, rules_cluster=sub,
                      external_ip=self.external_ip, external_ip6=self.external_ip6,
                      transit_cache=self._transit)

    def _explain_port(self, svc: Service, sp: ServicePort, *, ingress: bool = True,
                      family: int | None = None) -> ServiceExplanation:
        """Every path to ``svc``:``sp`` in ``family`` (default: the Service's primary one,
        its first ClusterIP's); ingress paths with the primary family only."""
        primary = svc.cluster_ips[0].version
        fam = primary if family is None else family
        ingress = ingress and fam == primary
        tracer = self._tracer(svc, fam)
        groups = self._node_groups(svc, sp, family=fam)
        ep_nodes = [g for g in groups if g[0]]
        bare_nodes = [g for g in groups if not g[0]]
        cip = next(ip for ip in svc.cluster_ips if ip.version == fam)
        paths: list[PathResult] = []
        target = host_port(cip, sp.port)
        proto = sp.protocol

        # pod -> ClusterIP, from a node with an endpoint and from one without
        if ep_nodes:
            nodes = ep_nodes[0][1]
            start = self._client_pod(nodes[0], svc, fam)
            if start is not None:
                tr = tracer.trace_flow(start, cip, sp.port, proto, target_desc=target)
                paths.append(self._path("pod-same-node", f"pod on {nodes[0]} (a node with an "
                                        "endpoint) -> ClusterIP", start, target, nodes, tr))
        if bare_nodes:
            nodes = bare_nodes[0][1]
            start = self._client_pod(nodes[0], svc, fam)
            if start is not None:
                tr = tracer.trace_flow(start, cip, sp.port, proto, target_desc=target)
                p = self._path("pod-other-node", f"pod on {_nodes_label(nodes)} (no endpoint "
                               "there) -> ClusterIP", start, target, nodes, tr)
                paths.append(self._with_changes(p, svc, start, cip, sp, tracer))
        # node itself (hostNetwork client) -> ClusterIP
        for has_eps, nodes in groups:
            start = Start(kind="node", name=nodes[0], node=nodes[0])
            tr = tracer.trace_flow(start, cip, sp.port, proto, target_desc=target)
            label = "with" if has_eps else "without"
            paths.append(self._path("node", f"node itself / hostNetwork pod on "
                                    f"{_nodes_label(nodes)} ({label} an endpoint) -> ClusterIP",
                                    start, target, nodes, tr))
        # hairpin: an endpoint pod to its own Service
        hp = self._hairpin(svc, sp, tracer, cip)
        if hp is not None:
            paths.append(hp)
        # external -> NodePort on each group of nodes
        if sp.node_port:
            for _has_eps, nodes in groups:
                node = nodes[0]
                ip = self.topo.net(node, fam).ip
                start = self._external(tracer, fam)
                tr = tracer.trace_flow(start, ip, sp.node_port, proto,
                                       target_desc=f"{node}:{sp.node_port}")
                paths.append(self._path("nodeport", f"external -> NodePort on "
                                        f"{_nodes_label(nodes)}", start,
                                        f"<node IP>:{sp.node_port}", nodes, tr, svc=svc))
        # external -> LoadBalancer IPs and externalIPs, through each group of nodes
        from sourceip.explain.lb_paths import (
            checks_for,
            lb_plan,
            out_of_pool_title,
            through_lb_path,
        )

        plan = lb_plan(self, svc, fam)
        vips: list[tuple[str, IPAddress]] = []
        if plan is None or plan.mode != "proxying":
            vips += [("loadbalancer", ip) for ip in svc.lb_ips if ip.version == fam]
        vips += [("external-ip", ip) for ip in svc.external_ips if ip.version == fam]
        for kind, vip in vips:
            vgroups = groups
            if kind == "loadbalancer" and plan is not None:
                # nodes alike for kube-proxy may differ for the load balancer (its pool)
                vgroups = [(h, sub) for h, nodes in groups
                           for sub in ([n for n in nodes if n in plan.pool],
                                       [n for n in nodes if n not in plan.pool]) if sub]
            for _has_eps, nodes in vgroups:
                start = self._external(tracer, fam)
                tr = tracer.trace_flow(start, vip, sp.port, proto, via=nodes[0],
                                       target_desc=host_port(vip, sp.port))
                what = "LoadBalancer IP" if kind == "loadbalancer" else "externalIP"
                p = self._path(kind, f"external -> {what} {vip} arriving at "
                               f"{_nodes_label(nodes)}", start, host_port(vip, sp.port),
                               nodes, tr, svc=svc)
                if kind == "loadbalancer" and plan is not None:
                    out = out_of_pool_title(plan, nodes)
                    lbd = {"decided_by": plan.decided_by, "mode": plan.mode,
                           "checks": checks_for(plan, nodes), "in_pool": out is None}
                    if out is not None:
                        p = replace(p, title=f"external -> {what} {vip}: {_nodes_label(nodes)} "
                                    f"{out}", summary=f"the load balancer sends nothing to "
                                    f"{_nodes_label(nodes)}: {out}", real_client=None,
                                    seen=(), fixes=(), load_balancer=lbd)
                    else:
                        p = replace(p, load_balancer=lbd)
                paths.append(p)
        if plan is not None:
            for vip in svc.all_lb_ips:
                if vip.version != fam:
                    continue
                tp = through_lb_path(self, svc, sp, vip, plan, groups, tracer, PathResult, Fix)
                if tp is not None:
                    paths.append(tp)
        # pod -> its own Service's LoadBalancer IP (kube-proxy short-circuits the LB); no
        # client pod without Nodes (the CLI says that Nodes are missing)
        for vip in svc.lb_ips if groups else ():
            if vip.version != fam:
                continue
            src_nodes = (bare_nodes or ep_nodes)[0][1]
            start = self._client_pod(src_nodes[0], svc, fam)
            if start is not None:
                tr = tracer.trace_flow(start, vip, sp.port, proto,
                                       target_desc=host_port(vip, sp.port))
                paths.append(self._path("pod-to-lb", f"pod on {src_nodes[0]} -> LoadBalancer "
                                        f"IP {vip} (in-cluster)", start, host_port(vip, sp.port),
                                        src_nodes, tr, svc=svc))
        if ingress and self.cluster.ingresses:
            from sourceip.explain.ingress_paths import ingress_paths

            paths.extend(ingress_paths(self, svc, sp, self.discovery))
        if self.cluster.config_maps or self.cluster.ingresses:  # maybe a controller Service
            from sourceip.explain.ingress_paths import controller_service_findings

            paths = controller_service_findings(self, svc, paths)
        notes: list[str] = []
        ext = tracer.external_ips[fam]
        for cidr in self.cluster.kube_proxy.cluster_cidrs:
            if ext.version == cidr.version and ext in cidr:
                notes.append(f"the external client {ext} is inside kube-proxy's clusterCIDR "
                             f"{cidr}: kube-proxy treats it as pod traffic (use "
                             "--external-ip with an address outside the pod range)")
        for ing in svc.lb_ingress if plan is None else ():
            if ing.ip is not None and ing.ip.version == fam and ing.ip_mode == "Proxy":
                notes.append(
                    f"LoadBalancer IP {ing.ip} has ipMode Proxy: kube-proxy installs no rule "
                    "for it; the load balancer connects to the NodePort itself, so the pod "
                    "sees what the NodePort paths show for the load balancer's own address "
                    "(the client only through PROXY protocol or X-Forwarded-For)")
        other = 10 - fam
        if len(svc.cluster_ips) == 1 and self.topo.family_nets[other]:
            notes.append(f"single-stack {family_name(fam)} (ipFamilies "
                         f"{', '.join(svc.ip_families) or family_name(fam)}): it has no "
                         f"{family_name(other)} ClusterIP, so {family_name(other)} clients "
                         f"have no path to it")
        return ServiceExplanation(
            service=svc.key, type=svc.type, cluster_ip=str(cip),
            port=f"{sp.name + ' ' if sp.name else ''}{sp.port}/{sp.protocol}",
            external_traffic_policy=svc.external_traffic_policy,
            internal_traffic_policy=svc.internal_traffic_policy,
            paths=tuple(paths), notes=tuple(notes), family=fam,
        )

    # ------------------------------------------------------------------ helpers
    def _node_groups(self, svc: Service, sp: ServicePort, *, family: int | None = None
                     ) -> list[tuple[bool, list[str]]]:
        """Nodes grouped by their local endpoints: nodes with the same local endpoint count
        and condition behave the same; all nodes without endpoints form one group. With
        ``family``: that family's EndpointSlices and the nodes with an address of it."""
        nets = self.topo.nets if family is None else self.topo.family_nets[family]
        kind = "" if family is None else family_name(family)
        local: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
        for es in self.cluster.slices_for(svc):
            if kind and es.address_type != kind:
                continue
            if not any(p.name == sp.name and p.protocol == sp.protocol for p in es.ports):
                continue
            for ep in es.endpoints:
                if ep.node_name in nets:
                    local[ep.node_name].append((ep.is_ready, ep.is_terminating))
        by_sig: dict[tuple[tuple[bool, bool], ...], list[str]] = defaultdict(list)
        for node, conds in local.items():
            by_sig[tuple(sorted(conds))].append(node)
        groups: list[tuple[bool, list[str]]] = [(True, sorted(v)) for _, v in
                                                sorted(by_sig.items(), key=lambda kv: kv[1])]
        sorted_nodes = self._sorted_nodes if len(nets) == len(self.topo.nets) else sorted(nets)
        bare = _NodesWithout(sorted_nodes, local.keys())
        if len(bare):
            groups.append((False, bare))  # type: ignore[arg-type]
        if self.expand_groups:
            return [(has, [n]) for has, nodes in groups for n in nodes]
        return groups

    def _client_pod(self, node: str, svc: Service, family: int = 4) -> Start | None:
        """A pod on ``node`` that is not an endpoint of ``svc`` (a synthetic one if none),
        starting from its address of ``family``."""
        eps = self._endpoint_ips(svc)
        for pod in self.cluster.pods_by_node.get(node, ()):
            if pod.host_network or any(ip in eps for ip in pod.ips):
                continue
            ip = next((a for a in pod.ips if a.version == family), None)
            if ip is not None:
                return Start(kind="pod", name=pod.key, ip=ip, node=node, pod=pod)
        net = self.topo.net(node, family)
        if net.pod_cidr is None or net.pod_cidr.num_addresses < 8:
            return None
        taken = {p.ip for p in self.cluster.pods_by_node.get(node, ())}
        for offset in range(net.pod_cidr.num_addresses - 6, 1, -1):
            ip = net.pod_cidr.network_address + offset
            if ip not in taken and ip not in eps:
                pod = Pod(namespace="(any)", name=f"client-on-{node}", node_name=node, ips=(ip,))
                return Start(kind="pod", name=f"(a pod on {node})", ip=ip, node=node, pod=pod)
        return None

    def _endpoint_ips(self, svc: Service) -> frozenset[IPAddress]:
        if self._eps_for != svc.key:
            self._eps_for = svc.key
            self._eps = frozenset(ip for es in self.cluster.slices_for(svc)
                                  for ep in es.endpoints for ip in ep.addresses)
        return self._eps

    def _hairpin(self, svc: Service, sp: ServicePort, tracer: Tracer, cip: IPAddress
                 ) -> PathResult | None:
        nets = self.topo.family_nets[cip.version]
        for es in self.cluster.slices_for(svc):
            for ep in es.endpoints:
                if not ep.is_ready or ep.node_name not in nets:
                    continue
                ip = ep.addresses[0]
                pod = self.cluster.pod_by_ip.get(ip)
                if ip.version != cip.version:
                    continue
                name = pod.key if pod else f"(endpoint {ip})"
                start = Start(kind="pod", name=name, ip=ip, node=ep.node_name, pod=pod)
                tr = tracer.trace_flow(start, cip, sp.port, sp.protocol,
                                       target_desc=host_port(cip, sp.port))
                return self._path("hairpin", "an endpoint pod -> its own Service (hairpin)",
                                  start, host_port(cip, sp.port), [ep.node_name], tr)
        return None

    def describe_source(self, o: Outcome, client_ip: IPAddress | None,
                        client_is_node: bool = False) -> str:
        """``IP (what it is)`` for the address the pod saw."""
        ip = o.seen_source
        if ip is None:
            return "-"
        iface = o.snat_iface if o.snat_iface and o.snat_node else None
        return self.describe_ip(ip, client_ip, client_is_node=client_is_node,
                                snat=(o.snat_node, iface) if iface else None)

    def describe_ip(self, ip: IPAddress, client_ip: IPAddress | None = None, *,
                    client_is_node: bool = False,
                    snat: tuple[str | None, str] | None = None) -> str:
        """``IP (what it is)``: the client, a node's bridge/tunnel/address, a pod, or bare."""
        if client_ip is not None and ip == client_ip and not client_is_node:
            return f"{ip} (the client)"
        owner = self.topo.node_owning(ip)
        if owner is not None:
            net = self.topo.family_nets[ip.version].get(owner) or self.topo.net(owner)
            if ip == net.gateway:
                what = f"{owner}'s bridge {net.bridge_name}"
            elif ip == net.tunnel_addr:
                what = f"{owner}'s tunnel {net.tunnel_device}"
            else:
                what = f"{owner}'s address"
                if snat is not None and snat[0] == owner:
                    what += f" on {snat[1]}"
            return f"{ip} ({what})"
        pod = self.cluster.pod_by_ip.get(ip)
        if pod is not None:
            return f"{ip} (pod {pod.key})"
        return str(ip)

    def _path(self, kind: str, title: str, start: Start, target: str, nodes: list[str],
              tr: Trace, *, svc: Service | None = None) -> PathResult:
        client_ip = tr.original.src
        delivered = [o for o in tr.outcomes if o.disposition == "delivered"]
        seen: list[str] = []
        share: dict[str, list[Any]] = {}  # description -> [probability, is the client]
        for o in delivered:
            d = self.describe_source(o, client_ip, start.kind == "node")
            if d not in seen:
                seen.append(d)
            if start.kind == "node":  # the node itself: any of its own addresses identifies it
                ok = o.seen_source is not None \
                    and self.topo.node_owning(o.seen_source) == start.node
            else:
                ok = o.seen_source == client_ip
            entry = share.setdefault(d, [0.0, True])
            entry[0] += o.probability
            entry[1] = entry[1] and ok
        real: bool | None = all(ok for _, ok in share.values()) if delivered else None
        shares = sorted(((p, d, ok) for d, (p, ok) in share.items()), key=lambda s: -s[0])
        rewritten: list[str] = []
        for o in delivered:
            if o.masquerade and o.snat_node:
                rule = o.snat_step.text if o.snat_step else "MASQUERADE"
                r = f"{o.snat_node}: {rule}"
                if r not in rewritten:
                    rewritten.append(r)
        summary = self._summary(kind, tr, delivered, real)
        fixes = self._fixes(kind, tr, delivered, real, svc, nodes)
        if not tr.certain:  # outcomes hang on rules sourceip cannot decide: no yes/no
            real = None
            summary = "uncertain: depends on " + "; ".join(dict.fromkeys(
                r for o in tr.outcomes for r in o.depends_on))
        return PathResult(kind=kind, title=title, client=start.describe(), target=target,
                          nodes=tuple(nodes[:MAX_LISTED_NODES]), node_count=len(nodes),
                          trace=tr, seen=tuple(seen), real_client=real,
                          rewritten_by=tuple(rewritten), summary=summary, fixes=tuple(fixes),
                          shares=tuple(shares))

    def _summary(self, kind: str, tr: Trace, delivered: list[Outcome], real: bool | None) -> str:
        parts = []
        for o in tr.outcomes:
            if o.disposition == "delivered":
                continue
            why = f" by {o.drop_step.chain}" if o.drop_step else ""
            parts.append(f"{fmt_prob(o.probability)} {o.disposition}{why}")
        if not delivered:
            return "never reaches a pod: " + ", ".join(parts)
        if real:
            s = "the pod sees the real client address"
        else:
            s = "the pod sees a rewritten address, not the client"
        if kind == "hairpin":
            s += " (hairpin traffic is always masqueraded so the reply returns through conntrack)"
        if parts:
            s += "; " + ", ".join(parts)
        bad = [o for o in delivered if o.reply_ok is False]
        if bad:
            s += f"; reply problem: {bad[0].reply}"
        return s

    def _fixes(self, kind: str, tr: Trace, delivered: list[Outcome], real: bool | None,
               svc: Service | None, nodes: list[str]) -> list[Fix]:
        fixes: list[Fix] = []
        external = kind in ("nodeport", "loadbalancer", "external-ip", "through-lb")
        if external and svc is not None and real is False \
                and svc.external_traffic_policy != "Local":
            ready_on = {ep.node_name for es in self.cluster.slices_for(svc)
                        for ep in es.endpoints if ep.is_ready}
            no_ep = [n for n in self._sorted_nodes if n not in ready_on]
            side = [
                "nodes without a ready endpoint drop this traffic"
                + (f" ({_nodes_label(no_ep)})" if no_ep else ""),
                "load is spread per node, not per pod: nodes with more endpoints get no more "
                "traffic",
            ]
            if svc.type == "LoadBalancer":
                side.append("the load balancer must health-check healthCheckNodePort (kube-"
                            "proxy answers /healthz there: 200 with local endpoints, 503 "
                            "without) or it keeps sending to nodes that drop")
            else:
                side.append("clients must send to nodes that run an endpoint")
            fixes.append(Fix(change="spec.externalTrafficPolicy: Local",
                             effect="kube-proxy sends external traffic only to local "
                                    "endpoints and does not masquerade it",
                             side_effects=tuple(side)))
            fixes.append(Fix(change="put an Ingress / L7 proxy in front (HTTP only)",
                             effect="the client address travels in X-Forwarded-For / "
                                    "Forwarded; the pod's peer is the proxy",
                             side_effects=("the app must trust exactly the proxy hops in front "
                                           "of it, or clients can forge their address "
                                           "(sourceip.clientip)",)))
            fixes.append(Fix(change="enable PROXY protocol on the load balancer and the app",
                             effect="the client address is sent in a header before the data",
                             side_effects=("both ends must switch at once; in-cluster callers "
                                           "that bypass the LB send no header (set ipMode: "
                                           "Proxy)",)))
            fixes.append(Fix(change="hostNetwork: true on the server pod",
                             effect="the pod receives connections on the node's own address "
                                    "without kube-proxy in the path",
                             side_effects=("port conflicts: one such pod per node and port "
                                           "(the scheduler keeps the others Pending)",
                                           "clients must connect to the nodes that run it",
                                           "the pod shares the node's network namespace, "
                                           "identity and exposure; NetworkPolicy does not "
                                           "apply to it")))
            fixes.append(Fix(change="hostPort on the server pod's container port",
                             effect="the CNI portmap plugin DNATs nodeIP:hostPort to the pod "
                                    "and keeps the external client's address",
                             side_effects=("port conflicts and node-pinned clients as with "
                                           "hostNetwork; the pod keeps its own namespace",
                                           "pods of the same node (iptables back end), "
                                           "hairpin and localhost are masqueraded")))
        if external and svc is not None and real is None and svc.external_policy_local:
            hc = (f" (kube-proxy answers 503 on healthCheckNodePort "
                  f"{svc.health_check_node_port} there)" if svc.health_check_node_port else "")
            fixes.append(Fix(change="send external traffic only to nodes with a ready endpoint"
                                    + (": the load balancer must health-check "
                                       "healthCheckNodePort" if svc.type == "LoadBalancer"
                                       else ""),
                             effect=f"{_nodes_label(nodes)} has no local endpoint and drops "
                                    f"external traffic under externalTrafficPolicy: Local{hc}",
                             side_effects=("or set externalTrafficPolicy: Cluster: every node "
                                           "forwards, but the pod sees a node address",)))
        if kind == "pod-other-node" and real is False:
            cfg = self.cluster.kube_proxy
            if cfg.masquerade_all:
                fixes.append(Fix(change="kube-proxy iptables.masqueradeAll: false",
                                 effect="pod -> ClusterIP keeps the client pod address",
                                 side_effects=("only matters if something relied on SNAT",)))
            else:
                fixes.append(Fix(change="make kube-proxy's clusterCIDR (or detectLocalMode) "
                                        "cover every pod range",
                                 effect="pods are recognised as local traffic and not "
                                        "masqueraded",
                                 side_effects=("check the CNI's IP pools: all of them must be "
                                               "inside clusterCIDR",)))
        if kind == "pod-to-lb" and real is False:
            fixes.append(Fix(change="call the Service's ClusterIP (or DNS name) from inside "
                                    "the cluster",
                             effect="pod -> ClusterIP keeps the client pod address",
                             side_effects=("a proxying load balancer's PROXY header or TLS "
                                           "termination is skipped in-cluster; ipMode: Proxy "
                                           "makes kube-proxy send it to the LB instead",)))
        if kind == "hairpin":
            fixes.append(Fix(change="none needed: call localhost or the pod's own IP",
                             effect="a pod reaching itself through its Service is always "
                                    "masqueraded so that the reply returns via conntrack"))
        return fixes

    def _with_changes(self, p: PathResult, svc: Service, start: Start, cip: IPAddress,
                      sp: ServicePort, tracer: Tracer) -> PathResult:
        """Add which settings would change a pod -> ClusterIP answer, found by tracing them.

        With ``sample_nodes`` (large clusters) the answer is traced once per client node,
        internal traffic policy and endpoint presence, and reused for alike Services."""
        key = None
        if self.sample_nodes is not None:
            key = (start.node, svc.internal_traffic_policy, p.real_client)
            hit = self._changes_cache.get(key)
            if hit is not None:
                return replace(p, changes=hit)
        changes = self._changes(svc, start, cip, sp, tracer)
        if key is not None:
            self._changes_cache[key] = changes
        return replace(p, changes=changes)

    def _changes(self, svc: Service, start: Start, cip: IPAddress, sp: ServicePort,
                 tracer: Tracer) -> tuple[str, ...]:
        changes: list[str] = []
        cfg = self.cluster.kube_proxy
        target = host_port(cip, sp.port)
        if not cfg.masquerade_all:
            tr = self._tracer(svc, cip.version, masquerade_all=True).trace_flow(
                start, cip, sp.port, sp.protocol)
            d = self._seen_of(tr)
            if d:
                changes.append(f"with masqueradeAll: true the pod would see {d}")
        if cfg.cluster_cidrs and start.ip is not None:
            first, second = OUTSIDE_POD_RANGES[start.ip.version]
            other = parse_network(first if start.ip not in parse_network(first) else second)
            cidrs = (*(c for c in cfg.cluster_cidrs if c.version != other.version), other)
            tr = self._tracer(svc, cip.version, cluster_cidrs=cidrs).trace_flow(
                start, cip, sp.port, sp.protocol)
            d = self._seen_of(tr)
            if d:
                changes.append(f"with a pod range outside clusterCIDR ({start.ip} not in "
                               f"clusterCIDR) the pod would see {d}")
        elif not cfg.cluster_cidrs and cfg.effective_detect_local_mode == "ClusterCIDR":
            changes.append("kube-proxy has no clusterCIDR: it cannot tell pods from other "
                           "sources, so off-cluster sources are not masqueraded either")
        if start.node is not None:
            tr = tracer.trace_flow(Start(kind="node", name=start.node,
                                                    node=start.node), cip, sp.port,
                                              sp.protocol, target_desc=target)
            d = self._seen_of(tr)
            if d:
                changes.append(f"a hostNetwork client on {start.node} would make the pod see "
                               f"{d}")
        return tuple(changes)

    def _seen_of(self, tr: Trace) -> str:
        ds = [self.describe_source(o, None) for o in tr.outcomes
              if o.disposition == "delivered"]
        return ", ".join(dict.fromkeys(ds))


class _NodesWithout(Sequence[str]):
    """The sorted nodes not in ``exclude``, computed as far as they are read (thousands of
    nodes without an endpoint need not be listed for every Service)."""

    def __init__(self, nodes: list[str], exclude: Iterable[str]) -> None:
        self._nodes = nodes
        self._exclude = set(exclude)
        self._len = len(nodes) - len(self._exclude)  # exclude holds only known nodes

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        return (n for n in self._nodes if n not in self._exclude)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._len)
            return list(islice(iter(self), start, stop, step))
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(index)
        return next(islice(iter(self), index, None))


def _nodes_label(nodes: list[str] | tuple[str, ...]) -> str:
    if len(nodes) <= 3:
        return ", ".join(nodes)
    return f"{nodes[0]}, {nodes[1]} and {len(nodes) - 2} more nodes"


def explain(cluster: Cluster, services: list[str] | None = None, *,
            external_ip: str = DEFAULT_EXTERNAL_IP) -> list[ServiceExplanation]:
    """Explanations for ``services`` (all proxied Services when None)."""
    return Explainer(cluster, external_ip=external_ip).explain(services)


__all__ = ["Explainer", "Fix", "PathResult", "ServiceExplanation", "explain", "parse_ip"]
