"""Plan a cluster's dataplane as network namespaces (pure: computes commands, runs nothing).

What a plan builds (``docs/lab.md`` draws it)::

    ext ── router ── bridge "nodes" ── eth0 of node 1 ── cni0 / caliN ── eth0 of each pod
                                   └── eth0 of node 2 ── ...

* one namespace per node (hostNetwork pods live in it), one per pod, an external client
  ``ext`` and a ``router`` joining the nodes' subnet and the outside;
* node addresses: each node's InternalIP with the prefix of the smallest subnet holding them
  all (at least a /24); the router takes a free address there as the nodes' default gateway;
* LoadBalancer IPs, externalIPs and ClusterIPs are routed by the router to a node: the main
  table sends them to the first node, and an external probe that binds a source port in
  ``via_ports[node]`` is sent to that node by a policy rule (``ip rule ... sport A-B``);
* IPv6 (``lab.ipv6``) for nodes with IPv6 InternalIPs: the same topology in that family, built
  beside IPv4 (dual-stack) or alone (IPv6-only), with each family's kube-proxy rules;
* pod attachment per ``NetworkProfile.pod_attach`` (``bridge``: a bridge whose address is the
  first host of the node's pod CIDR, hairpin on every port as kubelet's hairpin-veth mode sets;
  ``routed``: calico-style /32 pods behind proxy-ARP veths), inter-node routes per
  ``inter_node`` (``direct`` or a flannel-style vxlan ``tunnel``), the CNI's egress masquerade
  in its own nft table ``sourceip-cni`` (never mixed with kube-proxy's rules), node sysctls as a
  kubeadm node has them, and kube-proxy's ruleset rendered by ``sourceip.netfilter.render``.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import replace

from sourceip.cluster import Cluster, KubeProxyConfig, Node, Pod, service_port_endpoints
from sourceip.dataplane.topology import host_veth_name, pod_pools, tunnel_device
from sourceip.errors import LabError, LabPreconditionError, ValidationError
from sourceip.lab import ipv6 as v6lab
from sourceip.lab.model import (
    EchoServer,
    LabNamespace,
    LabPlan,
    LabProcess,
    NsSetup,
    ProbeSpec,
    RulesetLoad,
    Sysctl,
    Veth,
)
from sourceip.net.addr import IPAddress

RUNID_RE = re.compile(r"^[0-9a-f]{6}$")
NS_RE = re.compile(r"^sip-([0-9a-f]{6})-")
ROUTER_BRIDGE = "nodes"
EXTERNAL_SUBNETS = ("192.168.100.0/24", "198.18.100.0/24", "172.31.254.0/24")
VIA_PORT_BASE = 20000
VIA_PORT_WIDTH = 100
MAX_NODES = 400  # 20000 + 400 * 100 = 60000, below the ext namespace's ephemeral ports
EXT_EPHEMERAL_PORTS = "61000 64999"
ROUTE_TABLE_BASE = 1000
VXLAN_ID = 1
VXLAN_PORT = 8472  # flannel's
CNI_TABLE = "sourceip-cni"
RUN_ROOT = "/run/sourceip-lab"  # state files; <runid>.d/ holds a run's process files
IPTABLES_RESTORE = {"legacy": "iptables-legacy-restore", "nft": "iptables-nft-restore"}
IP6TABLES_RESTORE = {"legacy": "ip6tables-legacy-restore", "nft": "ip6tables-nft-restore"}

IPv4 = ipaddress.IPv4Address
IPv4Net = ipaddress.IPv4Network


def run_workdir(runid: str) -> str:
    """The directory of a run's process files (configs, pid files, logs)."""
    return f"{RUN_ROOT}/{runid}.d"


def new_runid() -> str:
    """Six random hex characters: the lab's namespaces are named ``sip-<runid>-...``."""
    return secrets.token_hex(3)


def ns_prefix(runid: str) -> str:
    if not RUNID_RE.match(runid):
        raise ValidationError(f"{runid!r} is not six hex characters", field="runid")
    return f"sip-{runid}-"


def _label(text: str, limit: int = 40) -> str:
    """A namespace-name-safe rendering of a Kubernetes name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:limit] or "x"


def _vtep_mac(index: int) -> str:
    return f"02:53:49:{(index >> 16) & 255:02x}:{(index >> 8) & 255:02x}:{index & 255:02x}"


def _v4_pod_cidr(node: Node) -> IPv4Net | None:
    cidr = node.pod_cidr(4)
    return cidr if isinstance(cidr, IPv4Net) else None


def node_subnet(ips: Sequence[IPv4]) -> IPv4Net:
    """The node link's subnet: the /24 holding every node IP, or the smallest common supernet
    when they do not fit in one /24."""
    if not ips:
        raise LabError("the cluster has no node with an IPv4 InternalIP")
    prefix = 24
    while prefix > 0:
        net = ipaddress.ip_network(f"{ips[0]}/{prefix}", strict=False)
        assert isinstance(net, IPv4Net)
        if all(ip in net for ip in ips):
            return net
        prefix -= 1
    raise LabError("node IPs have no common IPv4 supernet")


def _off_bridge(pod: str, node: str, ip: IPv4 | v6lab.IPv6 | None,
                cidr: IPv4Net | v6lab.IPv6Net | None) -> str:
    """Why pod address ``ip`` cannot sit on ``node``'s bridge (outside its podCIDR, or the
    bridge's own address); empty when it can (or when there is no such address)."""
    if ip is None:
        return ""
    if cidr is None or ip not in cidr:
        return (f"pod {pod}: {ip} is outside {node}'s podCIDR ({cidr}): not built on the "
                "bridge")
    if ip == cidr.network_address + 1 or ip == cidr.network_address:
        return f"pod {pod}: {ip} is the bridge's own address: not built"
    return ""


