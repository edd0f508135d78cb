"""Direct paths: clients connecting straight to ``nodeIP:port`` of a hostNetwork pod or a
``hostPort``, no Service in between — with what each costs.

For every hostNetwork pod's container port and every hostPort (one block per pod and port,
"Pod ns/name (direct, ...)"), the paths are traced through the same rules as Service paths
(kube-proxy's, plus the CNI portmap plugin's for hostPorts: ``dataplane.portmap``):

* the external client → the pod's node, and → each node where nothing listens on that port
  (other nodes do not answer: the connection is refused);
* a pod of the same node, a pod of another node, the pod itself (hostPort hairpin);
* the node itself (its own address, and ``127.0.0.1`` for a hostPort: the plugin masquerades
  localhost), another node.

The tracer ends a connection to a node's own address without DNAT as ``passed`` (it reached
the node's sockets); whether a socket listens there is a fact about pods, decided here: a
hostNetwork pod of that node declaring the port answers (``delivered``), else the node refuses
(``rejected``: TCP RST, or ICMP port unreachable for UDP).

Costs are findings of each block: two pods asking for the same port on one node (the
scheduler's NodePorts filter keeps one of them Pending), Pending pods whose port is taken,
a hostNetwork pod's exposure (the node's other ports and loopback, its network identity, no
NetworkPolicy), clients that must know which nodes run the pod; and the fixes compared.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sourceip.cluster import Cluster, ContainerPort, Pod
from sourceip.dataplane.portmap import PORTMAP_RELEASE, sandboxes
from sourceip.dataplane.topology import family_name
from sourceip.dataplane.trace import Outcome, Trace
from sourceip.dataplane.tracer import Start, Tracer
from sourceip.explain.engine import Fix, PathResult, ServiceExplanation
from sourceip.net.addr import IPAddress, host_port, parse_ip

if TYPE_CHECKING:
    from sourceip.explain.engine import Explainer

DIRECT_KINDS = ("hostnetwork", "hostport")
LOCALHOST = parse_ip("127.0.0.1")


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectExplanation(ServiceExplanation):
    """The direct paths of one pod's port (not a Service: ``service`` holds ``ns/name``,
    ``type`` ``hostNetwork`` or ``hostPort``). Rendered as "Pod ns/name (direct, ...)"."""

    pod: str
    node: str
    mode: str  # hostNetwork | hostPort
    protocol: str
    host_port: int
    container_port: int
    host_ip: str | None = None
    findings: tuple[str, ...] = ()

    @property
    def heading(self) -> str:
        what = (f"hostNetwork, {self.host_port}/{self.protocol} on {self.node}"
                if self.mode == "hostNetwork" else
                f"hostPort {self.host_port}/{self.protocol} on {self.host_ip or self.node} "
                f"-> container port {self.container_port}")
        return f"Pod {self.pod} (direct, {what})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "pod": self.pod, "node": self.node, "mode": self.mode,
            "family": family_name(self.family),
            "protocol": self.protocol, "host_port": self.host_port,
            "container_port": self.container_port, "host_ip": self.host_ip,
            "paths": [p.to_dict() for p in self.paths],
            "findings": list(self.findings), "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class _Listener:
    pod: Pod
    port: ContainerPort
    mode: str  # hostNetwork | hostPort

    @property
    def host_port(self) -> int:
        return self.port.host_port or self.port.container_port

    @property
    def host_ip(self) -> IPAddress | None:
        ip = self.port.host_ip
        return None if ip is None or ip.is_unspecified or self.mode == "hostNetwork" else ip


def _running(pod: Pod) -> bool:
    return bool(pod.node_name) and pod.phase == "Running" and not pod.terminating


def listeners(cluster: Cluster) -> list[_Listener]:
    """Every hostNetwork pod port and hostPort of a running pod, by pod then port."""
    out: list[_Listener] = []
    for pod in sorted(cluster.pods, key=lambda p: p.key):
        if not _running(pod):
            continue
        for cp in pod.ports:
            if pod.host_network:
                out.append(_Listener(pod, cp, "hostNetwork"))
            elif cp.host_port:
                out.append(_Listener(pod, cp, "hostPort"))
    return out


def _clash(a: _Listener, b: _Listener) -> bool:
    """The scheduler's NodePorts conflict: same protocol and port, and hostIPs that overlap
    (0.0.0.0 / none overlaps every address)."""
    if a.port.protocol != b.port.protocol or a.host_port != b.host_port:
        return False
    return a.host_ip is None or b.host_ip is None or a.host_ip == b.host_ip


def _wanted(pod: Pod) -> list[_Listener]:
    return [_Listener(pod, cp, "hostNetwork" if pod.host_network else "hostPort")
            for cp in pod.ports if pod.host_network or cp.host_port]


def conflict_findings(cluster: Cluster, lst: _Listener, lsts: list[_Listener],
                      by_node: dict[str, list[_Listener]]) -> list[str]:
    """Port conflicts that involve ``lst``'s port: another running pod on its node, and
    Pending pods that ask for it (``lsts``: every listener; ``by_node``: them per node)."""
    out: list[str] = []
    node = lst.pod.node_name
    spec = f"{lst.host_port}/{lst.port.protocol.upper()}"
    same = [o for o in by_node.get(node, []) if o.pod != lst.pod and _clash(o, lst)]
    if same:
        names = ", ".join(o.pod.key for o in same)
        keeper = min([lst.pod.key, *(o.pod.key for o in same)])
        out.append(f"port conflict: {names} also asks for {spec} on {node}: the scheduler's "
                   "NodePorts filter never places two such pods on one node, so one of them "
                   "stays Pending (a kubelet given both rejects one); sourceip takes "
                   f"{keeper} as holding the port")
    pending = [p for p in cluster.pods if p.phase == "Pending" and not p.node_name
               and any(_clash(w, lst) for w in _wanted(p))]
    if not pending:
        return out
    taken_on = {o.pod.node_name for o in lsts if _clash(o, lst)}
    nodes = sorted(n.name for n in cluster.nodes)
    taken = [n for n in nodes if n in taken_on]
    free = [n for n in nodes if n not in taken_on]
    why = (f"{spec} is taken on every node ({', '.join(taken)}): it stays Pending until one "
           "of them frees the port" if not free else
           f"{spec} is taken on {', '.join(taken) or 'no node'} and free on "
           f"{', '.join(free)}: only those nodes can take it")
    for pod in sorted(pending, key=lambda p: p.key):
        out.append(f"pod {pod.key} is Pending and asks for the same port: {why}")
    return out


def cost_findings(cluster: Cluster, lst: _Listener, answering: list[str]) -> list[str]:
    """What a direct port costs, beyond conflicts."""
    spec = f"{lst.host_port}/{lst.port.protocol.upper()}"
    out = [f"clients must know which nodes run the pod: {spec} answers on "
           f"{', '.join(answering)} only; no Service VIP or load balancer spreads clients, "
           "and when the pod moves, whatever lists the nodes (DNS, client config) must follow",
           f"at most one pod with {spec} per node: replicas beyond the number of nodes stay "
           "Pending and a rolling update cannot start the new pod on a node before the old "
           "one is gone (maxSurge needs free nodes)"]
    if lst.mode == "hostNetwork":
        out += [
            f"{lst.pod.key} runs in {lst.pod.node_name}'s network namespace: every port it "
            "opens (declared or not) is reachable on every address of the node, and it can "
            "reach what listens on the node's loopback (kubelet's 127.0.0.1:10248 health "
            "port, local admin endpoints)",
            "it has the node's network identity: its own connections leave with the node's "
            "address, so servers it calls cannot tell it from the node or other hostNetwork "
            "pods there",
            "NetworkPolicy does not apply to it: policies select pods on the pod network, "
            "not hostNetwork pods, so nothing filters who reaches it",
        ]
    else:
        out.append(
            f"the portmap plugin ({PORTMAP_RELEASE}) must be chained in the CNI config "
            "(some CNIs ignore hostPort); the pod keeps its own network namespace, so "
            "NetworkPolicy still applies to it")
    return out


def compared_fixes(lst: _Listener) -> tuple[Fix, ...]:
    """The direct path next to the other ways of getting the client address."""
    own = Fix(
        change=("hostNetwork: true (what this pod does)" if lst.mode == "hostNetwork" else
                "hostPort (what this pod does)"),
        effect="external clients connecting straight to a node that runs the pod are seen "
               "as themselves: nothing masquerades them",
        side_effects=("one pod per node and port; clients must pick the right nodes",
                      *(("the pod shares the node's network namespace, identity and "
                         "exposure; NetworkPolicy does not apply",)
                        if lst.mode == "hostNetwork" else
                        ("same-node pods, hairpin and localhost are masqueraded by the "
                         "portmap plugin",))))
    alt = Fix(
        change="hostPort instead of hostNetwork" if lst.mode == "hostNetwork" else
        "a Service with externalTrafficPolicy: Local instead",
        effect="external clients keep their address (portmap only DNATs)"
        if lst.mode == "hostNetwork" else
        "kube-proxy delivers external traffic to local endpoints without masquerading",
        side_effects=("the pod keeps its own network namespace; NetworkPolicy applies",
                      "pods of the pod's own node (iptables back end: its whole subnet) are "
                      "seen as the node's bridge address")
        if lst.mode == "hostNetwork" else
        ("nodes without a ready endpoint drop the traffic: a load balancer must health-check "
         "healthCheckNodePort",
         "no port conflicts, a stable VIP / NodePort; NetworkPolicy applies"))
    l7 = Fix(change="an Ingress / L7 proxy in front (HTTP only)",
             effect="the client address travels in X-Forwarded-For / Forwarded",
             side_effects=("the app must trust exactly the proxies in front of it, or "
                           "clients forge their address (sourceip.clientip)",))
    return (own, alt, l7)


# ----------------------------------------------------------------------------- tracing


def _pod_ip(pod: Pod, family: int) -> IPAddress | None:
    """``pod``'s address of ``family`` (its first one), None without one."""
    return next((a for a in pod.ips if a.version == family), None)


