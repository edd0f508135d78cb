"""explain's load-balancer step: external client -> load balancer -> the nodes in its pool.

The load balancer's behaviour (forwarding or proxying, PROXY protocol, which nodes its health
check keeps, the MetalLB L2 leader) comes from ``sourceip.loadbalancer.plan_load_balancer``;
what each node then does comes from the same traces as every other path. This module only
joins the two: the nodes' outcomes weighted by the pool (a load balancer spreads flows evenly
over the nodes it keeps), each outcome prefixed with the load balancer's hop.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from sourceip.cluster import Service, ServicePort
from sourceip.dataplane.trace import Hop, Outcome, Trace
from sourceip.net.addr import IPAddress, host_port, parse_ip
from sourceip.net.packet import FiveTuple

MAX_TRACED_POOL = 20

if TYPE_CHECKING:
    from sourceip.dataplane.tracer import Tracer
    from sourceip.explain.engine import Explainer, PathResult


def lb_plan(explainer: Explainer, svc: Service, family: int | None = None) -> Any:
    """The load balancer in front of ``svc`` for its ingress IP of ``family`` (None: the
    first ingress IP); None for other Service types or without such an address in
    status.loadBalancer."""
    if svc.type != "LoadBalancer" or not explainer.topo.nets or not any(
            family is None or ip.version == family for ip in svc.all_lb_ips):
        return None
    from sourceip.loadbalancer import plan_load_balancer

    return plan_load_balancer(explainer.cluster, svc, family=family)


def checks_for(plan: Any, nodes: list[str]) -> list[dict[str, Any]]:
    """The health-check rows of ``nodes``, as ``LoadBalancerPlan.to_dict()`` gives them."""
    want = set(nodes)
    return [c for c in plan.to_dict()["checks"] if c["node"] in want]


def out_of_pool_title(plan: Any, nodes: list[str]) -> str | None:
    """``taken out of the pool by the health check: 503 on 32000 (...)`` when the load
    balancer sends these nodes nothing; None when they are in its pool."""
    if nodes[0] in plan.pool:
        return None
    if plan.leader is not None:
        return f"not the announcing node (MetalLB L2 leader is {plan.leader}): gets no traffic"
    chk = next((c for c in plan.checks if c.node == nodes[0]), None)
    if chk is None:
        return "not in the load balancer's pool"
    return str(chk.reason)


def through_lb_path(explainer: Explainer, svc: Service, sp: ServicePort, vip: IPAddress,
                    plan: Any, groups: list[tuple[bool, list[str]]], tracer: Tracer,
                    path_cls: Any, fix_cls: Any) -> PathResult | None:
    """external -> ``vip``:port through the load balancer: every pool node's outcomes, each
    with probability 1/len(pool), behind the load balancer's own hop."""
    pool = list(plan.pool)
    client_start = explainer._external(tracer, vip.version)
    client_ip = client_start.ip
    assert client_ip is not None
    original = FiveTuple(proto=sp.protocol, src=client_ip, sport=40000, dst=vip, dport=sp.port)
    # Each pool node is traced on its own (its local endpoints differ); above
    # MAX_TRACED_POOL nodes, or when endpoints are sampled, alike nodes share their group
    # representative's trace, weighted by how many of them are in the pool.
    traced: list[tuple[str, Fraction]]
    if len(pool) <= MAX_TRACED_POOL and explainer.sample_nodes is None:
        traced = [(n, Fraction(1, len(pool))) for n in pool]
    else:
        in_pool = set(pool)
        traced = []
        for _, nodes in groups:
            k = sum(1 for n in nodes if n in in_pool)
            if k:
                traced.append((nodes[0], Fraction(k, len(pool))))
    proxying = plan.mode == "proxying"
    outcomes: list[Outcome] = []
    notes = list(plan.notes)
    if not pool:
        notes.append("the load balancer's pool is empty: every health check fails, so the "
                     "load balancer drops the traffic (or, for some providers, fails open and "
                     "sends it to every node)")
    if len(traced) < len(pool):
        notes.append(f"{len(pool)} nodes in the pool: nodes with the same local endpoints "
                     "share one traced representative")
    lb_src: IPAddress | None = None
    if proxying:
        if plan.source_address is None:
            return None
        lb_src = parse_ip(str(plan.source_address))
    target = plan.target
    if target == "vip" and any(i.ip == vip and i.ip_mode == "Proxy" for i in svc.lb_ingress):
        target = "nodePort"  # ipMode Proxy: the LB delivers to node IP:nodePort (KEP-1860)
    if target == "pod":
        notes.append("the load balancer targets pod IPs directly (no kube-proxy hop): not "
                     "traced through the nodes")
        traced = []
    port = sp.node_port if target == "nodePort" else sp.port
    if target == "nodePort" and not port:
        notes.append("the load balancer targets NodePorts but this port has none")
        traced = []
    for node, weight in traced:
        # the family the load balancer reaches the node in: the client's (forwarding), its
        # own address's (proxying: a proxy may take IPv6 and connect over IPv4)
        fam = lb_src.version if lb_src is not None else vip.version
        if not explainer.topo.has_family(node, fam) or port is None:
            continue
        src_start = tracer.start(f"external={lb_src}") if lb_src is not None else client_start
        src_ip = lb_src if lb_src is not None else client_ip
        if target == "nodePort":
            dst = explainer.topo.net(node, fam).ip
            tr = tracer.trace_flow(src_start, dst, port, sp.protocol,
                                   target_desc=f"{node}:{port}")
        else:
            dst = vip
            tr = tracer.trace_flow(src_start, vip, port, sp.protocol, via=node,
                                   target_desc=host_port(vip, port))
        hop_out = FiveTuple(proto=sp.protocol, src=src_ip, sport=40000, dst=dst, dport=port)
        if proxying:
            note = (f"proxies the connection to {node}:{port} from its own address {lb_src}"
                    + (f", sending a PROXY {plan.proxy_protocol} header with the client "
                       f"{client_ip}" if plan.proxy_protocol else ""))
        elif target == "nodePort":
            note = f"forwards the packet to {node}:{port}, keeping the client's address"
        else:
            note = f"forwards the packet unchanged to {node} (the destination stays {vip})"
        chk = next((c for c in plan.checks if c.node == node), None)
        if chk is not None:
            note += f"; health check: {chk.reason}"
        lb_hop = Hop(at="load balancer", node=None, packet_in=original, packet_out=hop_out,
                     note=note)
        for o in tr.outcomes:
            outcomes.append(replace(o, probability=o.probability * weight,
                                    hops=(lb_hop, *o.hops)))
    trace = Trace(source=client_start.describe(), target=host_port(vip, sp.port),
                  original=original, outcomes=tuple(_merge(outcomes)), notes=tuple(notes))
    lbd = plan.to_dict()
    how = f"{plan.mode} load balancer ({lbd.get('provider') or 'generic'})"
    lbd["client"] = str(client_ip)
    p: PathResult = explainer._path("through-lb", f"external -> LoadBalancer IP {vip} through "
                                    f"the {how}", client_start, host_port(vip, sp.port),
                                    pool or [], trace, svc=svc)
    extra_fixes = [fix_cls(change=c, effect=e, side_effects=tuple(s))
                   for c, e, s in _lb_fixes(plan)]
    summary = p.summary
    if proxying:
        summary = (f"the load balancer terminates TCP: the pod's peer is {lb_src} or a node "
                   "address, never the client")
        if plan.proxy_protocol:
            summary += (f"; the client {client_ip} travels in the PROXY "
                        f"{plan.proxy_protocol} header, which the app (or its ingress "
                        "controller) must be configured to read")
    if plan.leader is not None:
        summary += (f"; MetalLB L2: {plan.leader} alone announces {vip} and receives all of "
                    "its traffic")
    return replace(p, load_balancer=lbd, summary=summary,
                   fixes=tuple(list(p.fixes) + extra_fixes),
                   node_count=len(pool))