def _free_host(net: IPv4Net, taken: set[IPv4]) -> IPv4:
    for host in net.hosts():
        if host not in taken:
            return host
    raise LabError(f"no free address in the node subnet {net} for the router")


def pod_ports(cluster: Cluster, pod: Pod) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """TCP and UDP ports an echo server in ``pod`` listens on: its container ports plus every
    Service target port whose endpoint is this pod (named ports resolved by the slices)."""
    tcp: set[int] = set()
    udp: set[int] = set()
    for cp in pod.ports:
        if cp.protocol == "tcp":
            tcp.add(cp.container_port)
        elif cp.protocol == "udp":
            udp.add(cp.container_port)
    ips = set(pod.ips)
    for svc in cluster.services:
        for sp in svc.ports:
            if sp.protocol not in ("tcp", "udp"):
                continue
            eps = [*service_port_endpoints(cluster, svc, sp),
                   *service_port_endpoints(cluster, svc, sp, version=6)]
            for ep in eps:
                if ep.ip in ips and (not pod.host_network or ep.node_name in ("", pod.node_name)):
                    (tcp if sp.protocol == "tcp" else udp).add(ep.port)
    return tuple(sorted(tcp)), tuple(sorted(udp))


def _pick_external(cluster: Cluster, node_net: IPv4Net) -> IPv4Net:
    used: list[ipaddress.IPv4Network] = [node_net]
    for n in cluster.nodes:
        c = _v4_pod_cidr(n)
        if c is not None:
            used.append(c)
    used.extend(c for c in cluster.kube_proxy.cluster_cidrs if isinstance(c, IPv4Net))
    used.extend(c for c in cluster.profile.pod_cidrs if isinstance(c, IPv4Net))
    vips: list[IPv4] = []
    for svc in cluster.services:
        vips.extend(ip for ip in svc.cluster_ips + svc.external_ips + svc.all_lb_ips
                    if isinstance(ip, IPv4))
    for text in EXTERNAL_SUBNETS:
        cand = IPv4Net(text)
        if any(cand.overlaps(u) for u in used) or any(ip in cand for ip in vips):
            continue
        return cand
    raise LabError("every candidate external subnet overlaps the cluster's addresses")


def pod_cidrs_of(cluster: Cluster) -> tuple[IPv4Net, ...]:
    """The cluster's IPv4 pod address pools (``topology.pod_pools``: the profile's, else
    kube-proxy's clusterCIDR, else the nodes' pod CIDRs, collapsed)."""
    return tuple(c for c in pod_pools(cluster, 4) if isinstance(c, IPv4Net))


def pod_cidrs6_of(cluster: Cluster) -> tuple[v6lab.IPv6Net, ...]:
    """The cluster's IPv6 pod address pools, chosen as ``pod_cidrs_of`` chooses IPv4 ones."""
    return tuple(c for c in pod_pools(cluster, 6) if isinstance(c, v6lab.IPv6Net))


def egress_masquerade_nft(pools: Sequence[IPv4Net] | Sequence[v6lab.IPv6Net]) -> str:
    """The CNI's egress NAT (flannel ``--ip-masq`` / calico natOutgoing) as its own nft table
    (``ip``, or ``ip6`` for IPv6 pools: flannel's ``--ip6-masq``, calico's natOutgoing on an
    IPv6 pool): pod → pod is left alone, pod → anything else (not multicast) is masqueraded.
    Its chain runs after kube-proxy's (priority srcnat + 10): a connection kube-proxy already
    masqueraded keeps that binding, as flannel's rules skip kube-proxy-marked packets."""
    six = bool(pools) and pools[0].version == 6
    fam, ipx, mcast = ("ip6", "ip6", "ff00::/8") if six else ("ip", "ip", "224.0.0.0/4")
    pool_set = ", ".join(str(p) for p in pools)
    return "\n".join([
        f"add table {fam} {CNI_TABLE} {{ comment \"CNI egress masquerade (sourceip lab)\" ; }}",
        f"add chain {fam} {CNI_TABLE} postrouting "
        "{ type nat hook postrouting priority 110 ; policy accept ; }",
        f"add rule {fam} {CNI_TABLE} postrouting {ipx} saddr {{ {pool_set} }} "
        f"{ipx} daddr {{ {pool_set} }} return comment \"pod to pod: no CNI SNAT\"",
        f"add rule {fam} {CNI_TABLE} postrouting {ipx} saddr {{ {pool_set} }} "
        f"{ipx} daddr != {mcast} masquerade comment \"pod to non-pod: CNI masquerade\"",
        "",
    ])


def proxy_protocol_endpoints(cluster: Cluster) -> set[tuple[str, int]]:
    """``(ip, port)`` of the endpoints behind a load balancer that sends PROXY headers."""
    from sourceip.loadbalancer import plan_load_balancer

    out: set[tuple[str, int]] = set()
    for svc in cluster.services:
        if svc.type != "LoadBalancer" or not svc.all_lb_ips:
            continue
        plan = plan_load_balancer(cluster, svc)
        if plan is None or not plan.proxy_protocol:
            continue
        for sp in svc.ports:
            for version in (4, 6):
                for ep in service_port_endpoints(cluster, svc, sp, version=version):
                    out.add((str(ep.ip), ep.port))
    return out


