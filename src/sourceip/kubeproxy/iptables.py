"""kube-proxy's iptables-mode ruleset for one node, as netfilter IR.

Mirrors ``syncProxyRules`` and ``writeServiceToEndpointRules`` in
``pkg/proxy/iptables/proxier.go`` (~v1.32/1.33: nfacct counters, KUBE-PROXY-FIREWALL,
KUBE-EXT/KUBE-SVL chains): the same chains, rules, comments and rule order within each chain.
On top of what kube-proxy writes with ``iptables-restore``, the ruleset holds the built-in
chains (policy ACCEPT) with the jump rules kube-proxy installs with ``EnsureRule``
(``iptablesJumpChains`` and kubelet's ``iptablesKubeletJumpChains``), so that the rendered text
is a complete ruleset for the node.

Things kube-proxy leaves to chance and we fix: kube-proxy walks its service map in Go's random
map order; we walk service ports sorted by their ``ns/name:port`` string. Endpoints are sorted by
``ip:port`` string, as kube-proxy's EndpointSliceCache sorts them (``byEndpoint``).

Built-in jump order: kube-proxy *prepends* each jump in list order, so a chain ends up with them
in reverse list order; kubelet's KUBE-FIREWALL jump (created before kube-proxy starts) stays
last.
"""

from __future__ import annotations

import gc
import hashlib
import ipaddress
from collections.abc import Iterable
from socket import inet_ntoa

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
from sourceip.kubeproxy.localdetect import local_detector
from sourceip.kubeproxy.names import (
    _B32_PAIRS,
    endpoint_string,
    port_proto_hash,
    service_port_name,
)
from sourceip.kubeproxy.releases import release
from sourceip.net.addr import IPAddress, IPNetwork, ip_text
from sourceip.netfilter.ir import (
    Accept,
    Action,
    Addr,
    AddrType,
    Chain,
    CtState,
    Dnat,
    Drop,
    Jump,
    Mark,
    MarkSet,
    Masquerade,
    Match,
    Nfacct,
    Port,
    Proto,
    Recent,
    Reject,
    Return,
    Rule,
    Ruleset,
    Statistic,
    Table,
)

__all__ = [
    "KUBE_EXTERNAL_SERVICES",
    "KUBE_FIREWALL",
    "KUBE_FORWARD",
    "KUBE_MARK_MASQ",
    "KUBE_NODEPORTS",
    "KUBE_POSTROUTING",
    "KUBE_PROXY_FIREWALL",
    "KUBE_SERVICES",
    "LARGE_CLUSTER_ENDPOINTS_THRESHOLD",
    "LOCALHOST_NODEPORT_NFACCT",
    "CT_INVALID_NFACCT",
    "build_iptables_ruleset",
    "probability",
]

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_FIREWALL = "KUBE-FIREWALL"

# pkg/proxy/metrics: nfacct counter names.
LOCALHOST_NODEPORT_NFACCT = "localhost_nps_accepted_pkts"
CT_INVALID_NFACCT = "ct_state_invalid_dropped_pkts"

# Above this many endpoints kube-proxy drops the per-endpoint comments ("large cluster mode").
LARGE_CLUSTER_ENDPOINTS_THRESHOLD = 1000

_NODEPORTS_COMMENT = "kubernetes service nodeports; NOTE: this must be the last rule in this chain"

# ---- interned IR values (one object each, shared by every rule) ----
_J_MARK_MASQ = Jump(KUBE_MARK_MASQ)
_J_NODEPORTS = Jump(KUBE_NODEPORTS)
_A_MARK_MASQ = (_J_MARK_MASQ,)
_A_ACCEPT = (Accept(),)
_A_DROP = (Drop(),)
_A_REJECT = (Reject(),)
_A_RETURN = (Return(),)
_PROTO = {p: Proto(p) for p in ("tcp", "udp", "sctp")}
_SRC_LOCAL = AddrType("src", "LOCAL")
_DST_LOCAL = AddrType("dst", "LOCAL")
_V4_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
# proxier.go syncProxyRules writes "! -d ::1/128" on IPv6 (localhost NodePorts never work
# there: route_localnet is IPv4 only); the IR keeps the address, as parse_iptables reads a
# /128 (ip6tables-save prints "::1/128" either way).
_V6_LOOPBACK = ipaddress.IPv6Address("::1")
_NFACCT_LOCALHOST = Nfacct(LOCALHOST_NODEPORT_NFACCT)
_CT_NEW = CtState(("NEW",))

