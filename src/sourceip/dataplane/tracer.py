"""The multi-node tracer: a connection's first packet through every node it crosses.

On each node the packet goes through the hooks in kernel order — nat/filter PREROUTING (or
OUTPUT for a packet the node itself sends), the routing decision, filter INPUT or FORWARD, nat
POSTROUTING — evaluating the node's own ruleset (the one ``sourceip rules`` prints and the lab
loads). Every rewrite is recorded as a conntrack entry of that node, and the reply is walked
back through the nodes it actually crosses, un-NATed by each entry it meets, to check it returns
to the client as the tuple the client expects (asymmetric return paths are reported).

Each IP family is traced by its own rules, as kube-proxy runs one proxier per family: an IPv6
packet meets the node's ``ip6tables`` / ``ip6 kube-proxy`` ruleset (``build_ruleset(...,
family=6)``), routing of its family (``topology``) and conntrack entries of its family (a
tuple never changes family). A client starts from its address of the destination's family
(a pod's IPv6 podIP, the node's IPv6 address, the external client's IPv6 address); a
Service, node or pod without an address of that family has no path of that family.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from fractions import Fraction
from typing import Any, TypeVar

from sourceip.cluster import Cluster, KubeProxyConfig, Pod, Service
from sourceip.dataplane.devices import UNKNOWN_DEVICE, stand_in_ifaces
from sourceip.dataplane.ipvs import (
    ipvs_bound,
    ipvs_handled,
    ipvs_hook_names,
    ipvs_hooks,
    node_evaluator,
)
from sourceip.dataplane.portmap import build_portmap_ruleset, merge_portmap
from sourceip.dataplane.topology import Route, Topology, family_name, pod_pools
from sourceip.dataplane.trace import Disposition, Hop, Outcome, Trace
from sourceip.errors import LookupFailed, TraceError, ValidationError
from sourceip.kubeproxy import build_ruleset
from sourceip.net.addr import IPAddress, IPNetwork, host_port, parse_ip
from sourceip.net.packet import FiveTuple, Packet
from sourceip.netfilter.evaluate import (
    ONE,
    Assumption,
    Branch,
    Evaluator,
    IfaceQuestion,
    Step,
    mul_prob,
    new_packet,
)
from sourceip.netfilter.ipset import IPSet
from sourceip.netfilter.ir import Ruleset
from sourceip.netfilter.parse_ipvsadm import IPVSTable

DEFAULT_EXTERNAL_IP = "203.0.113.10"
DEFAULT_EXTERNAL_IP6 = "2001:db8:ffff::10"  # RFC 3849 documentation prefix, as TEST-NET-3
_CT_NEW = frozenset({"NEW"})
_CT_DNAT = frozenset({"NEW", "DNAT"})
CLIENT_SPORT = 40000
MAX_NODES = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    """Where a connection begins: a pod, a node itself, or an external client."""

    kind: str  # "pod" | "node" | "external"
    name: str  # "ns/name", node name, or "external"
    ip: IPAddress | None = None  # source address (pod IP, external IP); node: chosen by routing
    node: str | None = None  # the pod's node, or the node itself
    pod: Pod | None = None

    def for_family(self, family: int, external: IPAddress | None = None) -> Start:
        """This client's start for a destination of ``family``: a pod's podIP of that family,
        ``external`` for the external client (a node picks its source by routing). Raises
        ``TraceError`` when the pod has no address of that family."""
        if self.kind == "pod":
            if self.ip is not None and self.ip.version == family:
                return self
            ips = self.pod.ips if self.pod is not None else ()
            ip = next((a for a in ips if a.version == family), None)
            if ip is None:
                raise TraceError(f"pod {self.name} has no {family_name(family)} address: it has "
                              f"no {family_name(family)} path")
            return Start(kind="pod", name=self.name, ip=ip, node=self.node, pod=self.pod)
        if self.kind == "external" and external is not None and (
                self.ip is None or self.ip.version != family):
            return Start(kind="external", name=self.name, ip=external)
        return self

    def describe(self) -> str:
        if self.kind == "pod":
            return f"pod/{self.name}"
        if self.kind == "node":
            return f"node/{self.name}"
        return f"external {self.ip}"


@dataclass(slots=True)
class _Walk:
    prob: Fraction
    hops: list[Hop] = field(default_factory=list)
    ct: list[tuple[str, FiveTuple, FiveTuple]] = field(default_factory=list)
    masq: bool = False
    snat_node: str | None = None
    snat_iface: str | None = None
    snat_step: Step | None = None
    dnat_node: str | None = None
    dnat_step: Step | None = None
    notes: list[str] = field(default_factory=list)
    # Undecidable rules this walk met and the answer it assumed (evaluate.Assumption).
    assumed: tuple[Assumption, ...] = ()

    def fork(self, p: Fraction) -> _Walk:
        prob = self.prob if p is ONE or p == ONE else mul_prob(self.prob, p)
        return _Walk(prob, list(self.hops), list(self.ct), self.masq, self.snat_node,
                     self.snat_iface, self.snat_step, self.dnat_node, self.dnat_step,
                     list(self.notes), self.assumed)


class Tracer:
    """Traces connections through a cluster. Rulesets are built per node on first use (or
    taken from ``rulesets``, e.g. parsed from a real node's dump)."""

    def __init__(
        self,
        cluster: Cluster,
        config: KubeProxyConfig | None = None,
        *,
        rulesets: dict[str, Ruleset] | None = None,
        external_ip: str = DEFAULT_EXTERNAL_IP,
        external_ip6: str = DEFAULT_EXTERNAL_IP6,
        topology: Topology | None = None,
        rules_cluster: Cluster | None = None,
        transit_cache: dict[tuple[str, KubeProxyConfig, int], Evaluator] | None = None,
        compile_all: bool = False,
        ipsets: Mapping[str, Mapping[str, IPSet]] | None = None,
        ipvs: Mapping[str, IPVSTable] | None = None,
        interfaces_unknown: Collection[str] = (),
        uplink_unknown: Collection[str] = (),
    ) -> None:
        self.cluster = cluster
        self.config = config if config is not None else cluster.kube_proxy
        self.topo = topology if topology is not None else Topology(cluster)
        # Rules may be built from a smaller view (e.g. one Service) for speed: kube-proxy's
        # rules for one Service do not depend on the others.
        self.rules_cluster = rules_cluster if rules_cluster is not None else cluster
        # Batch use (many flows through the same nodes): compile each node's whole ruleset
        # when it is first needed rather than chain by chain on first visit.
        self._compile_all = compile_all
        # When rules are built from a view of some Services, a node that a packet reaches
        # after DNAT, addressed to a pod, is evaluated with the rules of no Service at all
        # (kube-proxy's per-Service rules only match that Service's addresses and node
        # ports); those rulesets are shared between tracers through ``transit_cache``.
        self._transit = transit_cache if transit_cache is not None else {}
        self._vips: frozenset[IPAddress] | None = None
        # Traces are immutable and depend only on their arguments: the same flow asked twice
        # (explain asks some twice) is traced once.
        self._memo: dict[tuple[object, ...], Trace] = {}
        self._rulesets = dict(rulesets or {})
        self._pools: dict[int, tuple[IPNetwork, ...]] = {}
        # Per node: ipset contents by set name (an ``ipset save`` dump of that node), so that
        # its ``-m set`` rules are decided; rules on other sets make outcomes uncertain.
        self._ipsets = dict(ipsets or {})
        # Per node: its IPVS table (an ``ipvsadm -Sn``/``-Ln`` dump) when it runs kube-proxy in
        # ipvs mode; generated ipvs-mode nodes build theirs (dataplane/ipvs.py).
        self._ipvs = dict(ipvs or {})
        # Nodes whose interfaces the cluster does not describe (a standalone dump's stand-in
        # node): whether a packet entered through a bridge port is unknown there, so
        # ``-m physdev --physdev-is-in`` forks; elsewhere the topology's bridges decide it.
        self._interfaces_unknown = frozenset(interfaces_unknown)
        # Nodes whose uplink's real name is not known (a standalone dump's stand-in, unless
        # `--node-interface` named it): `-i`/`-o` on the uplink fork (dataplane/devices.py).
        self._uplink_unknown = frozenset(uplink_unknown)
        self._evals: dict[tuple[str, int], Evaluator] = {}
        self.external_ip = parse_ip(external_ip)
        # The external client's address per family (``external_ip`` may be of either).
        self.external_ips = {4: parse_ip(DEFAULT_EXTERNAL_IP), 6: parse_ip(external_ip6)}
        self.external_ips[self.external_ip.version] = self.external_ip

    # ------------------------------------------------------------------ rulesets
    def ruleset(self, node: str, family: int = 4) -> Ruleset:
        """``node``'s rules for ``family``: kube-proxy's (that family's proxier) and the CNI
        portmap plugin's of that family, or the dump given for the node (used for both
        families: a dump holds what it holds)."""
        given = self._rulesets.get(node)
        if given is not None:
            return given
        key = f"{node}\0{family}"
        rs = self._rulesets.get(key)
        if rs is None:
            rs = build_ruleset(self.rules_cluster, self.cluster.node(node), self.config,
                               family=family)
            rs = merge_portmap(rs, build_portmap_ruleset(self.cluster, node,
                                                         self.config.mode, family=family))
            self._rulesets[key] = rs
        return rs

    def evaluator(self, node: str, family: int = 4) -> Evaluator:
        """The evaluator of ``node``'s rules for packets of ``family``."""
        ev = self._evals.get((node, family))
        if ev is None:
            if node not in self.topo.nets:
                raise LookupFailed(f"no node named {node!r} with an address")
            if family == 6 and (self.config.mode == "ipvs" or node in self._ipvs):
                raise TraceError("kube-proxy ipvs mode is modelled for IPv4 only: IPv6 "
                                 "packets are not traced in ipvs mode")
            if self.config.mode == "ipvs" or node in self._ipvs:
                # kube-proxy ipvs mode: virtual servers rewrite the destination at LOCAL_IN /
                # LOCAL_OUT, after nat PREROUTING / OUTPUT (dataplane/ipvs.py).
                table = self._ipvs.get(node)
                ev = self._evals[(node, family)] = node_evaluator(
                    self.rules_cluster, self.cluster, node, self.config,
                    self.topo.local_addresses(node), table=table,
                    ruleset=self._rulesets.get(node) if table is not None else None,
                    ipsets=self._ipsets.get(node), bridges=self._bridges(node),
                    ifaces=self._ifaces(node))
            else:
                ev = self._evals[(node, family)] = Evaluator(
                    self.ruleset(node, family), self.topo.local_set(node),
                    ipsets=self._ipsets.get(node), bridges=self._bridges(node),
                    ifaces=self._ifaces(node))
            if self._compile_all:
                ev.compile_all()
        return ev

    def _transit_evaluator(self, node: str, dst: IPAddress) -> Evaluator:
        """The evaluator for a packet forwarded to ``node`` after DNAT (see __init__)."""
        family = dst.version
        if self.rules_cluster is self.cluster:
            return self.evaluator(node, family)
        if self._vips is None:
            self._vips = frozenset(
                ip for s in self.rules_cluster.services
                for ip in (*s.cluster_ips, *s.external_ips, *s.all_lb_ips))
        if (dst in self._vips or self.topo.node_owning(dst) is not None
                or self.topo.pod_node(dst) is None):
            return self.evaluator(node, family)
        key = (node, self.config, family)
        ev = self._transit.get(key)
        if ev is None:
            base = Cluster(nodes=self.cluster.nodes, kube_proxy=self.cluster.kube_proxy,
                           profile=self.cluster.profile)
            if self.config.mode == "ipvs":  # dataplane/ipvs.py, as in evaluator()
                ev = self._transit[key] = node_evaluator(
                    base, self.cluster, node, self.config,
                    self.topo.local_addresses(node), bridges=self._bridges(node))
            else:
                rs = build_ruleset(base, self.cluster.node(node), self.config, family=family)
                rs = merge_portmap(rs, build_portmap_ruleset(self.cluster, node,
                                                             self.config.mode, family=family))
                ev = self._transit[key] = Evaluator(rs, self.topo.local_set(node),
                                                    bridges=self._bridges(node))
        return ev

    def _ifaces(self, node: str) -> IfaceQuestion | None:
        """How ``-i``/``-o`` are answered on ``node``: exactly (None), or on a dump's stand-in
        node with its unknown devices (and its uplink's name, unless given) unknown."""
        if node not in self._interfaces_unknown:
            return None
        return stand_in_ifaces((self.topo.net(node).iface,) if node in self._uplink_unknown
                              else ())

    def _route(self, node: str, dst: IPAddress) -> Route:
        """``topo.route``; on a dump's stand-in node the output device is unknown (a local pod's
        device or the uplink: the stand-in does not know its pods)."""
        route = self.topo.route(node, dst)
        if node in self._interfaces_unknown and route.kind != "local":
            return replace(route, oif=UNKNOWN_DEVICE)
        return route

    def _bridges(self, node: str) -> frozenset[str] | None:
        """The node's bridge devices for ``-m physdev --physdev-is-in``; None: unknown."""
        if node in self._interfaces_unknown:
            return None
        return self.topo.net(node).bridges()

    # ------------------------------------------------------------------ vantage points
    def start(self, spec: str) -> Start:
        """Parse ``pod/NS/NAME``, ``pod/NAME``, ``node/NAME``, ``external`` or ``external=IP``."""
        kind, name, ip = parse_source(spec)
        if kind == "pod":
            pod = self.cluster.pod(name)
            if pod.host_network:
                return Start(kind="node", name=pod.node_name, node=pod.node_name, pod=pod)
            if pod.ip is None:
                raise TraceError(f"pod {pod.key} has no IP")
            if pod.node_name not in self.topo.nets:
                raise TraceError(f"pod {pod.key} runs on unknown node {pod.node_name!r}")
            return Start(kind="pod", name=pod.key, ip=pod.ip, node=pod.node_name, pod=pod)
        if kind == "node":
            node = self.cluster.node(name).name
            return Start(kind="node", name=node, node=node)
        ip = ip if ip is not None else self.external_ip
        self.external_ips.setdefault(ip.version, ip)
        if self.topo.pod_node(ip) is not None or self.topo.node_owning(ip) is not None:
            raise TraceError(f"external client {ip} is inside the cluster's addresses")
        return Start(kind="external", name="external", ip=ip)

    def target(self, spec: str, proto: str | None = None, family: int | None = None
               ) -> tuple[IPAddress, int, str, str]:
        """Parse ``svc/NS/NAME[:PORT]``, ``IP:PORT``, ``[IPv6]:PORT`` or ``node/NAME:PORT`` into
        (ip, port, proto, description). A Service or node is reached at its address of
        ``family`` (default: its primary one: the Service's first ClusterIP, the node's IPv4
        InternalIP); ``TraceError`` when it has none of that family."""
        kind, name, port_s, ip = parse_target(spec)
        if kind == "svc":
            svc = self.cluster.service(name)
            if not svc.proxied:
                raise TraceError(f"Service {svc.key} is not proxied by kube-proxy "
                                 f"({'headless' if svc.headless else svc.type})")
            sp = _pick_port(svc, port_s, proto)
            cip = svc.cluster_ips[0] if family is None else next(
                (c for c in svc.cluster_ips if c.version == family), None)
            if cip is None:
                raise TraceError(f"Service {svc.key} has no {family_name(family or 4)} ClusterIP "
                              f"(ipFamilies {', '.join(svc.ip_families) or 'unset'}): it has "
                              f"no {family_name(family or 4)} path")
            desc = f"svc/{svc.key}:{sp.port}"
            if cip.version == 6:
                desc += " (IPv6)"
            return cip, sp.port, sp.protocol, desc
        if kind == "node":
            node = self.cluster.node(name)
            net = self.topo.net(node.name, family)
            return net.ip, int(port_s), proto or "tcp", spec
        assert ip is not None
        if family is not None and ip.version != family:
            raise _bad("--to", spec, f"{ip} is not an {family_name(family)} address")
        return ip, int(port_s), proto or "tcp", spec

    # ------------------------------------------------------------------ public tracing
    def trace(self, source: str, target: str, *, proto: str | None = None,
              via: str | None = None, family: int | None = None) -> Trace:
        """Trace ``source`` -> ``target`` (CLI forms, see ``start`` and ``target``), in
        ``family`` when given (else the target's, or the source's given external address)."""
        start = self.start(source)
        given = parse_source(source)[2]  # an external client's address, when written
        if family is None and given is not None and parse_target(target)[0] != "addr":
            family = given.version  # svc/... or node/...: the family of the client
        ip, port, proto_, desc = self.target(target, proto, family)
        if given is not None and given.version != ip.version:
            raise _bad("--from", source, f"{given} and {ip} are of different IP families "
                                         "(no translation between them)")
        start = start.for_family(ip.version, self.external_ips[ip.version])
        return self.trace_flow(start, ip, port, proto_, via=via, target_desc=desc)

    def trace_flow(self, start: Start, dst: IPAddress, dport: int, proto: str = "tcp", *,
                   via: str | None = None, target_desc: str | None = None) -> Trace:
        """Every outcome of a connection from ``start`` to ``dst``:``dport``."""
        key = (start, dst, dport, proto, via, target_desc)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = self._trace_flow(start, dst, dport, proto, via=via,
                                                     target_desc=target_desc)
        return hit

    def _trace_flow(self, start: Start, dst: IPAddress, dport: int, proto: str, *,
                    via: str | None, target_desc: str | None) -> Trace:
        desc = target_desc or host_port(dst, dport)
        notes: list[str] = []
        outcomes: list[Outcome] = []
        family = dst.version
        if not self.topo.family_nets[family]:
            raise TraceError(f"no node has an {family_name(family)} address: the cluster has no "
                          f"{family_name(family)} path")
        if start.ip is not None and start.ip.version != family:
            raise TraceError(f"{start.describe()} and {dst} are of different IP families "
                             "(no translation between them)")
        if start.node is not None and not self.topo.has_family(start.node, family):
            self.topo.net(start.node, family)  # raises TraceError, naming the node and family
        if start.kind == "pod":
            assert start.ip is not None and start.node is not None
            t = FiveTuple(proto=proto, src=start.ip, sport=CLIENT_SPORT, dst=dst, dport=dport)
            w = _Walk(ONE)
            net = self.topo.net(start.node)
            iif = net.pod_iface(start.pod)
            w.hops.append(Hop(at=f"pod {start.name}", node=None, packet_in=t, packet_out=t,
                              oif="eth0", note=f"leaves the pod to node {start.node} via {iif}"))
            outcomes += self._at_node(start.node, Packet(tuple=t, iif=iif), False, w, t, start)
        elif start.kind == "node":
            assert start.node is not None
            src = self.topo.route(start.node, dst).src
            if self.topo.is_local(start.node, dst) or self._ipvs_local(start.node, dst):
                src = dst  # a local destination: the kernel picks it as the source
            t = FiveTuple(proto=proto, src=src, sport=CLIENT_SPORT, dst=dst, dport=dport)
            w = _Walk(ONE)
            outcomes += self._at_node(start.node, Packet(tuple=t), True, w, t, start)
        else:
            assert start.ip is not None
            t = FiveTuple(proto=proto, src=start.ip, sport=CLIENT_SPORT, dst=dst, dport=dport)
            for node, p, how in self._entry_nodes(dst, dport, proto, via):
                if not self.topo.has_family(node, family):
                    self.topo.net(node, family)  # raises TraceError
                w = _Walk(p)
                w.hops.append(Hop(at=f"external {start.ip}", node=None, packet_in=t,
                                  packet_out=t, note=how))
                pkt = Packet(tuple=t, iif=self.topo.net(node).iface)
                outcomes += self._at_node(node, pkt, False, w, t, start)
            if via is None and self._is_lb_ip(dst):
                notes.append("the load balancer forwards to nodes as its health checks allow; "
                             "use --via NODE to pick one")
        return Trace(source=start.describe(), target=desc, original=t,
                     outcomes=tuple(_merge(outcomes)), notes=tuple(notes))

    def trace_node(self, node: str, src: str, dst: str, dport: int, proto: str = "tcp",
                   *, sport: int = CLIENT_SPORT) -> Trace:
        """One node's rules alone, as kube-proxy's packet-flow tests evaluate them: a source that
        is one of the node's addresses or loopback starts in OUTPUT, any other in PREROUTING."""
        s, d = parse_ip(src), parse_ip(dst)
        if s.version != d.version:
            raise TraceError(f"{s} and {d} are of different IP families")
        ev = self.evaluator(node, d.version)
        t = FiveTuple(proto=proto, src=s, sport=sport, dst=d, dport=dport)
        local_origin = self.topo.is_local(node, s)
        iif = None
        if not local_origin:
            owner = self.topo.pod_node(s)
            net = self.topo.net(node)
            iif = net.pod_iface(owner[1]) if owner and owner[0] == node else net.iface
            if node in self._interfaces_unknown:  # a pod's device, the uplink, a tunnel...
                iif = UNKNOWN_DEVICE
        pkt = Packet(tuple=t, iif=iif)
        outcomes: list[Outcome] = []
        first = "output" if local_origin else "prerouting"
        for b1 in ev.run_hook(first, pkt):
            if b1.disposition != "accept":
                outcomes.append(self._single(node, t, [b1], b1.disposition, None))
                continue
            route = self._route(node, b1.packet.tuple.dst)
            hooks = ["postrouting", "input"] if local_origin else (
                ["input"] if route.kind == "local" else ["forward", "postrouting"])
            if local_origin and route.kind != "local":
                hooks = ["postrouting"]
            if ipvs_handled(b1):  # IPVS ran INPUT/OUTPUT and sent it on (dataplane/ipvs.py)
                hooks = ipvs_hooks(route)
            for chain_of in self._run_hooks(ev, hooks, b1, route):
                last = chain_of[-1]
                disp = last.disposition if last.disposition != "accept" else "accept"
                outcomes.append(self._single(node, t, chain_of, disp, route))
        return Trace(source=f"{src} (node {node}, {first})", target=host_port(d, dport), original=t,
                     outcomes=tuple(_merge(outcomes)))

    # ------------------------------------------------------------------ internals
    def _is_lb_ip(self, ip: IPAddress) -> bool:
        return ip in self.topo.lb_ips

    def _entry_nodes(self, dst: IPAddress, dport: int, proto: str, via: str | None
                     ) -> list[tuple[str, Fraction, str]]:
        """Which node(s) an external packet for ``dst`` enters, with probabilities."""
        owner = self.topo.node_owning(dst)
        if owner is not None:
            return [(owner, Fraction(1), f"sent to node {owner}'s address")]
        if via is not None:
            self.cluster.node(via)
            return [(via, Fraction(1), f"routed to node {via}")]
        nodes = sorted(self.topo.family_nets[dst.version])
        for svc in self.cluster.services:
            if dst in svc.all_lb_ips:
                healthy = nodes
                if svc.needs_health_check:
                    healthy = [n for n in nodes if _has_local_ready(self.cluster, svc, n)]
                    if not healthy:
                        healthy = nodes
                p = Fraction(1, len(healthy))
                kind = "health-checked " if svc.needs_health_check else ""
                return [(n, p, f"a forwarding load balancer ({kind}keeps the client address) "
                               f"sends it to node {n}") for n in healthy]
        if not nodes:
            raise TraceError("the cluster has no node with an address")
        p = Fraction(1, len(nodes))
        return [(n, p, f"routed to node {n}") for n in nodes]

    def _run_hooks(self, ev: Evaluator, hooks: list[str], b: Branch, route: Route
                   ) -> list[list[Branch]]:
        """Continue branch ``b`` through ``hooks``; returns chains of branches (one per path)."""
        paths: list[list[Branch]] = [[b]]
        for hook in hooks:
            nxt: list[list[Branch]] = []
            for path in paths:
                last = path[-1]
                if last.disposition != "accept":
                    nxt.append(path)
                    continue
                pkt = last.packet
                if hook == "forward" or hook == "postrouting":
                    # The route is chosen before FORWARD: -o matches its device there too
                    # (Linux ip_forward(): NF_HOOK(NF_INET_FORWARD, ..., skb->dev,
                    # rt->dst.dev, ...)).
                    pkt = new_packet(pkt.tuple, pkt.iif, route.oif, pkt.mark)
                ct = _CT_NEW
                for x in path:
                    if x.dnat:
                        ct = _CT_DNAT
                        break
                for b2 in ev.run_hook(hook, pkt, ct_state=ct, assumed=last.assumptions):
                    nxt.append([*path, b2])
            paths = nxt
        return paths

    def _single(self, node: str, t: FiveTuple, path: list[Branch], disp: str,
                route: Route | None) -> Outcome:
        prob = ONE
        steps: list[Step] = []
        masq = dnat = False
        snat: IPAddress | None = None
        notes: list[str] = []
        for b in path:
            prob = mul_prob(prob, b.probability)
            steps.extend(b.steps)
            masq = masq or b.masquerade
            snat = b.snat_to or snat
            dnat = dnat or b.dnat
            if b.affinity or b.unknown:
                notes.extend(_branch_notes([b]))
        final = path[-1].packet.tuple
        assumed = path[-1].assumptions
        seen = final.src
        if masq and route is not None:
            seen = route.src
            if snat is None and node in self._interfaces_unknown:
                notes.append(self._masquerade_address_note(route))
        elif snat is not None:
            seen = snat
        d: Disposition
        if disp == "drop":
            d = "dropped"
        elif disp == "reject":
            d = "rejected"
        else:
            d = "delivered" if dnat else "passed"
        unc = _uncertainty(assumed) if assumed else _CERTAIN_FIELDS
        return _single_outcome(
            prob, d, host_port(final.dst, final.dport) if d == "delivered" else None, None,
            masq, seen if d in ("delivered", "passed") else None,
            (_single_hop(f"node {node}", node, t, final, path[0].packet.iif,
                         route.oif if route else None, tuple(steps)),),
            steps[-1] if d in ("dropped", "rejected") and steps else None, tuple(notes),
            unc["certain"], unc["depends_on"], unc["assumptions"])

    def _at_node(self, node: str, pkt: Packet, local_origin: bool, w: _Walk,
                 original: FiveTuple, start: Start, depth: int = 0) -> list[Outcome]:
        if depth >= MAX_NODES:
            w.notes.append("routing loop: more than 8 nodes crossed")
            return [self._finish(w, "dropped", pkt.tuple, None, original, start)]
        ev = (self.evaluator(node, pkt.tuple.dst.version) if depth == 0
              else self._transit_evaluator(node, pkt.tuple.dst))
        first = "output" if local_origin else "prerouting"
        out: list[Outcome] = []
        for b1 in ev.run_hook(first, pkt, assumed=w.assumed):
            if b1.disposition != "accept":
                w1 = w.fork(b1.probability)
                w1.assumed = b1.assumptions
                self._record(w1, node, pkt, [b1], None, local_origin)
                out.append(self._finish(w1, _disp(b1.disposition), pkt.tuple, None, original,
                                        start))
                continue
            route = self._route(node, b1.packet.tuple.dst)
            if local_origin:
                hooks = ["postrouting", "input"] if route.kind == "local" else ["postrouting"]
            else:
                hooks = ["input"] if route.kind == "local" else ["forward", "postrouting"]
            if ipvs_handled(b1):  # IPVS ran INPUT/OUTPUT and sent it on (dataplane/ipvs.py)
                hooks = ipvs_hooks(route)
            for path in self._run_hooks(ev, hooks, b1, route):
                p = ONE
                for b in path:
                    p = mul_prob(p, b.probability)
                w2 = w.fork(p)
                last = path[-1]
                w2.assumed = last.assumptions
                out_tuple = self._record(w2, node, pkt, path, route, local_origin)
                if last.disposition != "accept":
                    out.append(self._finish(w2, _disp(last.disposition), out_tuple, None,
                                            original, start))
                    continue
                if route.kind == "node" and route.next_node is not None:
                    nxt = Packet(tuple=out_tuple, iif=route.arrive_iif)
                    out += self._at_node(route.next_node, nxt, False, w2, original, start,
                                         depth + 1)
                else:
                    out.append(self._finish(w2, "delivered", out_tuple, route, original, start,
                                            at_node=node))
        return out

    def _record(self, w: _Walk, node: str, pkt: Packet, path: list[Branch],
                route: Route | None, local_origin: bool) -> FiveTuple:
        """Add the node's hop to the walk; record NAT in conntrack; return the tuple leaving."""
        steps: list[Step] = []
        final = path[-1].packet.tuple
        hooks: list[str] = ["output" if local_origin else "prerouting"]
        nat_here = False
        for b in path:
            steps.extend(b.steps)
            if b.dnat and w.dnat_node is None:
                w.dnat_node = node
                w.dnat_step = next((s for s in reversed(b.steps) if s.kind == "DNAT"), None)
            if (b.masquerade or b.snat_to is not None) and route is not None:
                nat_here = True
                new_src = b.snat_to if b.snat_to is not None else route.src
                final = FiveTuple(proto=final.proto, src=new_src, sport=final.sport,
                                  dst=final.dst, dport=final.dport)
                w.masq = True
                w.snat_node, w.snat_iface = node, route.oif
                w.snat_step = next((s for s in reversed(b.steps)
                                    if s.kind in ("MASQUERADE", "SNAT")), None)
                note = (self._masquerade_address_note(route) if b.snat_to is None
                        and node in self._interfaces_unknown else None)
                if note is not None and note not in w.notes:
                    w.notes.append(note)
            for note in _branch_notes([b]):
                if note not in w.notes:
                    w.notes.append(note)
        note_cni = ""
        if (route is not None and not nat_here and path[-1].disposition == "accept"
                and self._cni_masquerades(node, final, route)):
            # the CNI's egress NAT, a nat chain after kube-proxy's (lab: nft table
            # sourceip-cni at priority srcnat+10): pod -> non-pod leaves with the address of
            # the egress interface, unless kube-proxy NATed the connection on this node
            note_cni = (f"; the CNI's egress masquerade: {final.src} leaves as {route.src} "
                        f"(pod to outside the pod pools, via {route.oif})")
            final = FiveTuple(proto=final.proto, src=route.src, sport=final.sport,
                              dst=final.dst, dport=final.dport)
            w.masq = True
            w.snat_node, w.snat_iface, w.snat_step = node, route.oif, None
        if route is not None:
            if local_origin:
                hooks += ["postrouting", "input"] if route.kind == "local" else ["postrouting"]
            else:
                hooks += ["input"] if route.kind == "local" else ["forward", "postrouting"]
        shown = tuple(hooks[:len(path)])
        if route is not None and ipvs_handled(path[0]):  # the hooks IPVS's path took
            shown = ipvs_hook_names(local_origin, route)
        if final != pkt.tuple:
            w.ct.append((node, pkt.tuple, final))
        note = ""
        if route is not None and path[-1].disposition == "accept":
            note = {
                "local": f"delivered to a socket on node {node}",
                "pod": f"delivered to a local pod via {route.oif}",
                "node": f"routed to node {route.next_node} via {route.oif}",
                "external": f"leaves the cluster via {route.oif}",
            }[route.kind]
        w.hops.append(Hop(at=f"node {node}", node=node, packet_in=pkt.tuple, packet_out=final,
                          iif=pkt.iif, oif=route.oif if route else None,
                          hooks=shown, steps=tuple(steps), note=note + note_cni))
        return final

    @staticmethod
    def _masquerade_address_note(route: Route) -> str:
        """What a masqueraded source stands for on a node whose interfaces are unknown (a
        standalone dump): MASQUERADE takes the address of the interface the packet leaves by
        (kernel ``nf_nat_masquerade_ipv4``: ``inet_select_addr(out, nexthop,
        RT_SCOPE_UNIVERSE)``), and a dump does not say which interface that is."""
        return (f"masqueraded to the address of the interface it leaves by; a dump does not "
                f"name the node's interfaces, so {route.src} (the node's address) is shown: "
                f"via a CNI bridge or tunnel device (cni0, flannel.1, ...) it is that "
                f"device's address")

    def _cni_masquerades(self, node: str, t: FiveTuple, route: Route) -> bool:
        """Whether the CNI's egress NAT (``NetworkProfile.egressMasquerade``) masquerades
        ``t`` leaving ``node`` by ``route``: from the pod pools (``topology.pod_pools``) to
        outside them, not multicast, leaving the node (to another node or out of the
        cluster). Not for a node whose rules were given as a dump (they hold what the CNI
        installed, or not)."""
        if not self.cluster.profile.egress_masquerade or node in self._rulesets:
            return False
        if route.kind not in ("node", "external") or t.dst.is_multicast:
            return False
        pools = self._pools.get(t.src.version)
        if pools is None:
            pools = self._pools[t.src.version] = pod_pools(self.cluster, t.src.version)
        return (any(t.src in p for p in pools)  # type: ignore[operator]
                and not any(t.dst in p for p in pools))  # type: ignore[operator]

    def _finish(self, w: _Walk, disp: Disposition, final: FiveTuple, route: Route | None,
                original: FiveTuple, start: Start, at_node: str | None = None) -> Outcome:
        endpoint = endpoint_name = None
        seen: IPAddress | None = None
        reply_ok: bool | None = None
        reply = ""
        drop_step = None
        if disp in ("dropped", "rejected"):
            last_hop = w.hops[-1] if w.hops else None
            drop_step = last_hop.steps[-1] if last_hop and last_hop.steps else None
        else:
            assert route is not None
            seen = final.src
            dnat = w.dnat_node is not None
            if route.kind == "external" and not dnat:
                disp = "passed"
            elif not dnat:
                disp = "passed"
            if route.kind != "external" or dnat:
                endpoint = host_port(final.dst, final.dport)
                endpoint_name = self._endpoint_name(final.dst, final.dport, route, at_node)
            if route.kind == "external":
                reply = ("the destination is outside the cluster: its reply path is not "
                         "modelled")
            else:
                reply_ok, reply = self._reply(w, final, route, at_node, original, start)
        return Outcome(
            probability=w.prob, disposition=disp, endpoint=endpoint,
            endpoint_name=endpoint_name, masquerade=w.masq, seen_source=seen,
            hops=tuple(w.hops), snat_node=w.snat_node, snat_iface=w.snat_iface,
            snat_step=w.snat_step, dnat_node=w.dnat_node, dnat_step=w.dnat_step,
            drop_step=drop_step, reply_ok=reply_ok, reply=reply, notes=tuple(w.notes),
            **(_uncertainty(w.assumed) if w.assumed else _CERTAIN),
        )

    def _endpoint_name(self, ip: IPAddress, port: int, route: Route, node: str | None
                       ) -> str | None:
        if route.kind == "pod":
            pod = route.pod or self.cluster.pod_by_ip.get(ip)
            return f"pod/{pod.key}" if pod else None
        if route.kind == "local" and node is not None:
            for p in self.cluster.pods_by_node.get(node, ()):
                if p.host_network and any(cp.container_port == port for cp in p.ports):
                    return f"pod/{p.key} (hostNetwork)"
            return f"node/{node}"
        return None

    def _reply(self, w: _Walk, final: FiveTuple, route: Route, at_node: str | None,
               original: FiveTuple, start: Start) -> tuple[bool, str]:
        """Walk the reply back through the nodes it crosses, un-NATing with each node's
        conntrack entries; True when it reaches the client as original.reversed()."""
        expected = original.reversed()
        r = final.reversed()
        if at_node is None:
            return False, "the reply cannot be followed (endpoint outside the cluster)"
        loc = at_node
        path = [loc]
        for _ in range(MAX_NODES):
            for node, before, after in reversed(w.ct):
                if node == loc and r == after.reversed():
                    r = before.reversed()
            rt = self.topo.route(loc, r.dst)
            if self._ipvs_local(loc, r.dst):
                # a kube-ipvs0 address of this node (a node's connection to a VIP has the VIP
                # as source unless masqueraded): delivered here
                rt = Route(kind="local", oif="kube-ipvs0", src=r.dst)
            if rt.kind == "node" and rt.next_node is not None:
                loc = rt.next_node
                path.append(loc)
                continue
            break
        else:
            return False, "the reply loops between nodes"
        arrived = self._reaches_client(loc, rt, r, start)
        via = " -> ".join(path)
        if r == expected and arrived:
            return True, f"un-NATed to {r} via {via}"
        if r != expected:
            return False, (f"asymmetric: the reply reaches the client as {r} but the client "
                           f"expects {expected} (it left via {via}, bypassing the node that "
                           "translated the request)")
        return False, f"the reply {r} is routed via {via} and does not reach the client"

    def _ipvs_local(self, node: str, addr: IPAddress) -> bool:
        """``addr`` is one of ``node``'s kube-ipvs0 addresses (an ipvs-mode node): a local
        address there, which the topology (built from the cluster's nodes) does not know."""
        if self.config.mode != "ipvs" and node not in self._ipvs:
            return False
        return ipvs_bound(self.evaluator(node), addr)

    def _reaches_client(self, loc: str, rt: Route, r: FiveTuple, start: Start) -> bool:
        if start.kind == "pod":
            return rt.kind == "pod" and loc == start.node and r.dst == start.ip
        if start.kind == "node":
            return rt.kind == "local" and loc == start.node
        return rt.kind == "external" and r.dst == start.ip


# ---------------------------------------------------------------------------------------------
# --from / --to: the syntax alone (no cluster needed), so that a CLI can refuse a typo as a
# usage error before loading anything. IPv6 addresses are written [ADDR]:PORT in --to.
# ---------------------------------------------------------------------------------------------

FROM_FORMS = "pod/NS/NAME, node/NAME, external or external=IP"
TO_FORMS = "svc/NS/NAME[:PORT], IP:PORT or node/NAME:PORT"


def _bad(flag: str, spec: str, why: str) -> ValidationError:
    return ValidationError(f"{spec!r}: {why}", field=flag)


def _ip(text: str, flag: str, spec: str) -> IPAddress:
    try:
        return parse_ip(text)
    except ValueError:
        raise _bad(flag, spec, f"{text!r} is not an IP address") from None


def _port_number(text: str, flag: str, spec: str) -> str:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise _bad(flag, spec, f"port {text!r} is not a number in 1-65535")
    return str(int(text))


def parse_source(spec: str) -> tuple[str, str, IPAddress | None]:
    """``--from`` → ``(kind, name, ip)``: ``("pod", "NS/NAME", None)``, ``("node", NAME,
    None)``, ``("external", "external", IP or None)``. Raises ``ValidationError`` (field
    ``--from``) for anything else."""
    for prefix in ("pod/", "node/"):
        if spec.startswith(prefix):
            name = spec[len(prefix):]
            if not name or name.endswith("/") or name.count("/") > (prefix == "pod/"):
                raise _bad("--from", spec, f"expected {FROM_FORMS}")
            return prefix[:-1], name, None
    if spec == "external":
        return "external", "external", None
    if spec.startswith("external="):
        host = spec[9:]
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return "external", "external", _ip(host, "--from", spec)
    raise _bad("--from", spec, f"expected {FROM_FORMS}")


def parse_target(spec: str) -> tuple[str, str, str, IPAddress | None]:
    """``--to`` → ``(kind, name, port, ip)``: ``("svc", "NS/NAME", PORT or name or "",
    None)``, ``("node", NAME, PORT, None)``, ``("addr", "", PORT, IP)``. Ports are checked to
    be in 1-65535. Raises ``ValidationError`` (field ``--to``) for anything else."""
    if spec.startswith("svc/"):
        name, sep, port = spec[4:].partition(":")
        if not name or name.endswith("/") or name.count("/") > 1 or (sep and not port):
            raise _bad("--to", spec, f"expected {TO_FORMS}")
        if port.isdigit():
            port = _port_number(port, "--to", spec)
        return "svc", name, port, None
    if spec.startswith("node/"):
        name, sep, port = spec[5:].partition(":")
        if not name or not sep:
            raise _bad("--to", spec, "expected node/NAME:PORT (a nodePort)")
        return "node", name, _port_number(port, "--to", spec), None
    host, sep, port = spec.rpartition(":")
    if not sep or not host:
        raise _bad("--to", spec, f"expected {TO_FORMS}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise _bad("--to", spec, "write an IPv6 address as [ADDR]:PORT")
    ip = _ip(host, "--to", spec)
    return "addr", "", _port_number(port, "--to", spec), ip


def _disp(verdict: str) -> Disposition:
    return "dropped" if verdict == "drop" else "rejected"


def _branch_notes(path: list[Branch]) -> list[str]:
    notes: list[str] = []
    for b in path:
        for a in b.affinity:
            notes.append(f"session affinity ({a}): later connections from this client stick to "
                         "the endpoint chosen here")
        notes.extend(b.unknown)
    return notes


_CERTAIN: dict[str, Any] = {}  # an outcome's defaults: certain, depends on nothing
_CERTAIN_FIELDS: dict[str, Any] = {"certain": True, "depends_on": (), "assumptions": ()}


def _uncertainty(assumed: tuple[Assumption, ...]) -> dict[str, Any]:
    """``certain``, ``depends_on`` (each undecided rule once, in the order met) and
    ``assumptions`` of an outcome reached under ``assumed``."""
    depends: list[str] = []
    kept: list[Assumption] = []
    for a in assumed:
        if a not in kept:
            kept.append(a)
        if a.rule not in depends:
            depends.append(a.rule)
    return {"certain": False, "depends_on": tuple(depends), "assumptions": tuple(kept)}


_T = TypeVar("_T")


def _builder(cls: type[_T], names: tuple[str, ...]) -> Callable[..., _T]:
    """A function building ``cls`` (a frozen slots dataclass without ``__post_init__``) from
    the values of the fields ``names``, in that order, every other field at its default:
    what ``cls(**dict(zip(names, values)))`` builds, without the frozen-dataclass detour
    (``trace_node`` builds an Outcome and a Hop per outcome)."""
    assert not hasattr(cls, "__post_init__"), cls
    flds = fields(cls)  # type: ignore[arg-type]  # a dataclass (asserted by fields)
    put = {f.name: getattr(cls, f.name).__set__ for f in flds}
    assert set(names) <= set(put), names
    given = tuple(put[n] for n in names)
    rest = tuple((put[f.name], f.default) for f in flds if f.name not in names)
    assert all(d is not MISSING for _p, d in rest) and all(
        f.default_factory is MISSING for f in flds), cls
    new = object.__new__

    def build(*values: Any) -> _T:
        o: _T = new(cls)
        for p, v in zip(given, values, strict=True):
            p(o, v)
        for p, v in rest:
            p(o, v)
        return o

    return build


_single_outcome = _builder(Outcome, (
    "probability", "disposition", "endpoint", "endpoint_name", "masquerade", "seen_source",
    "hops", "drop_step", "notes", "certain", "depends_on", "assumptions"))
_single_hop = _builder(Hop, ("at", "node", "packet_in", "packet_out", "iif", "oif", "steps"))


def _merge(outcomes: list[Outcome]) -> list[Outcome]:
    """Outcomes are listed most likely first (stable for equal probabilities); outcomes that
    depend on undecided rules come after the certain ones, grouped by what they assume."""
    for o in outcomes:
        if not o.certain:
            break
    else:
        first = outcomes[0].probability if outcomes else None
        for o in outcomes:
            if o.probability is not first:
                return sorted(outcomes, key=lambda o: -float(o.probability))
        return outcomes  # one probability object (IPVS's equal shares): already in order
    return sorted(outcomes, key=lambda o: (
        not o.certain, [(a.rule, not a.matches) for a in o.assumptions],
        -float(o.probability)))


def _pick_port(svc: Service, port_s: str, proto: str | None):  # type: ignore[no-untyped-def]
    ports = [p for p in svc.ports if proto is None or p.protocol == proto]
    if port_s:
        for p in ports:
            if str(p.port) == port_s or p.name == port_s:
                return p
        raise TraceError(f"Service {svc.key} has no port {port_s}")
    if not ports:
        raise TraceError(f"Service {svc.key} has no {proto or ''} port")
    return ports[0]


def _has_local_ready(cluster: Cluster, svc: Service, node: str) -> bool:
    for es in cluster.slices_for(svc):
        for ep in es.endpoints:
            if ep.node_name == node and ep.is_ready:
                return True
    return False