def kube_proxy_load(cluster: Cluster, node: Node, cfg: KubeProxyConfig,
                    iptables_backend: str, family: int = 4
                    ) -> tuple[RulesetLoad, tuple[str, ...]]:
    """kube-proxy's ruleset for ``node`` and IP ``family`` (its proxier of that family),
    rendered for its tool (``ip6tables-restore`` / the ``ip6`` nft table for IPv6), and the
    nfacct counters it names (kube-proxy creates them before using them). Raises
    ``LabError`` when the builder or renderer for that mode is not part of this build yet."""
    try:
        from sourceip.kubeproxy import build_ruleset
        from sourceip.netfilter import render
        from sourceip.netfilter.ir import Nfacct

        ruleset = build_ruleset(cluster, node, cfg, family=family)
        text = render(ruleset)
    except ModuleNotFoundError as exc:
        raise LabError(
            f"kube-proxy {cfg.mode} rules are not available in this build "
            f"({exc.name} is missing); use --no-rules for the topology alone"
        ) from exc
    counters: list[str] = []
    for table in ruleset.tables:
        for chain in table.chains:
            for rule in chain.rules:
                for m in rule.matches:
                    if isinstance(m, Nfacct) and m.name not in counters:
                        counters.append(m.name)
    if not text.endswith("\n"):
        text += "\n"
    label = "kube-proxy" if family == 4 else "kube-proxy IPv6"
    restore = IPTABLES_RESTORE if family == 4 else IP6TABLES_RESTORE
    if cfg.mode == "nftables":
        load = RulesetLoad(label=label, argv=("nft", "-f", "-"), text=text)
    else:
        load = RulesetLoad(label=label, argv=(restore[iptables_backend],), text=text)
    return load, tuple(counters)


def portmap_load(cluster: Cluster, node: Node, cfg: KubeProxyConfig, iptables_backend: str,
                 family: int = 4) -> tuple[RulesetLoad | None, list[Sysctl]]:
    """The CNI portmap plugin's hostPort rules of IP ``family`` for ``node``
    (``dataplane.portmap``: the same rules the tracer walks), loaded after kube-proxy's as the
    plugin adds them (``iptables-restore`` / ``ip6tables-restore --noflush``, its entries
    appended / inserted; nftables: its own ``ip`` / ``ip6`` table), and, for IPv4, the
    ``route_localnet`` it sets on the interface towards the pods (localhost hostPorts; the
    plugin has no IPv6 localhost rule)."""
    from sourceip.dataplane.portmap import build_portmap_ruleset, render_portmap_load, sandboxes

    pm = build_portmap_ruleset(cluster, node, cfg.mode, family=family)
    if pm is None:
        return None, []
    text = render_portmap_load(pm)
    restore = IPTABLES_RESTORE if family == 4 else IP6TABLES_RESTORE
    argv = (("nft", "-f", "-") if cfg.mode == "nftables"
            else (restore[iptables_backend], "--noflush"))
    label = "cni-portmap" if family == 4 else "cni-portmap IPv6"
    if family == 6:
        return RulesetLoad(label=label, argv=argv, text=text), []
    if cluster.profile.pod_attach == "routed":
        ifaces = [host_veth_name(sb.pod, routed=True) for sb in sandboxes(cluster, node)]
    else:
        ifaces = [cluster.profile.bridge_name]
    return (RulesetLoad(label=label, argv=argv, text=text),
            [Sysctl(path=f"net/ipv4/conf/{i}/route_localnet", value="1") for i in ifaces])


IPVS_PROC = "/proc/net/ip_vs"


def ipvs_lab_refusal(proc: str = IPVS_PROC) -> str:
    """Why the lab does not build kube-proxy's ipvs mode here (``LabPreconditionError``,
    exit 3): this kernel has no IP_VS (``/proc/net/ip_vs`` absent), or — where it has — the
    lab does not load IPVS virtual servers yet. ``--no-rules`` still builds the topology."""
    import os

    if not os.path.exists(proc):
        return (f"kube-proxy ipvs mode needs the kernel's IP Virtual Server (IP_VS): {proc} "
                "is absent on this machine (modprobe ip_vs), so the lab cannot load virtual "
                "servers; traces and explain model ipvs mode without the lab; use --no-rules "
                "for the topology alone")
    return ("kube-proxy ipvs mode is not built by the lab yet (virtual servers are not loaded "
            "with ipvsadm); traces and explain model it; use --no-rules for the topology alone")