_PROB_CACHE: list[str] = ["<bad value>"]
_PORT_CACHE: dict[int, Port] = {}
_STAT_CACHE: dict[int, tuple[Match, ...]] = {}
_JUMP_CACHE: dict[str, tuple[Action, ...]] = {}


def probability(n: int) -> str:
    """kube-proxy's ``computeProbability``: ``%0.10f`` of 1/n (cached like
    ``precomputedProbabilities``)."""
    while len(_PROB_CACHE) <= n:
        _PROB_CACHE.append(f"{1.0 / len(_PROB_CACHE):0.10f}")
    return _PROB_CACHE[n]


def _statistic(n: int) -> tuple[Match, ...]:
    m = _STAT_CACHE.get(n)
    if m is None:
        m = _STAT_CACHE[n] = (Statistic(probability(n)),)
    return m


def sep_chain_name(prefix: str, endpoint: str) -> str:
    """``KUBE-SEP-`` chain for ``prefix`` (servicePortName + protocol) and ``ip:port``; same as
    ``names.service_port_endpoint_chain_name`` without re-joining the prefix."""
    n = int.from_bytes(hashlib.sha256((prefix + endpoint).encode()).digest()[:10], "big")
    p = _B32_PAIRS
    return (
        "KUBE-SEP-" + p[n >> 70] + p[(n >> 60) & 1023] + p[(n >> 50) & 1023]
        + p[(n >> 40) & 1023] + p[(n >> 30) & 1023] + p[(n >> 20) & 1023]
        + p[(n >> 10) & 1023] + p[n & 1023]
    )


def _dport(port: int) -> Port:
    p = _PORT_CACHE.get(port)
    if p is None:
        p = _PORT_CACHE[port] = Port("dport", (port,))
    return p


def _jump(chain: str) -> tuple[Action, ...]:
    a = _JUMP_CACHE.get(chain)
    if a is None:
        if len(_JUMP_CACHE) > 200_000:
            _JUMP_CACHE.clear()
        a = _JUMP_CACHE[chain] = (Jump(chain),)
    return a


# ----------------------------------------------------------------------------- node-port addresses


class _NodePortAddresses:
    """``proxyutil.NodePortAddresses`` for one family: ``match_all`` when unset (or when no CIDR
    of the family is given), else the CIDRs; ``contains_v4_loopback`` as kube-proxy computes it.
    ``primary`` stands for the node's primary IP of the family (``cmd/kube-proxy``)."""

    def __init__(self, cfg: KubeProxyConfig, node: Node, family: int) -> None:
        cidrs: list[IPNetwork] = []
        for text in cfg.node_port_addresses:
            if text == "primary":
                ip = node.primary_ip(family)
                if ip is not None:
                    cidrs.append(ipaddress.ip_network(ip))
                continue
            net = ipaddress.ip_network(text.strip(), strict=False)
            if net.version == family:
                cidrs.append(net)
        self.match_all = not cidrs or any(c.prefixlen == 0 for c in cidrs)
        if self.match_all:
            zero = "0.0.0.0/0" if family == 4 else "::/0"
            cidrs = [ipaddress.ip_network(zero)]
        self.cidrs = tuple(cidrs)
        loop = ipaddress.IPv4Address("127.0.0.1")
        self.contains_v4_loopback = any(
            c.version == 4 and (c.network_address.is_loopback or loop in c) for c in self.cidrs
        )

    def node_ips(self, node: Node, family: int) -> list[IPAddress]:
        """``GetNodeIPs``: the node's addresses (loopback first, as on ``lo``) inside a CIDR."""
        loop: IPAddress = (
            ipaddress.IPv4Address("127.0.0.1") if family == 4 else ipaddress.IPv6Address("::1")
        )
        out: list[IPAddress] = []
        for ip in (loop, *node.addresses):
            if ip.version != family or ip in out:
                continue
            if any(ip in c for c in self.cidrs):
                out.append(ip)
        return out


# ----------------------------------------------------------------------------- the builder


