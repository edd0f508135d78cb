"""kube-proxy's ipvs mode for one node: virtual servers, the kube-ipvs0 addresses, the ipsets and
the iptables rules that use them.

Mirrors ``syncProxyRules``, ``writeIptablesRules``, ``acceptIPVSTraffic``, ``syncService`` and
``syncEndpoint`` of ``pkg/proxy/ipvs/proxier.go`` and the ``ipsetInfo`` /
``ipsetWithIptablesChain`` tables (with ``ipset.go``'s set names and comments), as read in the
stored copy with ``KUBE-IPVS-OUT-FILTER`` (index id 32359423, the 1.30-1.32 cycle); what differs
by release is a column of ``kubeproxy/releases.py`` (``ipvs_*``). Expected results are checked
against that release's ``proxier_test.go`` (index id 11084498) in ``tests/ipvs/``.

What kube-proxy installs, per Service port (``ns/name:port``, sorted as the iptables builder
sorts them):

* a virtual server for the ClusterIP, each externalIP, each LoadBalancer VIP (``ipMode: VIP``)
  and, with a nodePort, each node address that ``nodePortAddresses`` selects; scheduler
  ``ipvs.scheduler`` (default ``rr``), ``-p TIMEOUT`` for ``sessionAffinity: ClientIP``,
  ``-b mh-port`` for ``mh``;
* its real servers (masquerading, weight 1): ``CategorizeEndpoints``' cluster endpoints, or the
  local ones for a policy-Local virtual server (internal policy for the ClusterIP, external
  policy for the rest) — falling back to the cluster endpoints when there is no local one
  (``syncEndpoint``, kubernetes PR 97081);
* ClusterIPs, externalIPs not owned by the node and LB VIPs not owned by the node are bound to
  the ``kube-ipvs0`` dummy interface (``KUBE-IPVS-IPS`` holds the same addresses);
* ipset entries, and a fixed set of iptables rules keyed on the sets.

iptables rules are IR (``-m set``, ``-m physdev``, ``-m ipvs`` as ``UnknownMatch`` text, decided
by ``netfilter.ipset`` when the sets are known, forked otherwise). The ruleset holds the
built-in chains with the jumps kube-proxy ``EnsureRule``s (prepended, so in reverse order).

Graceful termination (weight-0 real servers while connections drain) is runtime state: noted,
or built with ``build_ipvs_node(..., draining=True)``. Not modelled: the addresses of node
interfaces other than the node's own InternalIP/ExternalIP as NodePort virtual servers (a real
node also has them on cni0/docker0), ``excludeCIDRs`` (only spares virtual servers from
clean-up) and ``strictARP`` (sysctls only): both are noted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from sourceip.cluster import (
    Cluster,
    KubeProxyConfig,
    Node,
    ProxyEndpoint,
    Service,
    ServicePort,
    categorize_endpoints,
    service_port_endpoints,
)
from sourceip.cluster.endpoints import Categorized
from sourceip.errors import ValidationError
from sourceip.kubeproxy.localdetect import local_detector
from sourceip.kubeproxy.names import endpoint_string, service_port_name
from sourceip.kubeproxy.releases import Release, release
from sourceip.net.addr import IPAddress, host_port
from sourceip.netfilter.ipset import IPSet
from sourceip.netfilter.ipset_save import SetSpec, render_ipset_save
from sourceip.netfilter.ir import (
    Accept,
    Action,
    Addr,
    AddrType,
    Chain,
    CtState,
    Drop,
    Jump,
    Mark,
    MarkSet,
    Masquerade,
    Match,
    Proto,
    Reject,
    Return,
    Rule,
    Ruleset,
    Table,
    UnknownMatch,
)
from sourceip.netfilter.parse_ipvsadm import (
    IPVSTable,
    RealServer,
    VirtualServer,
    render_ipvsadm_save,
)

__all__ = [
    "DUMMY_DEVICE",
    "IPSET_INFO",
    "IPVSNode",
    "build_ipvs_node",
    "build_ipvs_ruleset",
    "render_ipvs_node",
]

DUMMY_DEVICE = "kube-ipvs0"
DEFAULT_SCHEDULER = "rr"

# chain names (proxier.go constants)
KUBE_SERVICES = "KUBE-SERVICES"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_SOURCE_RANGES_FIREWALL = "KUBE-SOURCE-RANGES-FIREWALL"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_NODE_PORT = "KUBE-NODE-PORT"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_LOAD_BALANCER = "KUBE-LOAD-BALANCER"
KUBE_IPVS_FILTER = "KUBE-IPVS-FILTER"
KUBE_IPVS_OUT_FILTER = "KUBE-IPVS-OUT-FILTER"

# set names (ipset.go)
LOOP_BACK = "KUBE-LOOP-BACK"
CLUSTER_IP = "KUBE-CLUSTER-IP"
EXTERNAL_IP = "KUBE-EXTERNAL-IP"
EXTERNAL_IP_LOCAL = "KUBE-EXTERNAL-IP-LOCAL"
LOAD_BALANCER = "KUBE-LOAD-BALANCER"
LOAD_BALANCER_FW = "KUBE-LOAD-BALANCER-FW"
LOAD_BALANCER_LOCAL = "KUBE-LOAD-BALANCER-LOCAL"
LOAD_BALANCER_SOURCE_IP = "KUBE-LOAD-BALANCER-SOURCE-IP"
LOAD_BALANCER_SOURCE_CIDR = "KUBE-LOAD-BALANCER-SOURCE-CIDR"
NODE_PORT_TCP = "KUBE-NODE-PORT-TCP"
NODE_PORT_LOCAL_TCP = "KUBE-NODE-PORT-LOCAL-TCP"
NODE_PORT_UDP = "KUBE-NODE-PORT-UDP"
NODE_PORT_LOCAL_UDP = "KUBE-NODE-PORT-LOCAL-UDP"
NODE_PORT_SCTP = "KUBE-NODE-PORT-SCTP-HASH"
NODE_PORT_LOCAL_SCTP = "KUBE-NODE-PORT-LOCAL-SCTP-HASH"
HEALTH_CHECK_NODE_PORT = "KUBE-HEALTH-CHECK-NODE-PORT"
IPVS_IPS = "KUBE-IPVS-IPS"

# ipsetInfo: (name, type, comment), in kube-proxy's order.
IPSET_INFO: tuple[tuple[str, str, str], ...] = (
    (LOOP_BACK, "hash:ip,port,ip",
     "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"),
    (CLUSTER_IP, "hash:ip,port", "Kubernetes service cluster ip + port for masquerade purpose"),
    (EXTERNAL_IP, "hash:ip,port",
     "Kubernetes service external ip + port for masquerade and filter purpose"),
    (EXTERNAL_IP_LOCAL, "hash:ip,port",
     "Kubernetes service external ip + port with externalTrafficPolicy=local"),
    (LOAD_BALANCER, "hash:ip,port", "Kubernetes service lb portal"),
    (LOAD_BALANCER_FW, "hash:ip,port",
     "Kubernetes service load balancer ip + port for load balancer with sourceRange"),
    (LOAD_BALANCER_LOCAL, "hash:ip,port",
     "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"),
    (LOAD_BALANCER_SOURCE_IP, "hash:ip,port,ip",
     "Kubernetes service load balancer ip + port + source IP for packet filter purpose"),
    (LOAD_BALANCER_SOURCE_CIDR, "hash:ip,port,net",
     "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"),
    (NODE_PORT_TCP, "bitmap:port", "Kubernetes nodeport TCP port for masquerade purpose"),
    (NODE_PORT_LOCAL_TCP, "bitmap:port",
     "Kubernetes nodeport TCP port with externalTrafficPolicy=local"),
    (NODE_PORT_UDP, "bitmap:port", "Kubernetes nodeport UDP port for masquerade purpose"),
    (NODE_PORT_LOCAL_UDP, "bitmap:port",
     "Kubernetes nodeport UDP port with externalTrafficPolicy=local"),
    (NODE_PORT_SCTP, "hash:ip,port",
     "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"),
    (NODE_PORT_LOCAL_SCTP, "hash:ip,port",
     "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"),
    (HEALTH_CHECK_NODE_PORT, "bitmap:port", "Kubernetes health check node port"),
    (IPVS_IPS, "hash:ip", "Addresses on the ipvs interface"),
)
_COMMENT = {name: comment for name, _t, comment in IPSET_INFO}
_TYPE = {name: typ for name, typ, _c in IPSET_INFO}

# ipsetWithIptablesChain: (set, table, from chain, target, match flags, protocol).
# Local NodePort sets come before their non-local sets (RETURN first).
IPSET_WITH_IPTABLES_CHAIN: tuple[tuple[str, str, str, str, str, str], ...] = (
    (LOOP_BACK, "nat", KUBE_POSTROUTING, "MASQUERADE", "dst,dst,src", ""),
    (LOAD_BALANCER, "nat", KUBE_SERVICES, KUBE_LOAD_BALANCER, "dst,dst", ""),
    (LOAD_BALANCER_LOCAL, "nat", KUBE_LOAD_BALANCER, "RETURN", "dst,dst", ""),
    (NODE_PORT_LOCAL_TCP, "nat", KUBE_NODE_PORT, "RETURN", "dst", "tcp"),
    (NODE_PORT_TCP, "nat", KUBE_NODE_PORT, KUBE_MARK_MASQ, "dst", "tcp"),
    (NODE_PORT_LOCAL_UDP, "nat", KUBE_NODE_PORT, "RETURN", "dst", "udp"),
    (NODE_PORT_UDP, "nat", KUBE_NODE_PORT, KUBE_MARK_MASQ, "dst", "udp"),
    (NODE_PORT_LOCAL_SCTP, "nat", KUBE_NODE_PORT, "RETURN", "dst,dst", "sctp"),
    (NODE_PORT_SCTP, "nat", KUBE_NODE_PORT, KUBE_MARK_MASQ, "dst,dst", "sctp"),
    (LOAD_BALANCER_FW, "filter", KUBE_PROXY_FIREWALL, KUBE_SOURCE_RANGES_FIREWALL, "dst,dst", ""),
    (LOAD_BALANCER_SOURCE_CIDR, "filter", KUBE_SOURCE_RANGES_FIREWALL, "RETURN", "dst,dst,src",
     ""),
    (LOAD_BALANCER_SOURCE_IP, "filter", KUBE_SOURCE_RANGES_FIREWALL, "RETURN", "dst,dst,src", ""),
)

# iptablesJumpChain: (table, from, to, comment), EnsureRule'd with Prepend in this order.
JUMP_CHAINS: tuple[tuple[str, str, str, str], ...] = (
    ("nat", "OUTPUT", KUBE_SERVICES, "kubernetes service portals"),
    ("nat", "PREROUTING", KUBE_SERVICES, "kubernetes service portals"),
    ("nat", "POSTROUTING", KUBE_POSTROUTING, "kubernetes postrouting rules"),
    ("filter", "FORWARD", KUBE_FORWARD, "kubernetes forwarding rules"),
    ("filter", "INPUT", KUBE_NODE_PORT, "kubernetes health check rules"),
    ("filter", "INPUT", KUBE_PROXY_FIREWALL, "kube-proxy firewall rules"),
    ("filter", "FORWARD", KUBE_PROXY_FIREWALL, "kube-proxy firewall rules"),
    ("filter", "INPUT", KUBE_IPVS_FILTER, "kubernetes ipvs access filter"),
    ("filter", "OUTPUT", KUBE_IPVS_OUT_FILTER, "kubernetes ipvs access filter"),
)
_NAT_CHAINS = (KUBE_SERVICES, KUBE_POSTROUTING, KUBE_NODE_PORT, KUBE_LOAD_BALANCER,
               KUBE_MARK_MASQ)
_FILTER_CHAINS = (KUBE_FORWARD, KUBE_NODE_PORT, KUBE_PROXY_FIREWALL,
                  KUBE_SOURCE_RANGES_FIREWALL, KUBE_IPVS_FILTER, KUBE_IPVS_OUT_FILTER)
_VERDICT: dict[str, Action] = {"RETURN": Return(), "ACCEPT": Accept(), "DROP": Drop(),
                               "MASQUERADE": Masquerade(random_fully=True)}


def set_match(name: str, flags: str) -> UnknownMatch:
    """``-m set --match-set NAME FLAGS`` as the iptables parser represents it."""
    return UnknownMatch(f"-m set --match-set {name} {flags}")


@dataclass(frozen=True, slots=True)
class IPVSNode:
    """What kube-proxy's ipvs proxier installs on one node: the IPVS ``table``, the addresses
    bound to ``kube-ipvs0``, the ipsets (``sets``, every set of ``IPSET_INFO`` in order, empty
    ones included) and the iptables ``ruleset``."""

    node: str
    table: IPVSTable
    dummy_addresses: tuple[IPAddress, ...]
    sets: tuple[SetSpec, ...]
    ruleset: Ruleset
    notes: tuple[str, ...] = ()
    _ipsets: list[dict[str, IPSet]] = field(default_factory=list, compare=False, repr=False)

    def ipsets(self) -> dict[str, IPSet]:
        """The sets as ``netfilter.ipset`` evaluates them (built once)."""
        if not self._ipsets:
            self._ipsets.append({s.name: s.ipset() for s in self.sets})
        return self._ipsets[0]


def _entry(ip: IPAddress, proto: str, port: int, third: object = None) -> str:
    """``utilipset.Entry.String()``: ``IP,proto:port[,IP2|,net]``."""
    base = f"{ip},{proto}:{port}"
    return base if third is None else f"{base},{third}"


def _node_port_ips(cfg: KubeProxyConfig, node: Node, family: int) -> list[IPAddress]:
    """The node addresses NodePort virtual servers are created on (``nodePortAddresses``:
    unset or a /0 = every address of the node but kube-ipvs0's; ``primary``; CIDRs), loopback
    never (``ip.IsLoopback()`` is skipped)."""
    addrs = [ip for ip in node.addresses if ip.version == family and not ip.is_loopback]
    cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    primary = False
    for text in cfg.node_port_addresses:
        if text == "primary":
            primary = True
            continue
        net = ipaddress.ip_network(text.strip(), strict=False)
        if net.version == family:
            cidrs.append(net)
    if primary:
        p = node.primary_ip(family)
        return [p] if p is not None else []
    if not cidrs or any(c.prefixlen == 0 for c in cidrs):
        out: list[IPAddress] = []
        for ip in addrs:
            if ip not in out:
                out.append(ip)
        return out
    return [ip for ip in dict.fromkeys(addrs) if any(ip in c for c in cidrs)]


def build_ipvs_ruleset(cluster: Cluster, node: Node, cfg: KubeProxyConfig, *,
                       family: int = 4) -> Ruleset:
    """The iptables part of ``build_ipvs_node`` (what ``kubeproxy.build_ruleset`` returns in
    ipvs mode)."""
    return build_ipvs_node(cluster, node, cfg, family=family).ruleset


def build_ipvs_node(cluster: Cluster, node: Node, cfg: KubeProxyConfig, *,
                    family: int = 4, draining: bool = False) -> IPVSNode:
    """What kube-proxy in ipvs mode (configured by ``cfg``, release ``cfg.version``) installs
    on ``node``. IPv4 only (``family`` 6 raises ``ValidationError``: kube-proxy's ipvs mode
    handles IPv6, this model does not).

    Graceful termination (``pkg/proxy/ipvs/graceful_termination.go``, ``GracefulDeleteRS`` /
    ``deleteRsFunc``): a real server that leaves a virtual server's endpoint list is deleted
    at once when it has no connections (or for UDP/SCTP, ``IsRsGracefulTerminationNeeded``);
    otherwise kube-proxy sets its weight to 0 — no new connection goes there, existing ones
    drain — and retries the deletion every minute. Connection counts are runtime state: by
    default terminating endpoints that are not real servers are absent (as in upstream's
    tests, whose fake IPVS has no connections) and a note names them; ``draining`` keeps them
    as weight-0 real servers of TCP virtual servers, the state while they still have
    connections (compare with a node's ``ipvsadm -Ln`` during a rollout)."""
    if family != 4:
        raise ValidationError("ipvs mode rules are generated for IPv4 only", field="family")
    rel = release(cfg.version)
    return _Builder(cluster, node, cfg, rel, draining).build()


class _Builder:
    def __init__(self, cluster: Cluster, node: Node, cfg: KubeProxyConfig, rel: Release,
                 draining: bool = False) -> None:
        self.cluster, self.node, self.cfg, self.rel = cluster, node, cfg, rel
        self.draining = draining
        self.terminating: tuple[ProxyEndpoint, ...] = ()  # of the Service port being built
        self.entries: dict[str, dict[str, None]] = {name: {} for name, _t, _c in IPSET_INFO}
        self.vss: list[VirtualServer] = []
        self.bound: dict[IPAddress, None] = {}
        self.no_node_access: list[tuple[IPAddress, str, int]] = []
        self.notes: list[str] = []
        self.scheduler = cfg.ipvs_scheduler or DEFAULT_SCHEDULER

    def add(self, set_name: str, entry: str) -> None:
        self.entries[set_name][entry] = None

    def vs(self, addr: IPAddress, port: int, proto: str, svc: Service,
           reals: tuple[ProxyEndpoint, ...], local: bool = False) -> None:
        """A virtual server and its real servers (``local``: they are the node's local
        endpoints of a policy-Local virtual server)."""
        flags: tuple[str, ...] = ("mh-port",) if self.scheduler == "mh" else ()
        persistent = svc.affinity_timeout if svc.session_affinity == "ClientIP" else None
        # Terminating endpoints of the same locality as the real servers that are not real
        # servers: drained with weight 0 when ``draining`` (TCP only; see build_ipvs_node).
        chosen = {(e.ip, e.port) for e in reals}
        gone = tuple(e for e in self.terminating if (e.ip, e.port) not in chosen
                     and (not local or e.node_name == self.node.name))
        weights = {(e.ip, e.port): 1 for e in reals}
        if gone:
            where = f"{proto} {host_port(addr, port)}"
            if self.draining and proto == "tcp":
                for e in gone:
                    weights[(e.ip, e.port)] = 0
                reals = (*reals, *gone)
                self.notes.append(f"virtual server {where}: terminating "
                                  f"{', '.join(str(e) for e in gone)} kept with weight 0 "
                                  "(graceful termination: existing connections drain, new "
                                  "ones do not go there)")
            else:
                self.notes.append(f"virtual server {where}: terminating "
                                  f"{', '.join(str(e) for e in gone)} not a real server "
                                  "(kube-proxy keeps a TCP one with weight 0 while it has "
                                  "connections, graceful termination)")
        rs = tuple(RealServer(addr=e.ip, port=e.port, weight=weights[(e.ip, e.port)],
                              forward="m") for e in
                   sorted(reals, key=lambda e: endpoint_string(str(e.ip), e.port)))
        self.vss.append(VirtualServer(proto=proto, addr=addr, port=port,
                                      scheduler=self.scheduler, persistent=persistent,
                                      flags=flags, real_servers=rs))

    def build(self) -> IPVSNode:
        cluster, node, cfg, rel = self.cluster, self.node, self.cfg, self.rel
        node_addrs = frozenset(ip for ip in node.addresses)
        np_ips = _node_port_ips(cfg, node, 4)
        node_ip = node.primary_ip(4)
        ports: list[tuple[str, Service, ServicePort, IPAddress]] = []
        for svc in cluster.services:
            if not svc.proxied:
                continue
            v4 = next((a for a in svc.cluster_ips if a.version == 4), None)
            if v4 is None:
                self.notes.append(f"Service {svc.namespace}/{svc.name} has no IPv4 ClusterIP: "
                                  "not modelled (ipvs mode is modelled for IPv4 only)")
                continue
            if any(a.version == 6 for a in svc.cluster_ips):
                self.notes.append(f"Service {svc.namespace}/{svc.name}: its IPv6 ClusterIP is "
                                  "not modelled (ipvs mode is modelled for IPv4 only)")
            for sp in svc.ports:
                ports.append((service_port_name(svc.namespace, svc.name, sp.name), svc, sp,
                              v4))
        ports.sort(key=lambda x: x[0])
        for _name, svc, sp, cip in ports:
            proto = sp.protocol
            all_eps = service_port_endpoints(cluster, svc, sp, version=4)
            # Hairpin: every local endpoint (kube-proxy's endpointsMap, any condition).
            for e in all_eps:
                if e.node_name == node.name:
                    self.add(LOOP_BACK, _entry(e.ip, proto, e.port, e.ip))
            cat = categorize_endpoints(all_eps, svc, node.name, node.zone)
            self.terminating = tuple(e for e in all_eps if e.terminating)

            self.add(CLUSTER_IP, _entry(cip, proto, sp.port))
            self.vs(cip, sp.port, proto, svc, _pick(cat, svc.internal_policy_local),
                    bool(svc.internal_policy_local and cat.local))
            self.bound[cip] = None
            etp_local = svc.external_policy_local
            ext_eps = _pick(cat, etp_local)
            ext_local = bool(etp_local and cat.local)
            for eip in (ip for ip in svc.external_ips if ip.version == 4):
                local_set = etp_local and rel.ipvs_external_ip_local_set
                self.add(EXTERNAL_IP_LOCAL if local_set else EXTERNAL_IP,
                         _entry(eip, proto, sp.port))
                self.vs(eip, sp.port, proto, svc, ext_eps, ext_local)
                if eip not in node_addrs:
                    self.bound[eip] = None
            for lb in (ip for ip in svc.lb_ips if ip.version == 4):
                entry = _entry(lb, proto, sp.port)
                self.add(LOAD_BALANCER, entry)
                if etp_local:
                    self.add(LOAD_BALANCER_LOCAL, entry)
                ranges = tuple(n for n in svc.lb_source_ranges if n.version == 4)
                if ranges:
                    self.add(LOAD_BALANCER_FW, entry)
                    allow_node = False
                    for cidr in ranges:
                        self.add(LOAD_BALANCER_SOURCE_CIDR, _entry(lb, proto, sp.port, cidr))
                        if node_ip is not None and node_ip in cidr:
                            allow_node = True
                    if allow_node:
                        self.add(LOAD_BALANCER_SOURCE_IP, _entry(lb, proto, sp.port, lb))
                    else:
                        self.no_node_access.append((lb, proto, sp.port))
                self.vs(lb, sp.port, proto, svc, ext_eps, ext_local)
                if lb not in node_addrs:
                    self.bound[lb] = None
            if sp.node_port and np_ips:
                np = sp.node_port
                if proto == "sctp":
                    np_entries = [(NODE_PORT_SCTP, NODE_PORT_LOCAL_SCTP, _entry(ip, proto, np))
                                  for ip in np_ips]
                else:
                    up = proto.upper()
                    np_entries = [(f"KUBE-NODE-PORT-{up}", f"KUBE-NODE-PORT-LOCAL-{up}",
                                   str(np))]
                for set_name, local_name, entry in np_entries:
                    self.add(set_name, entry)
                    if etp_local:
                        self.add(local_name, entry)
                for ip in np_ips:
                    self.vs(ip, np, proto, svc, ext_eps, ext_local)
            if svc.needs_health_check and svc.health_check_node_port:
                self.add(HEALTH_CHECK_NODE_PORT, str(svc.health_check_node_port))
        for addr in self.bound:
            self.add(IPVS_IPS, str(addr))

        sets = tuple(SetSpec(name=name, type=typ, options=_create_options(typ),
                             entries=tuple(self.entries[name]))
                     for name, typ, _c in IPSET_INFO)
        ruleset = self.iptables(sets)
        table = IPVSTable(virtual_servers=tuple(self.vss), source=f"node {node.name}")
        return IPVSNode(node=node.name, table=table, dummy_addresses=tuple(self.bound),
                        sets=sets, ruleset=ruleset, notes=tuple(self.notes))

    # ------------------------------------------------------------------ iptables
    def iptables(self, sets: tuple[SetSpec, ...]) -> Ruleset:
        cfg, rel = self.cfg, self.rel
        mark = cfg.masquerade_mark
        nonempty = {s.name for s in sets if s.entries}
        detector = local_detector(cfg, self.node, 4)
        notes = self.notes
        if rel.ipvs_deprecated:
            notes.append(f"kube-proxy {rel.label}: ipvs mode is deprecated upstream (the "
                         "rules are unchanged)")
        if not cfg.masquerade_all and not detector.implemented:
            notes.append(f"local-traffic detector is {detector.describe()}: KUBE-CLUSTER-IP "
                         "masquerades only sources that are themselves a service VIP "
                         "(src,dst), not off-cluster clients")
        if cfg.ipvs_strict_arp:
            notes.append("ipvs.strictARP: arp_ignore=1 / arp_announce=2 (sysctls; no rule "
                         "changes)")
        if cfg.ipvs_exclude_cidrs:
            notes.append("ipvs.excludeCIDRs " + ", ".join(cfg.ipvs_exclude_cidrs) + ": virtual "
                         "servers there are left alone at clean-up (no rule changes)")
        nat: dict[str, list[Rule]] = {c: [] for c in ("PREROUTING", "INPUT", "OUTPUT",
                                                      "POSTROUTING", *_NAT_CHAINS)}
        filt: dict[str, list[Rule]] = {c: [] for c in ("INPUT", "FORWARD", "OUTPUT",
                                                       *_FILTER_CHAINS)}
        if not rel.ipvs_out_filter:
            del filt[KUBE_IPVS_OUT_FILTER]
        for table, src, dst, comment in JUMP_CHAINS:
            chains = nat if table == "nat" else filt
            if dst not in chains:
                continue
            chains[src].insert(0, Rule((), (Jump(dst),), comment))

        services = nat[KUBE_SERVICES]
        services.append(Rule((Addr("src", (ipaddress.ip_network("127.0.0.0/8"),)),),
                             (Return(),)))
        for name, table, src, target, flags, proto in IPSET_WITH_IPTABLES_CHAIN:
            if name not in nonempty:
                continue
            m: tuple[Match, ...] = (set_match(name, flags),)
            if proto:
                m = (Proto(proto), *m)
            chains = filt if table == "filter" else nat
            chains[src].append(Rule(m, (_VERDICT.get(target) or Jump(target),),
                                    _COMMENT[name]))
        if CLUSTER_IP in nonempty:
            cip = _COMMENT[CLUSTER_IP]
            if cfg.masquerade_all:
                services.append(Rule((set_match(CLUSTER_IP, "dst,dst"),),
                                     (Jump(KUBE_MARK_MASQ),), cip))
            elif detector.implemented:
                services.append(Rule((set_match(CLUSTER_IP, "dst,dst"),
                                      *detector.if_not_local), (Jump(KUBE_MARK_MASQ),), cip))
            else:
                services.append(Rule((set_match(CLUSTER_IP, "src,dst"),),
                                     (Jump(KUBE_MARK_MASQ),), cip))

        def external_ip_rules(name: str) -> None:
            sm = set_match(name, "dst,dst")
            services.append(Rule((sm, UnknownMatch("-m physdev ! --physdev-is-in"),
                                  AddrType("src", "LOCAL", negate=True)), (Accept(),),
                                 _COMMENT[name]))
            services.append(Rule((sm, AddrType("dst", "LOCAL")), (Accept(),), _COMMENT[name]))

        if EXTERNAL_IP in nonempty:
            services.append(Rule((set_match(EXTERNAL_IP, "dst,dst"),), (Jump(KUBE_MARK_MASQ),),
                                 _COMMENT[EXTERNAL_IP]))
            external_ip_rules(EXTERNAL_IP)
        if EXTERNAL_IP_LOCAL in nonempty:
            external_ip_rules(EXTERNAL_IP_LOCAL)
        services.append(Rule((AddrType("dst", "LOCAL"),), (Jump(KUBE_NODE_PORT),)))
        nat[KUBE_LOAD_BALANCER].append(Rule((), (Jump(KUBE_MARK_MASQ),)))
        filt[KUBE_SOURCE_RANGES_FIREWALL].append(Rule((), (Drop(),)))
        if rel.ipvs_out_filter:
            for lb, proto, port in self.no_node_access:
                filt[KUBE_IPVS_OUT_FILTER].append(Rule(
                    (Addr("src", (lb,)),
                     UnknownMatch(f"-m ipvs --vaddr {lb} --vproto {proto} --vport {port}")),
                    (Drop(),)))
        # acceptIPVSTraffic: must stay at the end of KUBE-SERVICES.
        for name in (CLUSTER_IP, LOAD_BALANCER):
            if name in nonempty:
                services.append(Rule((set_match(name, "dst,dst"),), (Accept(),)))
        filt[KUBE_FORWARD].append(Rule((Mark(mark, mark),), (Accept(),),
                                       "kubernetes forwarding rules"))
        filt[KUBE_FORWARD].append(Rule((CtState(("RELATED", "ESTABLISHED")),), (Accept(),),
                                       "kubernetes forwarding conntrack rule"))
        filt[KUBE_NODE_PORT].append(Rule((set_match(HEALTH_CHECK_NODE_PORT, "dst"),),
                                         (Accept(),), _COMMENT[HEALTH_CHECK_NODE_PORT]))
        ipvs_filter = filt[KUBE_IPVS_FILTER]
        for name, flags in ((LOAD_BALANCER, "dst,dst"), (CLUSTER_IP, "dst,dst"),
                            (EXTERNAL_IP, "dst,dst"), (EXTERNAL_IP_LOCAL, "dst,dst"),
                            (HEALTH_CHECK_NODE_PORT, "dst")):
            ipvs_filter.append(Rule((set_match(name, flags),), (Return(),)))
        ipvs_filter.append(Rule((CtState(("NEW",)), set_match(IPVS_IPS, "dst")), (Reject(),)))
        post = nat[KUBE_POSTROUTING]
        post.append(Rule((Mark(mark, mark, negate=True),), (Return(),)))
        post.append(Rule((), (MarkSet("xor", mark),)))
        post.append(Rule((), (Masquerade(random_fully=True),),
                         "kubernetes service traffic requiring SNAT"))
        nat[KUBE_MARK_MASQ].append(Rule((), (MarkSet("or", mark),)))

        builtin = {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "FORWARD"}

        def chains_of(d: dict[str, list[Rule]]) -> tuple[Chain, ...]:
            return tuple(
                Chain(name=n, rules=tuple(r), hook=n.lower(), policy="ACCEPT") if n in builtin
                else Chain(name=n, rules=tuple(r)) for n, r in d.items())

        return Ruleset(backend="iptables", tables=(
            Table(name="filter", family="ip", chains=chains_of(filt)),
            Table(name="nat", family="ip", chains=chains_of(nat)),
        ), notes=tuple(notes))


def _pick(cat: Categorized, only_local: bool) -> tuple[ProxyEndpoint, ...]:
    """``syncEndpoint``'s choice: the local endpoints of a policy-Local virtual server, or the
    cluster endpoints when there is none (kubernetes PR 97081); else the cluster endpoints."""
    if only_local and cat.local:
        return tuple(cat.local)
    return tuple(cat.cluster)


def _create_options(typ: str) -> tuple[str, ...]:
    """``ipset create`` options as kube-proxy's ipset util writes them."""
    if typ.startswith("bitmap:port"):
        return ("range", "0-65535", "comment")
    return ("family", "inet", "hashsize", "1024", "maxelem", "65536", "comment")


def render_ipvs_node(n: IPVSNode, *, header: Iterable[str] = ()) -> str:
    """The three dumps of an ipvs node, each under a ``### <command>`` line so that each
    part can be cut out and loaded by its tool: ``ipvsadm -Sn`` (``ipvsadm -R``), ``ipset
    save`` (``ipset restore``), ``iptables-save`` (``iptables-restore``), with the kube-ipvs0
    addresses as ``ip addr add`` comments."""
    from sourceip.netfilter import render

    out = [f"# {h}" for h in header]
    out.append(f"### ipvsadm -Sn  (load: ipvsadm -R; {len(n.table.virtual_servers)} virtual "
               "servers)")
    out.append(render_ipvsadm_save(n.table).rstrip("\n"))
    out.append(f"### ip -4 addr show dev {DUMMY_DEVICE}  ({len(n.dummy_addresses)} addresses)")
    out += [f"# ip addr add {a}/32 dev {DUMMY_DEVICE}" for a in n.dummy_addresses]
    out.append("### ipset save  (load: ipset restore)")
    out.append(render_ipset_save(n.sets).rstrip("\n"))
    out.append("### iptables-save  (load: iptables-restore)")
    out.append(render(n.ruleset).rstrip("\n"))
    return "\n".join(line for line in out if line != "") + "\n"


def split_ipvs_dump(text: str) -> dict[str, str]:
    """The parts of ``render_ipvs_node`` output by command (``ipvsadm``, ``ip``, ``ipset``,
    ``iptables-save``)."""
    parts: dict[str, list[str]] = {}
    cur: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("### "):
            cur = parts.setdefault(line[4:].split()[0], [])
            continue
        if cur is not None:
            cur.append(line)
    return {k: "\n".join(v) + "\n" for k, v in parts.items()}