def plan_lab(
    cluster: Cluster,
    *,
    runid: str | None = None,
    mode: str | None = None,
    iptables_backend: str = "legacy",
    rules: bool = True,
) -> LabPlan:
    """The lab for ``cluster``: namespaces, veths, per-namespace commands, rule loads and echo
    servers. ``mode`` overrides kube-proxy's mode; ``rules=False`` plans the topology alone.
    Raises ``ValidationError``/``LabError`` for a cluster the lab cannot build (a node without
    an IPv4 InternalIP, an interface name over 15 characters, too many nodes)."""
    runid = runid or new_runid()
    prefix = ns_prefix(runid)
    if iptables_backend not in IPTABLES_RESTORE:
        raise ValidationError(f"{iptables_backend!r} is not legacy or nft", field="--iptables")
    cfg = cluster.kube_proxy
    if mode is not None and mode != cfg.mode:
        cfg = replace(cfg, mode=mode)  # type: ignore[arg-type]
    if cfg.mode == "ipvs" and rules:
        raise LabPreconditionError(ipvs_lab_refusal())
    profile = cluster.profile
    for fname in ("bridge_name", "tunnel_device", "node_interface"):
        value = getattr(profile, fname)
        if not 0 < len(value) <= 15:
            raise ValidationError(f"interface name {value!r} must be 1-15 characters",
                                  field=f"NetworkProfile.{fname}")
    nodes = cluster.nodes
    if len(nodes) > MAX_NODES:
        raise LabError(f"the lab builds at most {MAX_NODES} nodes ({len(nodes)} given)")
    notes: list[str] = []

    node_ip: dict[str, IPv4] = {}
    node_ip6: dict[str, v6lab.IPv6] = {}
    for node in nodes:
        ip, ip6 = node.primary_ip(4), node.primary_ip(6)
        if isinstance(ip, IPv4):
            node_ip[node.name] = ip
        if isinstance(ip6, v6lab.IPv6):
            node_ip6[node.name] = ip6
        if ip is None and ip6 is None:
            raise ValidationError(f"node {node.name!r} has no InternalIP",
                                  field="status.addresses")
    for fam, ips in ((4, node_ip), (6, node_ip6)):
        if ips and len(ips) != len(nodes):
            missing = next(n.name for n in nodes if n.name not in ips)
            raise ValidationError(f"node {missing!r} has no IPv{fam} InternalIP (the lab "
                                  f"builds a family on every node or on none)",
                                  field="status.addresses")
        if len(set(ips.values())) != len(ips):
            raise ValidationError("two nodes share an InternalIP", field="status.addresses")
    has4 = bool(node_ip) or not nodes
    base6 = v6lab.plan_base6(cluster, node_ip6) if node_ip6 else None
    subnet = node_subnet(list(node_ip.values())) if has4 else None
    router_ip = _free_host(subnet, set(node_ip.values())) if subnet is not None else None
    ext_net = _pick_external(cluster, subnet) if subnet is not None else None
    ext_gw = ext_ip = None
    if ext_net is not None:
        ext_gw = IPv4(int(ext_net.network_address) + 1)
        ext_ip = IPv4(int(ext_net.network_address) + 2)

    rtr, ext = f"{prefix}rtr", f"{prefix}ext"
    namespaces: list[LabNamespace] = [
        LabNamespace(name=rtr, role="router"),
        LabNamespace(name=ext, role="external"),
    ]
    veths: list[Veth] = [Veth(ns_a=rtr, name_a="ext0", ns_b=ext, name_b="eth0")]
    clients: list[tuple[str, str]] = [("external", ext)]
    node_ns: dict[str, str] = {}
    for i, node in enumerate(nodes):
        ns = f"{prefix}n{i}-{_label(node.name)}"
        node_ns[node.name] = ns
        namespaces.append(LabNamespace(name=ns, role="node", node=node.name))
        veths.append(Veth(ns_a=rtr, name_a=f"n{i}", ns_b=ns, name_b=profile.node_interface))
        clients.append((f"node/{node.name}", ns))

    # ---- pods
    routed = profile.pod_attach == "routed"
    node_lines: dict[str, list[str]] = {n.name: [] for n in nodes}
    node_lines6: dict[str, list[str]] = {n.name: [] for n in nodes}
    node_ifaces: dict[str, list[str]] = {n.name: [profile.node_interface] for n in nodes}
    node_sysctls: dict[str, list[Sysctl]] = {n.name: [] for n in nodes}
    setups: list[NsSetup] = []
    servers: list[EchoServer] = []
    pods_on: dict[str, int] = {n.name: 0 for n in nodes}
    tunnel = profile.inter_node == "tunnel"
    pod_mtu = 1450 if tunnel else 1500
    host_ports_taken: dict[str, set[tuple[str, int]]] = {n.name: set() for n in nodes}
    pod_ns: dict[str, str] = {}
    for k, pod in enumerate(cluster.pods):
        if pod.node_name not in node_ns:
            notes.append(f"pod {pod.key} is not on a known node: not built")
            continue
        if pod.phase not in ("Running", ""):
            notes.append(f"pod {pod.key} is {pod.phase}: not built")
            continue
        tcp, udp = pod_ports(cluster, pod)
        if pod.host_network:
            ns = node_ns[pod.node_name]
            clients.append((f"pod/{pod.key}", ns))
            taken = host_ports_taken[pod.node_name]
            clash = sorted(({("tcp", p) for p in tcp} | {("udp", p) for p in udp}) & taken)
            if clash:
                notes.append(f"hostNetwork pod {pod.key}: ports {clash} already served on "
                             f"{pod.node_name}: not served twice")
            tcp = tuple(p for p in tcp if ("tcp", p) not in taken)
            udp = tuple(p for p in udp if ("udp", p) not in taken)
            taken.update(("tcp", p) for p in tcp)
            taken.update(("udp", p) for p in udp)
            if tcp or udp:
                servers.append(EchoServer(ns=ns, pod=pod.key, tcp_ports=tcp, udp_ports=udp))
            continue
        ip = next((a for a in pod.ips if isinstance(a, IPv4)), None) if has4 else None
        ip6 = next((a for a in pod.ips if isinstance(a, v6lab.IPv6)), None) if base6 else None
        if ip is None and ip6 is None:
            notes.append(f"pod {pod.key} has no {'IPv4' if has4 else 'IPv6'} address: "
                         "not built")
            continue
        node = cluster.node(pod.node_name)
        cidr = _v4_pod_cidr(node)
        cidr6 = v6lab.v6_pod_cidr(node)
        if not routed:
            bad = _off_bridge(pod.key, pod.node_name, ip, cidr) or _off_bridge(
                pod.key, pod.node_name, ip6, cidr6)
            if bad:
                notes.append(bad)
                continue
        j = pods_on[pod.node_name]
        pods_on[pod.node_name] = j + 1
        ns = f"{prefix}p{k}-{_label(pod.namespace + '.' + pod.name)}"
        namespaces.append(LabNamespace(name=ns, role="pod", node=pod.node_name, pod=pod.key))
        clients.append((f"pod/{pod.key}", ns))
        pod_ns[pod.key] = ns
        host_if = host_veth_name(pod.key, routed=routed)
        veths.append(Veth(ns_a=node_ns[pod.node_name], name_a=host_if, ns_b=ns, name_b="eth0"))
        node_ifaces[pod.node_name].append(host_if)
        lines = ["link set lo up"]
        if pod_mtu != 1500:
            lines.append(f"link set eth0 mtu {pod_mtu}")
        if routed:
            lines += [
                *([f"addr add {ip}/32 dev eth0"] if ip is not None else []),
                "link set eth0 up",
                *(["route add 169.254.1.1 dev eth0 scope link",
                   "route add default via 169.254.1.1 dev eth0 onlink"] if ip is not None
                  else []),
            ]
            node_lines[pod.node_name].append(f"link set {host_if} up")
            if ip is not None:
                node_lines[pod.node_name].append(f"route add {ip}/32 dev {host_if} scope link")
                node_sysctls[pod.node_name] += [
                    Sysctl(path=f"net/ipv4/conf/{host_if}/proxy_arp", value="1"),
                    Sysctl(path=f"net/ipv4/neigh/{host_if}/proxy_delay", value="0"),
                ]
            if ip6 is not None:
                node_lines6[pod.node_name] += v6lab.host_veth_lines6(ip6, host_if)
        else:
            lines += [
                *([f"addr add {ip}/{cidr.prefixlen} dev eth0"] if ip is not None and cidr
                  else []),
                "link set eth0 up",
                *([f"route add default via {cidr.network_address + 1}"]
                  if ip is not None and cidr else []),
            ]
            node_lines[pod.node_name] += [
                f"link set {host_if} master {profile.bridge_name}",
                f"link set {host_if} type bridge_slave hairpin on",
                f"link set {host_if} up",
            ]
        lines6 = v6lab.pod_lines6(ip6, cidr6, routed=routed) if ip6 is not None else []
        setups.append(NsSetup(ns=ns, ip=tuple(lines), ip6=tuple(lines6)))
        if tcp or udp:
            servers.append(EchoServer(ns=ns, pod=pod.key, tcp_ports=tcp, udp_ports=udp))

    # ---- ingress controllers: real nginx / haproxy in their pods; HTTP echo on backends
    from sourceip.lab.ingress import plan_ingress

    workdir = run_workdir(runid)
    ingress = plan_ingress(cluster, pod_ns, workdir)
    notes += ingress.notes
    processes: list[LabProcess] = list(ingress.processes)
    # Backends that may receive a PROXY header (a proxying load balancer sends one) wait for
    # the first bytes like HTTP backends do, so the header is read and reported.
    waiting = set(ingress.http_endpoints) | proxy_protocol_endpoints(cluster)
    if ingress.taken or waiting:
        pod_ips = {p.key: {str(ip) for ip in p.ips} for p in cluster.pods}
        patched = []
        for srv in servers:
            held = ingress.taken.get(srv.pod, set())
            tcp = tuple(p for p in srv.tcp_ports if p not in held)
            http = tuple(p for p in tcp if any((ip, p) in waiting
                                               for ip in pod_ips.get(srv.pod, ())))
            if tcp or srv.udp_ports:
                patched.append(replace(srv, tcp_ports=tcp, http_ports=http))
        servers = patched

    # ---- nodes
    pools = pod_cidrs_of(cluster)
    pools6 = pod_cidrs6_of(cluster)
    localnet = cfg.mode == "iptables" and cfg.localhost_node_ports
    node_setups: list[NsSetup] = []
    for i, node in enumerate(nodes):
        ip = node_ip.get(node.name)
        cidr = _v4_pod_cidr(node) if ip is not None else None
        lines = [
            "link set lo up",
            *([f"addr add {ip}/{subnet.prefixlen} dev {profile.node_interface}"]
              if ip is not None and subnet is not None else []),
            f"link set {profile.node_interface} up",
            *([f"route add default via {router_ip}"] if ip is not None else []),
        ]
        bridge_lines: list[str] = []
        has_bridge = not routed and (cidr is not None or v6lab.v6_pod_cidr(node) is not None)
        if has_bridge:
            lines[1:1] = [
                f"link add {profile.bridge_name} type bridge",
                *([f"addr add {cidr.network_address + 1}/{cidr.prefixlen} dev "
                   f"{profile.bridge_name}"] if cidr is not None else []),
                f"link set {profile.bridge_name} up",
            ]
            node_ifaces[node.name].append(profile.bridge_name)
        if routed and cidr is not None:
            lines.append(f"route add blackhole {cidr}")
        lines += node_lines[node.name]
        lines6 = []
        if base6 is not None:
            tdev6 = tunnel_device(profile.tunnel_device, 6) if tunnel else None
            lines6, fdb6 = v6lab.node_lines6(
                cluster, i, base6, node_interface=profile.node_interface,
                bridge=profile.bridge_name if has_bridge else None, tunnel_device=tdev6,
                vxlan_id=VXLAN_ID, vxlan_port=VXLAN_PORT)
            lines6 += node_lines6[node.name]
            bridge_lines += fdb6
        if tunnel and cidr is not None:
            dev = profile.tunnel_device
            node_ifaces[node.name].append(dev)
            lines += v6lab.vxlan_device_lines(dev, _vtep_mac(i), ip,
                                              node_interface=profile.node_interface,
                                              vxlan_id=VXLAN_ID, vxlan_port=VXLAN_PORT,
                                              address=f"{cidr.network_address}/32")
        for j, other in enumerate(nodes):
            ocidr = _v4_pod_cidr(other)
            if other.name == node.name or ocidr is None or ip is None:
                continue
            if tunnel:
                dev = profile.tunnel_device
                vtep = ocidr.network_address
                lines += [
                    f"route add {ocidr} via {vtep} dev {dev} onlink",
                    f"neigh add {vtep} lladdr {_vtep_mac(j)} dev {dev} nud permanent",
                ]
                bridge_lines.append(
                    f"fdb append {_vtep_mac(j)} dev {dev} dst {node_ip[other.name]} self permanent"
                )
            else:
                lines.append(f"route add {ocidr} via {node_ip[other.name]}")
        sysctls = [
            Sysctl(path="net/ipv4/ip_forward", value="1"),
            # REJECTed probes answer with ICMP errors; the kernel's default rate limit would
            # turn a burst of them into timeouts that look like drops.
            Sysctl(path="net/ipv4/icmp_ratemask", value="0"),
            Sysctl(path="net/ipv4/conf/all/rp_filter", value="0"),
            Sysctl(path="net/ipv4/conf/default/rp_filter", value="0"),
        ]
        sysctls += [Sysctl(path=f"net/ipv4/conf/{d}/rp_filter", value="0")
                    for d in node_ifaces[node.name]]
        if localnet:
            sysctls.append(Sysctl(path="net/ipv4/conf/all/route_localnet", value="1"))
        if not routed:
            sysctls.append(Sysctl(path="net/bridge/bridge-nf-call-iptables", value="1"))
        sysctls += node_sysctls[node.name]
        if base6 is not None:
            sysctls += v6lab.node_sysctls6(bridge=has_bridge)
        loads: list[RulesetLoad] = []
        counters: tuple[str, ...] = ()
        if rules:
            if ip is not None:
                kp_load, counters = kube_proxy_load(cluster, node, cfg, iptables_backend)
                loads.append(kp_load)
            if base6 is not None:
                kp6_load, counters6 = kube_proxy_load(cluster, node, cfg, iptables_backend,
                                                      family=6)
                loads.append(kp6_load)
                counters = tuple(dict.fromkeys((*counters, *counters6)))
            pm_load, pm_sysctls = portmap_load(cluster, node, cfg, iptables_backend)
            if pm_load is not None and ip is not None:
                loads.append(pm_load)
                sysctls += pm_sysctls
            if base6 is not None:
                pm6_load, _ = portmap_load(cluster, node, cfg, iptables_backend, family=6)
                if pm6_load is not None:
                    loads.append(pm6_load)
        if profile.egress_masquerade and pools and ip is not None:
            loads.append(RulesetLoad(label="cni-egress-masquerade", argv=("nft", "-f", "-"),
                                     text=egress_masquerade_nft(pools)))
        if profile.egress_masquerade and pools6 and base6 is not None:
            loads.append(RulesetLoad(label="cni-egress-masquerade IPv6",
                                     argv=("nft", "-f", "-"),
                                     text=egress_masquerade_nft(pools6)))
        node_setups.append(NsSetup(ns=node_ns[node.name], ip=tuple(lines), ip6=tuple(lines6),
                                   bridge=tuple(bridge_lines), sysctls=tuple(sysctls),
                                   nfacct=counters, loads=tuple(loads)))

    # ---- router and external client
    vips: list[IPv4] = []
    for svc in cluster.services:
        for vip in svc.all_lb_ips + svc.external_ips + svc.cluster_ips:
            if isinstance(vip, IPv4) and vip not in vips and vip not in node_ip.values():
                vips.append(vip)
    rlines = [
        "link set lo up",
        f"link add {ROUTER_BRIDGE} type bridge",
        *([f"addr add {router_ip}/{subnet.prefixlen} dev {ROUTER_BRIDGE}"]
          if subnet is not None else []),
        f"link set {ROUTER_BRIDGE} up",
    ]
    for i, _node in enumerate(nodes):
        rlines += [f"link set n{i} master {ROUTER_BRIDGE}", f"link set n{i} up"]
    rlines += [*([f"addr add {ext_gw}/{ext_net.prefixlen} dev ext0"] if ext_net else []),
               "link set ext0 up"]
    via_ports: list[tuple[str, tuple[int, int]]] = [
        (node.name, (VIA_PORT_BASE + i * VIA_PORT_WIDTH,
                     VIA_PORT_BASE + (i + 1) * VIA_PORT_WIDTH - 1))
        for i, node in enumerate(nodes)]
    if nodes and ext_ip is not None:
        first = node_ip[nodes[0].name]
        rlines += [f"route add {vip}/32 via {first}" for vip in vips]
        for i, node in enumerate(nodes):
            table = ROUTE_TABLE_BASE + i
            lo, hi = via_ports[i][1]
            rlines += [f"route add {vip}/32 via {node_ip[node.name]} table {table}"
                       for vip in vips]
            rlines.append(f"rule add from {ext_ip} sport {lo}-{hi} lookup {table} pref {table}")
    # ---- load balancers (the router plays them; health servers in the nodes)
    from sourceip.lab.lb import plan_load_balancers

    lbs = plan_load_balancers(cluster, node_ns=node_ns,
                              node_ip={n: str(ip) for n, ip in node_ip.items()},
                              subnet_prefix=subnet.prefixlen if subnet else 24,
                              workdir=workdir,
                              node_ip6={n: str(ip) for n, ip in node_ip6.items()},
                              subnet_prefix6=base6.subnet.prefixlen if base6 else 64)
    rlines += lbs.router_ip
    processes += lbs.processes
    notes += lbs.notes
    rsys = (
        Sysctl(path="net/ipv4/ip_forward", value="1"),
        Sysctl(path="net/ipv4/conf/all/rp_filter", value="0"),
        Sysctl(path="net/ipv4/conf/default/rp_filter", value="0"),
        Sysctl(path="net/bridge/bridge-nf-call-iptables", value="0", optional=True),
        *lbs.router_sysctls,
    )
    rlines6: list[str] = []
    ext_lines6: list[str] = []
    if base6 is not None:
        vips6 = list(dict.fromkeys(
            vip for svc in cluster.services
            for vip in (*svc.all_lb_ips, *svc.external_ips, *svc.cluster_ips)
            if isinstance(vip, v6lab.IPv6) and vip not in node_ip6.values()))
        rlines6 = v6lab.router_lines6(base6, vips6, [n.name for n in nodes],
                                      bridge=ROUTER_BRIDGE, table_base=ROUTE_TABLE_BASE,
                                      via_ports=via_ports) + lbs.router_ip6
        ext_lines6 = v6lab.external_lines6(base6)
        rsys += (Sysctl(path="net/ipv6/conf/all/forwarding", value="1"),)
    ext_setup = NsSetup(
        ns=ext,
        ip=("link set lo up",
            *([f"addr add {ext_ip}/{ext_net.prefixlen} dev eth0"] if ext_net else []),
            "link set eth0 up", *([f"route add default via {ext_gw}"] if ext_gw else [])),
        ip6=tuple(ext_lines6),
        sysctls=(Sysctl(path="net/ipv4/ip_local_port_range", value=EXT_EPHEMERAL_PORTS),),
    )
    all_setups = [NsSetup(ns=rtr, ip=tuple(rlines), ip6=tuple(rlines6), sysctls=rsys),
                  ext_setup, *node_setups, *setups]
    if not rules:
        notes.append("kube-proxy rules are not loaded (topology only)")
    return LabPlan(
        runid=runid,
        prefix=prefix,
        mode=cfg.mode,
        iptables_backend=iptables_backend,
        namespaces=tuple(namespaces),
        veths=tuple(veths),
        setups=tuple(all_setups),
        servers=tuple(servers),
        clients=tuple(clients),
        via_ports=tuple(via_ports),
        external_ip=str(ext_ip if ext_ip is not None else base6.ext_ip if base6 else ""),
        router_ip=str(router_ip if router_ip is not None else
                      base6.router_ip if base6 else ""),
        node_subnet=str(subnet if subnet is not None else base6.subnet if base6 else ""),
        rules_loaded=rules,
        notes=tuple(notes),
        external_ip6=str(base6.ext_ip) if base6 is not None else "",
        families=(*((4,) if has4 else ()), *((6,) if base6 is not None else ())),
        node_ips=tuple((n, str(ip)) for n, ip in (node_ip or node_ip6).items()),
        processes=tuple(processes),
        workdir=workdir,
        not_run=tuple(ingress.not_run),
        load_balancers=tuple(lbs.load_balancers),
    )