class _Tables:
    """Chains of the filter and nat tables in declaration order."""

    def __init__(self) -> None:
        self.filter: dict[str, list[Rule]] = {}
        self.nat: dict[str, list[Rule]] = {}
        # Finished nat chains (KUBE-SEP-*), declared after the ones in ``nat``.
        self.nat_done: dict[str, Chain] = {}
        self.policies: dict[tuple[str, str], str] = {}

    def builtin(self, table: str, name: str) -> list[Rule]:
        self.policies[(table, name)] = "ACCEPT"
        return (self.filter if table == "filter" else self.nat).setdefault(name, [])

    def to_tables(self, family_name: str) -> tuple[Table, ...]:
        out = []
        for tname, chains in (("filter", self.filter), ("nat", self.nat)):
            built = []
            policies = self.policies
            for name, rules in chains.items():
                policy = policies.get((tname, name))
                if policy is None:
                    built.append(Chain(name, tuple(rules)))
                else:
                    built.append(
                        Chain(name=name, rules=tuple(rules), hook=name.lower(), policy=policy)
                    )
            if tname == "nat":
                built.extend(self.nat_done.values())
            out.append(Table(name=tname, family=family_name, chains=tuple(built)))
        return tuple(out)


def _family_ips(ips: Iterable[IPAddress], family: int) -> tuple[IPAddress, ...]:
    return tuple(ip for ip in ips if ip.version == family)


def build_iptables_ruleset(
    cluster: Cluster,
    node: Node,
    cfg: KubeProxyConfig,
    *,
    family: int = 4,
    random_fully: bool = True,
    nfacct: bool = True,
) -> Ruleset:
    """The filter and nat tables kube-proxy (iptables mode, configured by ``cfg``) installs on
    ``node`` for IP ``family`` (4 or 6), plus the built-in chains with kube-proxy's and
    kubelet's jump rules.

    ``random_fully``: whether the node's iptables supports ``MASQUERADE --random-fully``
    (every iptables since 1.6.2; kube-proxy's test fake says no). ``nfacct``: whether
    kube-proxy could create its nfacct counters (``nfAcctCounters``); without them the INVALID
    drop rule has no counter and the localhost NodePort rules are not written (the generic
    ``--dport`` rule still matches 127.0.0.1); releases before 1.31 never write them.
    Services that kube-proxy does not proxy (headless, ExternalName, no clusterIP of the family)
    get no rules; what was skipped and why is listed in ``Ruleset.notes``.
    """
    if family not in (4, 6):
        raise ValueError(f"family must be 4 or 6, not {family!r}")
    # kube-proxy writes nfacct counters from 1.31 (#122812, #125015; releases.py).
    nfacct = nfacct and release(cfg.version).ipt_nfacct_counters
    # Hundreds of thousands of acyclic objects: pausing the cyclic GC during the build avoids
    # repeated full-heap scans (it cost more than the build itself at scale).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _build(cluster, node, cfg, family, random_fully, nfacct)
    finally:
        if was_enabled:
            gc.enable()