def _client_pod(cluster: Cluster, explainer: Explainer, node: str, avoid: Pod,
                family: int = 4) -> Start | None:
    """A pod on ``node`` other than ``avoid`` with an address of ``family`` (a synthetic one
    when none runs there)."""
    # plain client pods first: a pod that itself listens on a host port is a server
    for pod in sorted(cluster.pods_by_node.get(node, ()),
                      key=lambda p: (any(cp.host_port for cp in p.ports), p.key)):
        ip = _pod_ip(pod, family)
        if pod is not avoid and not pod.host_network and ip is not None and _running(pod):
            return Start(kind="pod", name=pod.key, ip=ip, node=node, pod=pod)
    if not explainer.topo.has_family(node, family):
        return None
    net = explainer.topo.net(node, family)
    if net.pod_cidr is None or net.pod_cidr.num_addresses < 8:
        return None
    taken = {a for p in cluster.pods_by_node.get(node, ()) for a in p.ips}
    for offset in range(min(net.pod_cidr.num_addresses, 1 << 16) - 6, 1, -1):
        ip = net.pod_cidr.network_address + offset
        if ip not in taken:
            pod = Pod(namespace="(any)", name=f"client-on-{node}", node_name=node, ips=(ip,))
            return Start(kind="pod", name=f"(a pod on {node})", ip=ip, node=node, pod=pod)
    return None