# ----------------------------------------------------------------------------- dry run


def _heredoc(text: str, tag: str = "SIP_EOF") -> tuple[str, str]:
    while tag in text.splitlines():
        tag += "_"
    body = text if text.endswith("\n") else text + "\n"
    return f"<<'{tag}'", body + tag


def sysctl_line(s: Sysctl) -> str:
    """The shell line that writes one sysctl (inside a single-quoted ``sh -c`` script)."""
    path = f"/proc/sys/{s.path}"
    write = f'echo "{s.value}" > {path}'
    return f"if [ -e {path} ]; then {write}; fi" if s.optional else write


def render_script(plan: LabPlan, *, python: str = "python3") -> str:
    """The plan as a shell script that builds the lab, starts the echo servers, waits for
    Enter, and tears everything down on exit (a trap), one command per line."""
    q = shlex.quote
    out: list[str] = [
        "#!/bin/bash",
        f"# sourceip lab, run {plan.runid}: kube-proxy mode {plan.mode}"
        + (f" (iptables back end {plan.iptables_backend})" if plan.mode == "iptables" else ""),
        "# Generated by `sourceip lab plan --dry-run`. Everything lives in network namespaces",
        f"# named {plan.prefix}*; the root namespace is never touched.",
        *(f"# note: {n}" for n in plan.notes),
        "set -e",
        f"NAMESPACES={q(' '.join(plan.namespace_names))}",
        'PIDS=""',
        "teardown() {",
        "  trap - EXIT INT TERM",
        "  set +e",
        '  for pid in $PIDS; do kill "$pid" 2>/dev/null; done',
        "  wait 2>/dev/null",
        '  for ns in $NAMESPACES; do ip netns del "$ns" 2>/dev/null; done',
        *([f"  rm -rf {q(plan.workdir)}"] if plan.processes or plan.load_balancers else []),
        f'  echo "lab {plan.runid} torn down"',
        "}",
        "trap teardown EXIT",
        "trap 'exit 130' INT TERM",
        "",
        "# namespaces",
        *(f"ip netns add {q(n)}" for n in plan.namespace_names),
        "",
        "# veth pairs, created straight into their namespaces",
        *(f"ip {v.command()}" for v in plan.veths),
    ]
    for setup in plan.setups:
        ns = q(setup.ns)
        out += ["", f"# {setup.ns}"]
        out += [f"ip -n {ns} {line}" for line in setup.ip]
        out += [f"ip -6 -n {ns} {line}" for line in setup.ip6]
        out += [f"bridge -n {ns} {line}" for line in setup.bridge]
        if setup.sysctls:
            out.append(f"ip netns exec {ns} sh -ec '")
            out += [sysctl_line(s) for s in setup.sysctls]
            out.append("'")
        if setup.nfacct:
            out.append(f"ip netns exec {ns} {q(python)} -m sourceip.lab.nfacct "
                       + " ".join(q(n) for n in setup.nfacct))
        for load in setup.loads:
            start, body = _heredoc(load.text)
            out += [f"# {load.label} rules",
                    f"ip netns exec {ns} {' '.join(q(a) for a in load.argv)} {start}", body]
    if plan.servers:
        out += ["", "# echo servers (one per pod, every port it serves)"]
        for srv in plan.servers:
            argv = " ".join(q(a) for a in srv.argv(python, plan.runid, "$$")).replace(
                q("$$"), "$$")
            out.append(f'ip netns exec {q(srv.ns)} {argv} & PIDS="$PIDS $!"')
    if plan.processes:
        out += ["", "# processes: real ingress controllers, the load balancer, health servers",
                f"mkdir -p {q(plan.workdir)}"]
        for proc in plan.processes:
            out += [f"# {proc.role}: {proc.name} in {proc.ns}", f"mkdir -p {q(proc.workdir)}"]
            for path, text in proc.files:
                start, body = _heredoc(text)
                out += [f"cat > {q(path)} {start}", body]
            argv = " ".join(q(a) for a in proc.command(python, "$$")).replace(q("$$"), "$$")
            out.append(f'ip netns exec {q(proc.ns)} {argv} & PIDS="$PIDS $!"')
        out.append("sleep 1  # let them bind their ports")
    if plan.load_balancers:
        from sourceip.lab.lb import check_request, pool_config

        rtr = next(n.name for n in plan.namespaces if n.role == "router")
        start, body = _heredoc(json.dumps(check_request(plan.load_balancers), indent=1))
        out += ["", "# load balancers: health-check every node from the router",
                f"ip netns exec {q(rtr)} {q(python)} -m sourceip.lab.lbcheck {start}", body,
                "# the pools as predicted (a real run uses the statuses it observed)"]
        for lb in plan.load_balancers:
            for c in lb.checks:
                out.append(f"#   {lb.service} {c.node}: {c.kind} {c.port or ''}{c.path} "
                           f"predicted {c.predicted}"
                           + (", in the pool" if c in lb.pool() else ""))
        ip_lines, nft, haproxy = pool_config(plan.load_balancers, None,
                                             workdir=plan.workdir, router_ns=rtr)
        out += [f"ip -n {q(rtr)} {line}" for line in ip_lines]
        if nft:
            start, body = _heredoc(nft)
            out += [f"ip netns exec {q(rtr)} nft -f - {start}", body]
        if haproxy is not None:
            out.append(f"mkdir -p {q(haproxy.workdir)}")
            for path, text in haproxy.files:
                start, body = _heredoc(text)
                out += [f"cat > {q(path)} {start}", body]
            argv = " ".join(q(a) for a in haproxy.command(python, "$$"))
            out.append(f'ip netns exec {q(rtr)} {argv} & PIDS="$PIDS $!"')
    out += [
        "",
        f'echo "lab {plan.runid} is up ({len(plan.namespaces)} namespaces); '
        'press Enter to tear it down"',
        "read -r _ || true",
        "",
    ]
    return "\n".join(out)