def _build(
    cluster: Cluster,
    node: Node,
    cfg: KubeProxyConfig,
    family: int,
    random_fully: bool,
    nfacct: bool,
) -> Ruleset:
    notes: list[str] = []
    mark = cfg.masquerade_mark
    detector = local_detector(cfg, node, family)
    if not detector.implemented:
        notes.append(
            f"local-traffic detector is {detector.describe()}: no ClusterIP masquerade rule "
            "for off-cluster sources and no pod short-circuit for ETP=Local"
        )
    npa = _NodePortAddresses(cfg, node, family)
    localhost_nodeports = cfg.localhost_node_ports and family == 4 and npa.contains_v4_loopback
    if cfg.localhost_node_ports and family == 4 and not localhost_nodeports:
        notes.append("localhost NodePorts disabled: nodePortAddresses does not include 127.0.0.1")
    node_ip = node.primary_ip(family)

    t = _Tables()
    _write_builtin_jumps(t)

    f_services = t.filter.setdefault(KUBE_SERVICES, [])
    f_external = t.filter.setdefault(KUBE_EXTERNAL_SERVICES, [])
    f_forward = t.filter.setdefault(KUBE_FORWARD, [])
    f_nodeports = t.filter.setdefault(KUBE_NODEPORTS, [])
    f_proxy_fw = t.filter.setdefault(KUBE_PROXY_FIREWALL, [])
    # Always present: kube-proxy EnsureChain()s it and INPUT/OUTPUT jump to it.
    f_kubelet_fw = t.filter.setdefault(KUBE_FIREWALL, [])
    n_services = t.nat.setdefault(KUBE_SERVICES, [])
    n_nodeports = t.nat.setdefault(KUBE_NODEPORTS, [])
    n_post = t.nat.setdefault(KUBE_POSTROUTING, [])
    n_masq = t.nat.setdefault(KUBE_MARK_MASQ, [])
    nat = t.nat
    sep_chains = t.nat_done

    n_post.append(Rule((Mark(mark, mark, negate=True),), _A_RETURN))
    n_post.append(Rule((), (MarkSet("xor", mark),)))
    n_post.append(
        Rule((), (Masquerade(random_fully=random_fully),),
             "kubernetes service traffic requiring SNAT")
    )
    n_masq.append(Rule((), (MarkSet("or", mark),)))

    if localhost_nodeports:
        # Anti-martian mitigation for route_localnet=1 (https://issue.k8s.io/90259).
        f_kubelet_fw.append(
            Rule(
                (
                    Addr("dst", (_V4_LOOPBACK,)),
                    Addr("src", (_V4_LOOPBACK,), negate=True),
                    CtState(("RELATED", "ESTABLISHED", "DNAT"), negate=True),
                ),
                _A_DROP,
                "block incoming localnet connections",
            )
        )

    # ---- gather the service ports kube-proxy's ServiceChangeTracker keeps for this family ----
    ports: list[tuple[str, Service, ServicePort, IPAddress]] = []
    skipped_family = 0
    for svc in cluster.services:
        if not svc.proxied:
            continue
        cip = next((ip for ip in svc.cluster_ips if ip.version == family), None)
        if cip is None:
            skipped_family += 1
            continue
        for sp in svc.ports:
            ports.append((service_port_name(svc.namespace, svc.name, sp.name), svc, sp, cip))
    if skipped_family:
        notes.append(
            f"{skipped_family} Service(s) have no IPv{family} clusterIP: skipped for this "
            f"family (the IPv{10 - family} proxier handles them)"
        )
    ports.sort(key=lambda x: x[0])

    endpoints_of: list[tuple[ProxyEndpoint, ...]] = []
    ep_text: dict[int, str] = {}  # id(ProxyEndpoint) -> "ip:port", computed once
    total_endpoints = 0
    for _, svc, sp, _cip in ports:
        eps = service_port_endpoints(cluster, svc, sp, version=family)
        for e in eps:
            ip = e.ip
            if type(ip) is ipaddress.IPv4Address:
                ep_text[id(e)] = f"{inet_ntoa(int(ip).to_bytes(4, 'big'))}:{e.port}"
            else:
                ep_text[id(e)] = endpoint_string(ip_text(ip), e.port)
        if len(eps) > 1:
            # EndpointSliceCache sorts by the endpoint's string (byEndpoint).
            eps = tuple(sorted(eps, key=lambda e: ep_text[id(e)]))
        endpoints_of.append(eps)
        total_endpoints += len(eps)
    large_cluster = total_endpoints > LARGE_CLUSTER_ENDPOINTS_THRESHOLD
    if large_cluster:
        notes.append(
            f"large cluster mode ({total_endpoints} endpoints > "
            f"{LARGE_CLUSTER_ENDPOINTS_THRESHOLD}): endpoint rules carry no comments"
        )

    node_name = node.name
    zone = node.zone
    masquerade_all = cfg.masquerade_all
    if_local = detector.if_local
    if_not_local = detector.if_not_local
    detector_on = detector.implemented

    for (name, svc, sp, cip), all_eps in zip(ports, endpoints_of, strict=True):
        proto = _PROTO[sp.protocol]
        hash16 = port_proto_hash(name, sp.protocol)
        svc_chain = "KUBE-SVC-" + hash16
        svl_chain = "KUBE-SVL-" + hash16
        ext_chain = "KUBE-EXT-" + hash16
        fw_chain = "KUBE-FW-" + hash16
        dport = _dport(sp.port)

        cat = categorize_endpoints(all_eps, svc, node_name, zone)
        cluster_eps, local_eps, reachable, has_endpoints = (
            cat.cluster, cat.local, cat.all_reachable, cat.has_any
        )
        ext_ips = _family_ips(svc.external_ips, family)
        lb_ips = _family_ips(svc.lb_ips, family)
        src_ranges = tuple(n for n in svc.lb_source_ranges if n.version == family)
        node_port = sp.node_port or 0
        ext_accessible = bool(node_port) or bool(lb_ips) or bool(ext_ips)
        uses_cluster = not svc.internal_policy_local or ext_accessible
        uses_local = svc.internal_policy_local or (svc.external_policy_local and ext_accessible)
        uses_cluster_chain = bool(cluster_eps) and uses_cluster
        uses_local_chain = bool(local_eps) and uses_local

        internal_chain = svc_chain
        has_internal = has_endpoints
        if svc.internal_policy_local:
            internal_chain = svl_chain
            if not local_eps:
                has_internal = False
        external_policy_chain = svc_chain
        has_external = has_endpoints
        etp_local = svc.external_policy_local
        if etp_local:
            external_policy_chain = svl_chain
            if not local_eps:
                has_external = False
        uses_ext_chain = has_endpoints and ext_accessible
        lb_chain = ext_chain
        uses_fw = has_endpoints and bool(lb_ips) and bool(src_ranges)
        if uses_fw:
            lb_chain = fw_chain

        int_target: tuple[Action, ...] = ()
        int_comment = ""
        ext_target: tuple[Action, ...] = ()
        ext_comment = ""
        if not has_endpoints:
            int_target = ext_target = _A_REJECT
            int_comment = ext_comment = f"{name} has no endpoints"
        else:
            if not has_internal:
                int_target = _A_DROP
                int_comment = f"{name} has no local endpoints"
            if not has_external:
                ext_target = _A_DROP
                ext_comment = f"{name} has no local endpoints"

        cip_matches: tuple[Match, ...] = (proto, Addr("dst", (cip,)), dport)
        cip_comment = f"{name} cluster IP"
        # Capture the clusterIP.
        if has_internal:
            n_services.append(Rule(cip_matches, _jump(internal_chain), cip_comment))
        else:
            f_services.append(Rule(cip_matches, int_target, int_comment))

        # Capture externalIPs.
        if ext_ips:
            ext_comment_nat = f"{name} external IP"
            for eip in ext_ips:
                m: tuple[Match, ...] = (proto, Addr("dst", (eip,)), dport)
                if has_endpoints:
                    n_services.append(Rule(m, _jump(ext_chain), ext_comment_nat))
                if not has_external:
                    f_external.append(Rule(m, ext_target, ext_comment))

        # Capture load-balancer ingress.
        if lb_ips:
            lb_comment = f"{name} loadbalancer IP"
            for lbip in lb_ips:
                m = (proto, Addr("dst", (lbip,)), dport)
                if has_endpoints:
                    n_services.append(Rule(m, _jump(lb_chain), lb_comment))
                if uses_fw:
                    f_proxy_fw.append(
                        Rule(m, _A_DROP, f"{name} traffic not accepted by {fw_chain}")
                    )
            if not has_external:
                for lbip in lb_ips:
                    m = (proto, Addr("dst", (lbip,)), dport)
                    f_external.append(Rule(m, ext_target, ext_comment))

        # Capture nodeports.
        if node_port:
            np_port = _dport(node_port)
            if has_endpoints:
                # NodePorts are not subject to loadBalancerSourceRanges.
                if localhost_nodeports and nfacct:
                    n_nodeports.append(
                        Rule(
                            (proto, Addr("dst", (_V4_LOOPBACK,)), np_port, _NFACCT_LOCALHOST),
                            _jump(ext_chain),
                            name,
                        )
                    )
                n_nodeports.append(Rule((proto, np_port), _jump(ext_chain), name))
            if not has_external:
                f_external.append(Rule((_DST_LOCAL, proto, np_port), ext_target, ext_comment))

        # Capture healthCheckNodePorts (only LoadBalancer + ETP Local has one).
        if svc.needs_health_check and svc.health_check_node_port:
            f_nodeports.append(
                Rule(
                    (_PROTO["tcp"], _dport(svc.health_check_node_port)),
                    _A_ACCEPT,
                    f"{name} health check node port",
                )
            )

        # Internal traffic: masquerade off-cluster sources to the clusterIP.
        if has_internal:
            target_rules = nat.setdefault(internal_chain, [])
            if masquerade_all:
                target_rules.append(Rule(cip_matches, _A_MARK_MASQ, cip_comment))
            elif detector_on:
                target_rules.append(
                    Rule(cip_matches + if_not_local, _A_MARK_MASQ, cip_comment)
                )

        # External traffic.
        if uses_ext_chain:
            ext_rules = nat.setdefault(ext_chain, [])
            if not etp_local:
                ext_rules.append(
                    Rule((), _A_MARK_MASQ, f"masquerade traffic for {name} external destinations")
                )
            else:
                if detector_on:
                    # Pod -> external destination: simulate going out to the LB and back in.
                    ext_rules.append(
                        Rule(
                            if_local,
                            _jump(svc_chain),
                            f"pod traffic for {name} external destinations",
                        )
                    )
                ext_rules.append(
                    Rule(
                        (_SRC_LOCAL,),
                        _A_MARK_MASQ,
                        f"masquerade LOCAL traffic for {name} external destinations",
                    )
                )
                ext_rules.append(
                    Rule(
                        (_SRC_LOCAL,),
                        _jump(svc_chain),
                        f"route LOCAL traffic for {name} external destinations",
                    )
                )
            if has_external:
                ext_rules.append(Rule((), _jump(external_policy_chain)))

        # Firewall chain (loadBalancerSourceRanges).
        if uses_fw:
            fw_rules = nat.setdefault(fw_chain, [])
            fw_comment = f"{name} loadbalancer IP"
            allow_from_node = False
            ext_jump = _jump(ext_chain)
            for cidr in src_ranges:
                src: IPAddress | IPNetwork = (
                    cidr.network_address if cidr.prefixlen == cidr.max_prefixlen else cidr
                )
                fw_rules.append(Rule((Addr("src", (src,)),), ext_jump, fw_comment))
                if node_ip is not None and node_ip in cidr:
                    allow_from_node = True
            if allow_from_node:
                for lbip in lb_ips:
                    fw_rules.append(Rule((Addr("src", (lbip,)),), ext_jump, fw_comment))
            fw_rules.append(
                Rule((), (), f"other traffic to {name} will be dropped by KUBE-PROXY-FIREWALL")
            )

        if not reachable:
            continue
        # id(endpoint) -> its KUBE-SEP chain (endpoints are shared by the categorized tuples).
        sep_of: dict[int, str] = {}
        sep_jump: dict[int, tuple[Action, ...]] = {}
        prefix = name + sp.protocol
        for ep in reachable:
            sep = sep_of[id(ep)] = sep_chain_name(prefix, ep_text[id(ep)])
            sep_jump[id(ep)] = (Jump(sep),)
        affinity = svc.session_affinity == "ClientIP"
        if uses_cluster_chain:
            _write_service_to_endpoint_rules(
                nat.setdefault(svc_chain, []), name, svc, cluster_eps, sep_of, sep_jump, ep_text,
                large_cluster,
            )
        if uses_local_chain:
            _write_service_to_endpoint_rules(
                nat.setdefault(svl_chain, []), name, svc, local_eps, sep_of, sep_jump, ep_text,
                large_cluster,
            )

        sep_comment = None if large_cluster else name
        dnat_matches: tuple[Match, ...] = (proto,)
        for ep in reachable:
            sep = sep_of[id(ep)]
            if affinity:
                dnat_matches = (Recent(sep, "set"), proto)
            ip = ep.ip
            # Endpoint chains are complete here: stored as Chain values right away.
            sep_chains[sep] = Chain(
                sep,
                (
                    Rule((Addr("src", (ip,)),), _A_MARK_MASQ, sep_comment),
                    Rule(dnat_matches, (Dnat(ip, ep.port),), sep_comment),
                ),
            )

    # Finally, tail-call to the nodePorts chain; this must be the last KUBE-SERVICES rule.
    if npa.match_all:
        dest: tuple[Match, ...] = (_DST_LOCAL,)
        if family == 6:
            dest += (Addr("dst", (_V6_LOOPBACK,), negate=True),)
        elif not localhost_nodeports:
            dest += (Addr("dst", (_V4_LOOPBACK,), negate=True),)
        n_services.append(Rule(dest, (_J_NODEPORTS,), _NODEPORTS_COMMENT))
    else:
        for ip in npa.node_ips(node, family):
            if ip.is_loopback and (family == 6 or not localhost_nodeports):
                notes.append(
                    f"nodePortAddresses includes {ip} but localhost NodePorts are "
                    + ("not supported on IPv6" if family == 6 else "disabled")
                    + ": skipped"
                )
                continue
            n_services.append(Rule((Addr("dst", (ip,)),), (_J_NODEPORTS,), _NODEPORTS_COMMENT))

    # KUBE-FORWARD.
    if not cfg.conntrack_tcp_be_liberal:
        invalid: tuple[Match, ...] = (CtState(("INVALID",)),)
        if nfacct:
            invalid += (Nfacct(CT_INVALID_NFACCT),)
        f_forward.append(Rule(invalid, _A_DROP))
    f_forward.append(Rule((Mark(mark, mark),), _A_ACCEPT, "kubernetes forwarding rules"))
    f_forward.append(
        Rule(
            (CtState(("RELATED", "ESTABLISHED")),),
            _A_ACCEPT,
            "kubernetes forwarding conntrack rule",
        )
    )

    return Ruleset(
        backend="iptables",
        tables=t.to_tables("ip" if family == 4 else "ip6"),
        notes=tuple(notes),
    )


