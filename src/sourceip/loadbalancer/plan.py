"""The load balancer in front of one LoadBalancer Service: ``plan_load_balancer`` and ``fixes``.

The plan says what the LB does with a client's connection: whether it keeps the client address
(forwarding) or connects from its own (proxying) and with which PROXY header, where it sends
packets (VIP:port, NodePort, pod), and, node by node, the health check it runs, the answer
(from ``sourceip.kubeproxy.healthcheck``: one truth for the model and the lab) and whether
the node is therefore in the pool.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sourceip.cluster import (
    Cluster,
    LoadBalancerProfile,
    Node,
    Service,
    categorize_endpoints,
    service_port_endpoints,
)
from sourceip.errors import ValidationError
from sourceip.kubeproxy.healthcheck import (
    PROXY_HEALTHZ_PORT,
    HealthResponse,
    health_check_node_port,
    local_ready_endpoints,
    proxy_health,
    service_health,
)
from sourceip.loadbalancer.detect import (
    AWS_PROXY_PROTOCOL,
    AWS_TARGET_TYPE,
    AWS_TG_ATTRIBUTES,
    AWS_TYPE,
    AZURE_NO_FLOATING_IP,
    OCTAVIA_PROXY_PROTOCOL,
    azure_floating_ip,
    detect_profile,
)
from sourceip.loadbalancer.providers import PROVIDERS

# k8s.io/api/core/v1 LabelNodeExcludeBalancers: the service controller leaves these nodes out
# of every LB (cloud-provider controllers/service), MetalLB's speakersForPool too.
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
CHECK_KINDS = ("healthCheckNodePort", "kubeProxyHealthz", "nodePort", "targetPort", "none")


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthCheck:
    """What the LB probes on each node: ``kind`` is one of ``CHECK_KINDS`` (``targetPort``:
    the pods' port, for IP targets); HTTP for the first two, a TCP connect for the ports."""

    port: int | None
    path: str
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in CHECK_KINDS:
            raise ValidationError(f"{self.kind!r} is not one of {', '.join(CHECK_KINDS)}",
                                  field="kind")

    @property
    def protocol(self) -> str:
        if self.kind in ("healthCheckNodePort", "kubeProxyHealthz"):
            return "http"
        return "none" if self.kind == "none" else "tcp"

    def __str__(self) -> str:
        if self.kind == "none":
            return "no health check"
        if self.protocol == "http":
            return f"HTTP GET :{self.port}{self.path}"
        return f"TCP connect :{self.port}" if self.port else "TCP connect (no port)"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "protocol": self.protocol, "port": self.port,
                "path": self.path}


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeCheck:
    """One node as the LB sees it: the check, kube-proxy's answer (None for a TCP connect or
    no check; then ``open`` says whether it succeeds), pool membership and why."""

    node: str
    check: HealthCheck
    response: HealthResponse | None
    open: bool
    in_pool: bool
    reason: str

    @property
    def passed(self) -> bool:
        if self.response is not None:
            return self.response.ok
        return self.open

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "check": self.check.to_dict(),
                "response": self.response.to_dict() if self.response else None,
                "open": self.open, "passed": self.passed, "in_pool": self.in_pool,
                "reason": self.reason}


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadBalancerPlan:
    """The LB in front of ``service``.

    ``target`` is ``vip`` (the LB sends to VIP:port and kube-proxy's LB rules take it),
    ``nodePort`` (node IP:``target_port``) or ``pod`` (pod IP:``target_port``, kube-proxy
    bypassed). ``weights`` are the ``X-Load-Balancing-Endpoint-Weight`` values of the nodes in
    the pool when the check is kube-proxy's healthCheckNodePort (else empty).
    """

    service: str
    profile: LoadBalancerProfile
    decided_by: str
    mode: str
    proxy_protocol: str | None
    vip: str | None
    source_address: str | None
    checks: tuple[NodeCheck, ...]
    pool: tuple[str, ...]
    leader: str | None
    target: str
    target_port: int
    notes: tuple[str, ...]
    weights: tuple[tuple[str, int], ...] = ()

    @property
    def forwarding(self) -> bool:
        return self.mode == "forwarding"

    def check_for(self, node: str) -> NodeCheck | None:
        for c in self.checks:
            if c.node == node:
                return c
        return None

    def to_dict(self) -> dict[str, Any]:
        p = self.profile
        return {
            "service": self.service,
            "provider": p.provider,
            "title": PROVIDERS[p.provider].title,
            "decided_by": self.decided_by,
            "profile": {
                "name": p.name, "provider": p.provider, "mode": p.mode,
                "proxyProtocol": p.proxy_protocol,
                "healthCheck": {"port": p.health_check_port, "path": p.health_check_path},
                "pool": p.pool,
                "sourceAddress": str(p.source_address) if p.source_address else None,
            },
            "mode": self.mode,
            "proxy_protocol": self.proxy_protocol,
            "vip": self.vip,
            "source_address": self.source_address,
            "target": self.target,
            "target_port": self.target_port,
            "checks": [c.to_dict() for c in self.checks],
            "pool": list(self.pool),
            "weights": {n: w for n, w in self.weights},
            "leader": self.leader,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------------


def _serving_nodes(cluster: Cluster, svc: Service) -> set[str]:
    """Nodes with an endpoint MetalLB's EndpointCanServe accepts (ready, unset ready, or
    serving explicitly true) — also the pods an IP-target LB registers."""
    out: set[str] = set()
    for es in cluster.slices_for(svc):
        for ep in es.endpoints:
            if ep.node_name and (ep.is_ready or ep.serving is True):
                out.add(ep.node_name)
    return out


def metallb_l2_leader(cluster: Cluster, svc: Service, ip: str,
                      candidates: list[str]) -> str | None:
    """MetalLB's layer-2 election (speaker/layer2_controller.go ShouldAnnounce): no leader
    without a serving endpoint anywhere; else the candidate whose sha256(node + "#" + ip) sorts
    first. ``candidates`` are the nodes with a speaker (eTP Local: those with a serving
    endpoint)."""
    if not _serving_nodes(cluster, svc) or not candidates:
        return None
    return min(candidates, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())


def _node_port_open(cluster: Cluster, svc: Service, node: Node, version: int = 4) -> bool:
    """Does a TCP connect to the node's NodePort over IP ``version`` reach an endpoint?
    kube-proxy (its proxier of that family) sends it to the endpoints CategorizeEndpoints
    gives the external policy (local ones for eTP Local)."""
    for sp in svc.ports:
        if not sp.node_port:
            continue
        eps = service_port_endpoints(cluster, svc, sp, version=version)
        cat = categorize_endpoints(eps, svc, node.name, node.zone)
        usable = cat.local if svc.external_policy_local else cat.cluster
        return bool(usable)
    return False


def _health_check(prof: LoadBalancerProfile, svc: Service, provider_target: str) -> HealthCheck:
    kind = prof.health_check_port
    if kind == "healthCheckNodePort":
        return HealthCheck(port=health_check_node_port(svc) or svc.health_check_node_port,
                           path=prof.health_check_path or "/healthz", kind=kind)
    if kind == "kubeProxyHealthz":
        return HealthCheck(port=PROXY_HEALTHZ_PORT, path=prof.health_check_path or "/healthz",
                           kind=kind)
    if kind == "nodePort":
        if provider_target == "pod":
            port = _pod_port(svc)
            return HealthCheck(port=port, path="", kind="targetPort")
        node_port = next((p.node_port for p in svc.ports if p.node_port), None)
        return HealthCheck(port=node_port, path="", kind="nodePort")
    return HealthCheck(port=None, path="", kind="none")


def _pod_port(svc: Service) -> int | None:
    target = svc.ports[0].effective_target if svc.ports else None
    return target if isinstance(target, int) else None


def _run_check(cluster: Cluster, svc: Service, node: Node, check: HealthCheck,
               serving: set[str], version: int = 4
               ) -> tuple[HealthResponse | None, bool, str]:
    """(kube-proxy's answer or None, whether a TCP check connects, a reason), the check
    run over IP ``version`` (kube-proxy's proxier of that family counts its family's
    endpoints)."""
    if check.kind == "healthCheckNodePort":
        if health_check_node_port(svc) is None or check.port != svc.health_check_node_port:
            return None, False, f"nothing listens on {check.port}: kube-proxy opens a " \
                "health check port only for eTP Local LoadBalancer Services"
        resp = service_health(cluster, node, svc, version=version)
        n = local_ready_endpoints(cluster, node, svc, version=version)
        return resp, False, f"{resp.status} on {check.port} ({n} local ready endpoints)"
    if check.kind == "kubeProxyHealthz":
        resp = proxy_health(cluster, node, path=check.path)
        extra = "" if resp.status != 503 else " (node being deleted or tainted " \
            "ToBeDeletedByClusterAutoscaler)"
        if resp.status == 404:
            extra = f" (kube-proxy serves only /healthz and /livez, not {check.path})"
        return resp, False, f"{resp.status} on {check.port}{check.path}{extra}"
    if check.kind == "nodePort":
        if check.port is None:
            return None, False, "no NodePort allocated (allocateLoadBalancerNodePorts: false)"
        ok = _node_port_open(cluster, svc, node, version)
        why = "connects" if ok else (
            "times out: no local endpoint (eTP Local drops)" if svc.external_policy_local
            else "refused: the Service has no endpoints")
        return None, ok, f"TCP {check.port} {why}"
    if check.kind == "targetPort":
        ok = node.name in serving
        return None, ok, ("pods on this node answer" if ok
                          else "no serving pod on this node (IP targets are pods)")
    return None, True, "no health check"


def _vip(svc: Service, family: int | None = None) -> str | None:
    ips = [ip for ip in svc.all_lb_ips if family is None or ip.version == family]
    return str(ips[0]) if ips else None


def plan_load_balancer(cluster: Cluster, service: Service, *,
                       family: int | None = None) -> LoadBalancerPlan | None:
    """The LB in front of ``service`` (None unless it is ``type: LoadBalancer``): profile and
    how it was decided, per-node checks with kube-proxy's answers, the pool, the MetalLB L2
    leader, what the LB sends to, and notes for explain.

    ``family`` (4 or 6) plans the LB of the Service's first ingress IP of that family (a
    dual-stack Service has one per family: MetalLB elects a layer-2 leader per IP, and a
    forwarding LB reaches the nodes in the VIP's family); None: its first ingress IP."""
    if service.type != "LoadBalancer":
        return None
    prof, decided = detect_profile(cluster, service)
    row = PROVIDERS[prof.provider]
    target = row.target
    if prof.provider == "azure" and not azure_floating_ip(service):
        target = "nodePort"
    if prof.mode == "proxying" and target == "vip":
        target = "nodePort"  # a proxy opens connections to the nodes' NodePorts
    check = _health_check(prof, service, row.target)
    serving = _serving_nodes(cluster, service)
    vip = _vip(service, family)
    # the family the LB reaches the nodes in: its source address's when it proxies from one,
    # else the VIP's (the Service's first family without a VIP)
    check_family = (prof.source_address.version if prof.mode == "proxying"
                    and prof.source_address is not None else
                    family or (6 if vip and ":" in vip else
                               6 if service.ip_families[:1] == ("IPv6",) else 4))
    notes: list[str] = []

    # Who may be in the pool before health checks.
    eligible = [n for n in cluster.nodes if n.labels.get(EXCLUDE_LABEL) is None]
    leader: str | None = None
    if prof.pool == "l2-leader":
        cands = [n.name for n in eligible
                 if not service.external_policy_local or n.name in serving]
        leader = metallb_l2_leader(cluster, service, vip, cands) if vip else None
        candidates = {leader} if leader else set()
    elif prof.pool == "endpoint-nodes":
        candidates = {n.name for n in eligible if n.name in serving}
    else:
        candidates = {n.name for n in eligible}

    checks: list[NodeCheck] = []
    weights: list[tuple[str, int]] = []
    for node in cluster.nodes:
        resp, is_open, why = _run_check(cluster, service, node, check, serving, check_family)
        passed = resp.ok if resp is not None else is_open
        if node.labels.get(EXCLUDE_LABEL) is not None:
            in_pool, reason = False, f"excluded: label {EXCLUDE_LABEL}"
        elif node.name not in candidates:
            in_pool = False
            if prof.pool == "l2-leader":
                reason = (f"not the layer-2 leader ({leader} announces {vip})" if leader
                          else "no layer-2 leader (no serving endpoint)")
            else:
                reason = "not a target: no serving endpoint on this node"
        elif not passed:
            in_pool, reason = False, f"taken out of the pool by the health check: {why}"
        else:
            in_pool = True
            reason = why if check.kind != "none" else (
                "announces the VIP (layer-2 leader)" if prof.pool == "l2-leader"
                else "receives traffic (no health check)")
        checks.append(NodeCheck(node=node.name, check=check, response=resp, open=is_open,
                                in_pool=in_pool, reason=reason))
        if in_pool and resp is not None and check.kind == "healthCheckNodePort":
            w = resp.header("X-Load-Balancing-Endpoint-Weight")
            if w is not None:
                weights.append((node.name, int(w)))
    pool = tuple(c.node for c in checks if c.in_pool)

    target_port = _target_port(service, target)
    proxy_protocol = None if prof.proxy_protocol in ("", "none") else prof.proxy_protocol
    source = str(prof.source_address) if prof.source_address is not None else None
    notes.extend(_notes(cluster, service, prof, row.proxy_source, target, check, checks, pool,
                        leader, vip, weights, proxy_protocol))
    return LoadBalancerPlan(
        service=service.key, profile=prof, decided_by=decided, mode=prof.mode,
        proxy_protocol=proxy_protocol, vip=vip,
        source_address=source if prof.mode == "proxying" else None,
        checks=tuple(checks), pool=pool, leader=leader, target=target,
        target_port=target_port, notes=tuple(notes), weights=tuple(weights),
    )


def _target_port(svc: Service, target: str) -> int:
    if not svc.ports:
        return 0
    sp = svc.ports[0]
    if target == "nodePort":
        return sp.node_port or 0
    if target == "pod":
        return _pod_port(svc) or 0
    return sp.port


def _notes(cluster: Cluster, svc: Service, prof: LoadBalancerProfile, proxy_source: str,
           target: str, check: HealthCheck, checks: list[NodeCheck], pool: tuple[str, ...],
           leader: str | None, vip: str | None, weights: list[tuple[str, int]],
           proxy_protocol: str | None) -> list[str]:
    out: list[str] = []
    if not cluster.nodes:
        out.append("no Nodes in the input: the load balancer has no pool to send to "
                   "(add the Node objects, e.g. kubectl get nodes -o yaml)")
    elif not pool:
        out.append("no node is in the pool: every health check fails (AWS NLB and GCE then "
                   "fail open and send to every target)")
    if vip is None:
        out.append("status.loadBalancer.ingress has no IP: the load balancer is not "
                   "provisioned yet (or gives a hostname only)")
    if len(svc.ports) > 1:
        out.append(f"target_port is for port {svc.ports[0].port}; the other ports follow the "
                   "same rules")
    if prof.mode == "proxying":
        src = prof.source_address or proxy_source
        out.append(f"the load balancer terminates TCP and connects from {src}: pods see that "
                   "address, not the client, whatever externalTrafficPolicy says")
    if proxy_protocol:
        out.append(f"the load balancer sends a PROXY {proxy_protocol} header with the client "
                   "address: the receiving app or ingress must read it on this port, enabled "
                   "on both sides at once (a receiver expecting PROXY rejects plain "
                   "connections, one not expecting it sees garbage)")
    if target == "pod":
        out.append("IP targets: the load balancer sends straight to pod IPs; kube-proxy and "
                   "externalTrafficPolicy are not on this path")
    elif svc.lb_ips:
        out.append(f"pods and nodes inside the cluster that connect to {vip} never reach the "
                   "load balancer: kube-proxy takes the LB IP itself (ipMode VIP)"
                   + (", so they send no PROXY header (set ipMode: Proxy)" if proxy_protocol
                      else ""))
    if leader is not None:
        out.append(f"MetalLB layer 2: {leader} alone answers ARP/NDP for {vip}; all traffic "
                   "enters there" + (" and only its pods serve it" if svc.external_policy_local
                                     else " and is spread by kube-proxy (with SNAT)"))
    if svc.external_policy_local and target != "pod" and len(weights) > 1:
        counts = {w for _, w in weights}
        if len(counts) > 1:
            detail = ", ".join(f"{n}: {w}" for n, w in weights)
            out.append(f"imbalance: the load balancer spreads per node, not per pod "
                       f"(local endpoints {detail}); pods on nodes with fewer endpoints get "
                       "more traffic each, unless it weighs nodes by "
                       "X-Load-Balancing-Endpoint-Weight")
    if (check.kind == "kubeProxyHealthz" and not svc.external_policy_local and pool):
        out.append("eTP Cluster: every node with a healthy kube-proxy is in the pool, also "
                   "nodes without endpoints, which forward to other nodes after SNAT")
    if prof.provider.startswith("aws-nlb") and prof.mode == "forwarding":
        out.append("AWS client IP preservation: the targets' security groups must allow the "
                   "client CIDRs (not only the NLB), and with an internal NLB a client that "
                   "is itself a registered target cannot connect (no hairpin)")
    if prof.provider == "aws-nlb-instance" and proxy_protocol and svc.external_policy_local:
        out.append("PROXY v2 with instance targets and eTP Local: the NLB health checks also "
                   "carry the PROXY header (AWS LBC docs warn against this combination)")
    if prof.provider == "azure" and target == "nodePort":
        out.append(f"{AZURE_NO_FLOATING_IP}: the LB rewrites the destination to node "
                   "IP:NodePort (the source is still the client)")
    return out


# ---------------------------------------------------------------------------------------------

Fix = tuple[str, str, tuple[str, ...]]


def _pp_setting(provider: str, version: str) -> str:
    if provider == "aws-clb" or provider.startswith("aws-nlb"):
        return f"{AWS_PROXY_PROTOCOL}: \"*\""
    if provider == "octavia":
        return f"{OCTAVIA_PROXY_PROTOCOL}: \"{'true' if version == 'v1' else 'v2'}\""
    return f"LoadBalancerProfile spec.proxyProtocol: {version}"


def fixes(plan: LoadBalancerPlan, service: Service | None = None) -> tuple[Fix, ...]:
    """The changes that make the client address reach the pod through this LB, each as
    ``(change, effect, side effects)``: the annotation or field to set and what it costs.
    Empty when the client address already arrives (forwarding with eTP Local, or IP targets
    with preservation)."""
    prov = plan.profile.provider
    row = PROVIDERS[prov]
    local = service.external_policy_local if service is not None else \
        plan.profile.health_check_port == "healthCheckNodePort"
    out: list[Fix] = []
    pp_costs = (
        "PROXY on both sides at once: the LB and the receiver (app, or ingress controller "
        "e.g. ingress-nginx use-proxy-protocol) must switch together, or connections break",
        "in-cluster clients of the LB IP bypass the LB (ipMode VIP) and send no header: set "
        "status.loadBalancer.ingress[].ipMode: Proxy or call the ClusterIP instead",
        "the LB's health checks may carry a PROXY header too",
    )
    if plan.mode == "proxying":
        if prov == "aws-nlb-ip":
            out.append((
                f"{AWS_TG_ATTRIBUTES}: preserve_client_ip.enabled=true",
                "the NLB keeps the client address; pods see the client",
                ("the pods' security groups must allow the client CIDRs, not only the NLB",
                 "an internal NLB cannot hairpin: a client that is a registered target fails",
                 "replies must route back through the NLB's subnets"),
            ))
        if prov == "aws-clb":
            out.append((
                f"{AWS_TYPE}: external + {AWS_TARGET_TYPE}: instance",
                "an NLB (AWS Load Balancer Controller) forwards packets and keeps the client "
                "address; with eTP Local the pod sees it",
                ("needs the AWS Load Balancer Controller; a new load balancer (new DNS name)",
                 "the nodes' security groups must allow the client CIDRs"),
            ))
        if not plan.proxy_protocol and row.proxy_protocols:
            version = row.proxy_protocols[-1]
            out.append((
                _pp_setting(prov, version),
                f"the LB prepends PROXY {version} with the client address; the receiver reads "
                "it there",
                pp_costs,
            ))
    elif not local and plan.target != "pod":
        costs = ["traffic is balanced per node, not per pod: nodes with fewer endpoints "
                 "overload their pods (imbalance)",
                 "only nodes with a ready endpoint pass the health check on "
                 "healthCheckNodePort; a node whose last pod terminates is taken out"]
        if prov == "metallb-l2":
            costs.append("MetalLB layer 2: the leader moves to a node with endpoints and all "
                         "traffic goes through that one node and its pods")
        out.append((
            "spec.externalTrafficPolicy: Local",
            "kube-proxy stops SNATing external traffic: the pod sees the client address",
            tuple(costs),
        ))
    if plan.mode == "forwarding" and prov == "azure" and plan.target == "nodePort":
        out.append((
            f"remove {AZURE_NO_FLOATING_IP}",
            "the LB keeps the frontend IP as destination (floating IP); the source address "
            "is unchanged either way",
            ("Private Link Service does not work with floating IP",),
        ))
    return tuple(out)


__all__ = [
    "CHECK_KINDS",
    "EXCLUDE_LABEL",
    "Fix",
    "HealthCheck",
    "LoadBalancerPlan",
    "NodeCheck",
    "fixes",
    "metallb_l2_leader",
    "plan_load_balancer",
]