# ----------------------------------------------------------------------------- probes


def _ip_of(pod: Pod, family: int) -> IPAddress | None:
    """``pod``'s first address of ``family``."""
    return next((a for a in pod.ips if a.version == family), None)


def default_probe_specs(cluster: Cluster, plan: LabPlan | None = None) -> list[ProbeSpec]:
    """The paths worth probing for every proxied Service port (tcp/udp), as the explain engine
    lists them, in each IP family the Service has (IPv6 ids end in ``/ipv6``): a pod on each
    node → ClusterIP, each endpoint pod → its own ClusterIP (hairpin), each node →
    ClusterIP, external → each node's NodePort, external → each LoadBalancer IP and
    externalIP via each node. Used when no predictions are available."""
    clients = dict(plan.clients) if plan is not None else None
    specs: list[ProbeSpec] = []
    seen: set[str] = set()

    def add(spec_id: str, **kw: object) -> None:
        if spec_id in seen:
            return
        if clients is not None and str(kw["client"]) not in clients:
            return
        seen.add(spec_id)
        specs.append(ProbeSpec(id=spec_id, **kw))  # type: ignore[arg-type]

    for svc in cluster.services:
        if not svc.proxied:
            continue
        for sp, fam in ((sp, fam) for sp in svc.ports for fam in (4, 6)):
            if sp.protocol not in ("tcp", "udp"):
                continue
            # kube-proxy's proxier of each family: that family's endpoints and addresses
            eps = service_port_endpoints(cluster, svc, sp, version=fam)
            ep_ips = {ep.ip for ep in eps}
            name = f"{svc.key}:{sp.name or sp.port}/{sp.protocol}{'/ipv6' if fam == 6 else ''}"
            cips = [ip for ip in svc.cluster_ips if ip.version == fam]
            if not cips:
                continue  # not a family of the Service: that proxier has no rule for it
            for cip in cips[:1]:
                for node in cluster.nodes:
                    client = next((p for p in cluster.pods_by_node.get(node.name, ())
                                   if not p.host_network and _ip_of(p, fam) is not None
                                   and _ip_of(p, fam) not in ep_ips), None)
                    if client is not None:
                        add(f"{name} pod/{client.key} -> ClusterIP",
                            client=f"pod/{client.key}", proto=sp.protocol, dst_ip=str(cip),
                            dst_port=sp.port,
                            description=f"pod on {node.name} to the ClusterIP")
                for p in cluster.pods:
                    if not p.host_network and _ip_of(p, fam) in ep_ips:
                        add(f"{name} pod/{p.key} -> ClusterIP (hairpin)",
                            client=f"pod/{p.key}", proto=sp.protocol, dst_ip=str(cip),
                            dst_port=sp.port,
                            description="an endpoint to its own Service (hairpin)")
                for node in cluster.nodes:
                    add(f"{name} node/{node.name} -> ClusterIP",
                        client=f"node/{node.name}", proto=sp.protocol, dst_ip=str(cip),
                        dst_port=sp.port, description=f"a process on {node.name}")
            if sp.node_port:
                for node in cluster.nodes:
                    nip = node.primary_ip(fam)
                    if nip is None:
                        continue
                    add(f"{name} external -> {node.name}:NodePort",
                        client="external", proto=sp.protocol, dst_ip=str(nip),
                        dst_port=sp.node_port, via_node=node.name,
                        description=f"external client to {node.name}'s NodePort")
            for kind, vips in (("LoadBalancer", svc.all_lb_ips), ("externalIP", svc.external_ips)):
                for vip in vips:
                    if vip.version != fam:
                        continue
                    for node in cluster.nodes:
                        add(f"{name} external -> {kind} {vip} via {node.name}",
                            client="external", proto=sp.protocol, dst_ip=str(vip),
                            dst_port=sp.port, via_node=node.name,
                            description=f"external client to the {kind} through {node.name}")
    return specs


def namespaces_of_run(names: Iterable[str], runid: str) -> list[str]:
    """The names among ``names`` that belong to run ``runid``."""
    prefix = ns_prefix(runid)
    return [n for n in names if n.startswith(prefix)]