def _write_service_to_endpoint_rules(
    rules: list[Rule],
    name: str,
    svc: Service,
    endpoints: tuple[ProxyEndpoint, ...],
    sep_of: dict[int, str],
    sep_jump: dict[int, tuple[Action, ...]],
    ep_text: dict[int, str],
    large_cluster: bool,
) -> None:
    """``writeServiceToEndpointRules``: affinity checks, then random load balancing (rule i of
    n matches with probability 1/(n-i); the last one always)."""
    if svc.session_affinity == "ClientIP":
        for ep in endpoints:
            sep = sep_of[id(ep)]
            rules.append(
                Rule(
                    (Recent(sep, "rcheck", seconds=svc.affinity_timeout, reap=True),),
                    sep_jump[id(ep)],
                    None if large_cluster else f"{name} -> {ep_text[id(ep)]}",
                )
            )
    n = len(endpoints)
    last = n - 1
    for i, ep in enumerate(endpoints):
        comment = None if large_cluster else f"{name} -> {ep_text[id(ep)]}"
        matches = _statistic(n - i) if i < last else ()
        rules.append(Rule(matches, sep_jump[id(ep)], comment))


_FILTER_JUMPS: tuple[tuple[str, str, str, bool], ...] = (
    # (dst chain, src chain, comment, ctstate NEW) -- iptablesJumpChains, filter part
    (KUBE_EXTERNAL_SERVICES, "INPUT", "kubernetes externally-visible service portals", True),
    (KUBE_EXTERNAL_SERVICES, "FORWARD", "kubernetes externally-visible service portals", True),
    (KUBE_NODEPORTS, "INPUT", "kubernetes health check service ports", False),
    (KUBE_SERVICES, "FORWARD", "kubernetes service portals", True),
    (KUBE_SERVICES, "OUTPUT", "kubernetes service portals", True),
    (KUBE_FORWARD, "FORWARD", "kubernetes forwarding rules", False),
    (KUBE_PROXY_FIREWALL, "INPUT", "kubernetes load balancer firewall", True),
    (KUBE_PROXY_FIREWALL, "OUTPUT", "kubernetes load balancer firewall", True),
    (KUBE_PROXY_FIREWALL, "FORWARD", "kubernetes load balancer firewall", True),
)
_NAT_JUMPS: tuple[tuple[str, str, str], ...] = (
    (KUBE_SERVICES, "OUTPUT", "kubernetes service portals"),
    (KUBE_SERVICES, "PREROUTING", "kubernetes service portals"),
    (KUBE_POSTROUTING, "POSTROUTING", "kubernetes postrouting rules"),
)


def _write_builtin_jumps(t: _Tables) -> None:
    """Built-in chains (policy ACCEPT) holding the jumps kube-proxy ``EnsureRule``s with
    ``Prepend`` (so in reverse list order), after kubelet's KUBE-FIREWALL jumps."""
    for name in ("INPUT", "FORWARD", "OUTPUT"):
        t.builtin("filter", name)
    for name in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"):
        t.builtin("nat", name)
    for dst, src, comment, new in _FILTER_JUMPS:
        matches: tuple[Match, ...] = (_CT_NEW,) if new else ()
        t.filter[src].insert(0, Rule(matches, (Jump(dst),), comment))
    for dst, src, comment in _NAT_JUMPS:
        t.nat[src].insert(0, Rule((), (Jump(dst),), comment))
    # kubelet's copy (iptablesKubeletJumpChains): no comment, no condition; created first.
    for src in ("INPUT", "OUTPUT"):
        t.filter[src].append(Rule((), (Jump(KUBE_FIREWALL),)))