def _sockets(trace: Trace, open_on: dict[tuple[str, int, str], Pod]) -> Trace:
    """Decide ``passed`` outcomes that reached a node's own stack: a hostNetwork pod listens
    there (``delivered``) or nothing does (``rejected``)."""
    outs: list[Outcome] = []
    for o in trace.outcomes:
        if o.disposition == "passed" and o.hops and o.hops[-1].node is not None:
            node = o.hops[-1].node
            pod = open_on.get((node, trace.original.dport, trace.original.proto))
            if pod is not None:
                o = replace(o, disposition="delivered",
                            endpoint_name=f"pod/{pod.key} (hostNetwork)")
            else:
                o = replace(o, disposition="rejected", endpoint=None, endpoint_name=None,
                            seen_source=None, reply_ok=None,
                            notes=(*o.notes, f"nothing listens on {node}:"
                                   f"{trace.original.dport}/{trace.original.proto}: refused"))
        outs.append(o)
    return replace(trace, outcomes=tuple(outs))


def explain_direct(explainer: Explainer) -> list[DirectExplanation]:
    """One block per running hostNetwork pod port and hostPort of ``explainer.cluster``."""
    cluster = explainer.cluster
    lsts = listeners(cluster)
    if not lsts:
        return []
    ports = {lst.host_port for lst in lsts}
    # kube-proxy's rules for Services whose NodePort is one of these ports (KUBE-SERVICES
    # comes before the plugin's jump: a NodePort wins); other Services cannot match.
    svcs = tuple(s for s in cluster.services if any(p.node_port in ports for p in s.ports))
    rules = Cluster(nodes=cluster.nodes, services=svcs,
                    endpoint_slices=tuple(es for s in svcs for es in cluster.slices_for(s)),
                    kube_proxy=cluster.kube_proxy, profile=cluster.profile)
    tracer = Tracer(cluster, topology=explainer.topo, rules_cluster=rules,
                    external_ip=explainer.external_ip, external_ip6=explainer.external_ip6)
    by_node: dict[str, list[_Listener]] = defaultdict(list)
    open_on: dict[tuple[str, int, str], Pod] = {}
    for lst in lsts:
        by_node[lst.pod.node_name].append(lst)
        if lst.mode == "hostNetwork":
            open_on.setdefault((lst.pod.node_name, lst.host_port, lst.port.protocol), lst.pod)
    # the portmap plugin runs once per pod address: its rules of each family
    dnat_on = {fam: {(sb.pod, m.host_port, m.protocol)
                     for n in explainer.topo.family_nets[fam]
                     for sb in sandboxes(cluster, n, fam) for m in sb.mappings}
               for fam in (4, 6)}
    out: list[DirectExplanation] = []
    for lst in lsts:  # each pod port in IPv4, then in IPv6
        for fam in (4, 6):
            node = lst.pod.node_name
            if node not in explainer.topo.nets or not explainer.topo.has_family(node, fam):
                continue
            if lst.host_ip is not None and lst.host_ip.version != fam:
                continue  # a hostIP of the other family: no rule of this one (fillDnatRules)
            if lst.mode == "hostNetwork" and _pod_ip(lst.pod, fam) is None \
                    and lst.pod.ips:
                continue  # the node has the family but the pod's status does not list it
            out.append(_explain_one(explainer, tracer, lst, lsts, by_node, open_on,
                                    dnat_on[fam], fam))
    return out