def _lb_fixes(plan: Any) -> list[tuple[str, str, list[str]]]:
    from sourceip.loadbalancer import fixes

    return [(c, e, list(s)) for c, e, s in fixes(plan)]


def _merge(outcomes: list[Outcome]) -> list[Outcome]:
    """Outcomes sorted most likely first (equal outcomes of different nodes stay apart: they
    crossed different nodes)."""
    return sorted(outcomes, key=lambda o: -o.probability)


def trace_through_lb(cluster: Any, vip: IPAddress, port: int, proto: str, *,
                     external_ip: str) -> Trace | None:
    """The external client's connection to ``vip``:``port`` as the load balancer in front of
    that Service delivers it (its pool, health checks, forwarding or proxying), or None when
    ``vip`` is no LoadBalancer IP of a Service port with that port and protocol."""
    from sourceip.explain.engine import Explainer, Fix, PathResult

    for svc in cluster.services:
        if vip not in svc.all_lb_ips:
            continue
        for sp in svc.ports:
            if sp.port != port or sp.protocol != proto:
                continue
            explainer = Explainer(cluster, external_ip=external_ip)
            plan = lb_plan(explainer, svc, vip.version)
            if plan is None:
                return None
            groups = explainer._node_groups(svc, sp)
            p = through_lb_path(explainer, svc, sp, vip, plan, groups,
                                explainer._tracer(svc, vip.version), PathResult, Fix)
            if p is None:
                return None
            lead = f"through the {plan.mode} load balancer ({plan.decided_by})"
            return replace(p.trace, notes=(lead, *p.trace.notes))
    return None