def _explain_one(explainer: Explainer, tracer: Tracer, lst: _Listener, lsts: list[_Listener],
                 by_node: dict[str, list[_Listener]], open_on: dict[tuple[str, int, str], Pod],
                 dnat_on: set[tuple[str, int, str]], family: int = 4) -> DirectExplanation:
    cluster = explainer.cluster
    pod, node, proto = lst.pod, lst.pod.node_name, lst.port.protocol
    port = lst.host_port
    kind = lst.mode.lower()
    how = f"direct, {lst.mode}"
    node_ip = explainer.topo.net(node, family).ip
    target_ip = lst.host_ip or node_ip
    paths: list[PathResult] = []

    def add(title: str, start: Start | None, dst: IPAddress, nodes: list[str],
            explain_text: str = "") -> None:
        if start is None:
            return
        tr = _sockets(tracer.trace_flow(start, dst, port, proto,
                                        target_desc=host_port(dst, port)), open_on)
        p = explainer._path(kind, f"{title} ({how})", start, host_port(dst, port), nodes, tr)
        summary = f"{how}: {p.summary}"
        if explain_text and p.real_client is False:
            summary += f"; {explain_text}"
        p = replace(p, summary=summary)
        paths.append(p)

    ext = explainer._external(tracer, family)
    add(f"external -> {node}:{port}", ext, target_ip, [node])
    add(f"pod on {node} -> {node}:{port}", _client_pod(cluster, explainer, node, pod, family),
        target_ip, [node],
        "the portmap plugin masquerades sources in the pod's own subnet "
        "(-s podIP/prefix -j CNI-HOSTPORT-SETMARK): pods of this node are seen as the "
        "node's bridge address" if lst.mode == "hostPort" else "")
    others = [n for n in sorted(explainer.topo.family_nets[family]) if n != node]
    if others:
        add(f"pod on {others[0]} -> {node}:{port}",
            _client_pod(cluster, explainer, others[0], pod, family), target_ip, [others[0]])
    own_ip = _pod_ip(pod, family)
    if lst.mode == "hostPort" and own_ip is not None:
        add(f"the pod itself -> {node}:{port} (hairpin)",
            Start(kind="pod", name=pod.key, ip=own_ip, node=node, pod=pod), target_ip, [node],
            "hairpin traffic is masqueraded so that the reply returns through conntrack "
            "(call localhost instead)")
    add(f"node {node} itself -> {node}:{port}", Start(kind="node", name=node, node=node),
        target_ip, [node])
    # localhost: IPv4 only (the plugin masquerades 127.0.0.1 and sets route_localnet; it
    # has no rule for ::1, which IPv6 never routes out of lo)
    if lst.mode == "hostPort" and lst.host_ip is None and family == 4:
        add(f"node {node} itself -> 127.0.0.1:{port}",
            Start(kind="node", name=node, node=node), LOCALHOST, [node],
            "the portmap plugin masquerades 127.0.0.1 (route_localnet lets it leave lo)")
    if others:
        add(f"node {others[0]} -> {node}:{port}",
            Start(kind="node", name=others[0], node=others[0]), target_ip, [others[0]])
    # other nodes: where nothing answers on this port
    answering = sorted({o.pod.node_name for o in lsts
                        if o.host_port == port and o.port.protocol == proto})
    silent = [n for n in others if n not in answering
              and (n, port, proto) not in open_on]
    groups = [[n] for n in silent] if explainer.expand_groups else ([silent] if silent else [])
    for nodes in groups:
        n = nodes[0]
        label = n if len(nodes) == 1 else f"{n} (and {len(nodes) - 1} more nodes)"
        start = explainer._external(tracer, family)
        tr = _sockets(tracer.trace_flow(start, explainer.topo.net(n, family).ip, port, proto,
                                        target_desc=f"{n}:{port}"), open_on)
        p = explainer._path(kind, f"external -> {label}:{port}, a node without the pod "
                            f"({how})", start, f"<node IP>:{port}", nodes, tr)
        p = replace(p, summary=f"{how}: {n} runs no pod with {port}/{proto}: the connection "
                    "is refused" if not p.seen else f"{how}: {p.summary}")
        paths.append(p)
    findings = conflict_findings(cluster, lst, lsts, by_node) + \
        cost_findings(cluster, lst, answering)
    fixes = compared_fixes(lst)
    if paths:
        paths[0] = replace(paths[0], fixes=fixes)
    notes: list[str] = []
    if lst.mode == "hostPort":
        mode = cluster.kube_proxy.mode
        notes.append(f"hostPort rules: the CNI portmap plugin {PORTMAP_RELEASE}, its "
                     f"{mode} back end (the one of kube-proxy's mode), chained after the "
                     f"{cluster.profile.pod_attach} CNI; network name cbr0")
        if (pod.key, port, proto) not in dnat_on:
            notes.append(f"no portmap rule for this pod: it has no {family_name(family)} "
                         "address")
    if cluster.profile.egress_masquerade:
        notes.append("the CNI's egress masquerade (egressMasquerade) is traced: a pod of "
                     "another node reaching a node address leaves its node with that node's "
                     "address")
    return DirectExplanation(
        service=f"pod/{pod.key}", type=lst.mode, cluster_ip=None,
        port=f"{lst.port.name + ' ' if lst.port.name else ''}{port}/{proto}",
        external_traffic_policy="-", internal_traffic_policy="-",
        paths=tuple(paths), notes=tuple(notes), pod=pod.key, node=node, mode=lst.mode,
        protocol=proto, host_port=port, container_port=lst.port.container_port,
        host_ip=str(lst.host_ip) if lst.host_ip is not None else None,
        findings=tuple(findings), family=family)


__all__ = ["DIRECT_KINDS", "DirectExplanation", "explain_direct", "listeners"]
