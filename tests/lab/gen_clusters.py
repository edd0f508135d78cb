"""Random clusters for the lab's agreement test: one seed, one cluster, always the same.

``generate(seed)`` draws a whole scenario from ``random.Random(seed)`` (nothing else is random:
the lab's run id is not part of the scenario), so a failing seed replays exactly.

What a scenario varies:

* 2-6 nodes, InternalIPs 10.0.0.11.., pod CIDRs 10.244.N.0/24; one or two client pods per node;
* the network profile: ``bridge`` (bridge ``cni0`` or ``cbr0``) or ``routed`` (calico-style
  ``caliN`` veths), ``direct`` or ``tunnel`` between nodes, CNI egress masquerade on or off;
* kube-proxy: iptables (legacy or nft back end) or nftables; ``masqueradeAll``; the local-traffic
  detector — clusterCIDR covering every pod, covering some nodes' pods only, covering none,
  no clusterCIDR at all (no-op detector), ``NodeCIDR``, ``BridgeInterface`` (bridge profile:
  the lab's bridge name) and ``InterfaceNamePrefix`` (routed profile: ``cali``, the prefix the
  lab gives the host side of pod veths; a bridge profile's pods enter through the bridge, so a
  ``veth`` prefix would not describe the lab and is not generated);
* 1-3 Services: ClusterIP (sometimes with externalIPs), NodePort, LoadBalancer (an ingress IP
  172.18.255.x, sometimes ``loadBalancerSourceRanges`` that include or exclude the lab's
  external client), both externalTrafficPolicy values, internalTrafficPolicy Local sometimes,
  sessionAffinity ClientIP sometimes, a TCP port and sometimes a UDP one;
* endpoints spread over nodes (0, 1 or 2 per node), each ready, serving+terminating,
  terminating and not serving, or not ready; some Services with no endpoint at all (with an
  empty EndpointSlice or none);
* the IP families (issue #12), drawn from a random generator of their own so that the draws
  above stay those of the seed: IPv4 only, dual-stack or IPv6-only. Every IPv4 address has an
  IPv6 twin (``v6_twin``: 10.0.0.11 -> fd00:10::11, 10.244.2.0/24 -> fd00:10:244:2::/64,
  10.96.0.10 -> fd00:10:96::10, the detectors' CIDRs alike, 10.244.0.0/23 -> fd00:10:244::/63
  holding node1's pods as the /23 does); dual-stack Services list IPv4 or IPv6 first, their
  endpoints are in one EndpointSlice per family; a LoadBalancer Service's ingress IP has an
  IPv6 twin (172.18.255.10 -> 2001:db8:172:18:255::10: one load balancer per family in a
  dual-stack scenario) and its source range too (``_v6_source_range``: the one holding the
  external client holds the IPv6 client, the other holds nothing of the lab).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)

from sourceip.cluster import (
    Cluster,
    ContainerPort,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    KubeProxyConfig,
    LoadBalancerIngress,
    NetworkProfile,
    Node,
    Pod,
    Service,
    ServicePort,
)

# The lab's external client when nothing in the cluster overlaps 192.168.100.0/24 (lab/plan.py
# EXTERNAL_SUBNETS[0]); the generator keeps every address out of that subnet so that a source
# range does or does not contain the client deterministically.
EXTERNAL_CLIENT = IPv4Address("192.168.100.2")
EXTERNAL_CLIENT6 = IPv6Address("2001:db8:ffff::10")  # lab/ipv6.py EXTERNAL_SUBNETS6[0] ::10
FAMILIES = {"4": 0.5, "dual": 0.3, "6": 0.2}
POD_POOL = IPv4Network("10.244.0.0/16")

DETECTORS = ("cidr-all", "cidr-some", "cidr-none", "no-cidr", "NodeCIDR", "BridgeInterface",
             "InterfaceNamePrefix")
# Every detector is generated; InterfaceNamePrefix uses ``cali``, the prefix of the host veths
# both the tracer and the lab give routed pods (dataplane.topology.host_veth_name).
DEFAULT_DETECTORS = DETECTORS
ENDPOINT_STATES = ("ready", "serving-terminating", "terminating", "not-ready")
_STATE_SHORT = {"ready": "R", "serving-terminating": "T", "terminating": "t", "not-ready": "N"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A generated cluster and how to load it: ``mode`` / ``backend`` go to ``plan_lab``."""

    seed: int
    cluster: Cluster
    mode: str  # iptables | nftables
    backend: str  # legacy | nft (iptables back end)
    summary: str  # one paragraph saying what was drawn
    family: str = "4"  # 4 | dual | 6


def _weighted(rng: random.Random, choices: dict[str, float]) -> str:
    return rng.choices(list(choices), weights=list(choices.values()))[0]


def _kube_proxy(rng: random.Random, mode: str, pod_attach: str, bridge: str,
                detectors: tuple[str, ...]) -> tuple[KubeProxyConfig, str]:
    # BridgeInterface only means something with a bridge, InterfaceNamePrefix with routed veths
    unfit = "InterfaceNamePrefix" if pod_attach == "bridge" else "BridgeInterface"
    options = [d for d in DETECTORS if d in detectors and d != unfit]
    if not options:
        raise ValueError(f"no detector of {detectors} fits the {pod_attach} profile")
    detector = rng.choice(options)
    masq_all = rng.random() < 0.2
    kw: dict[str, object] = {"mode": mode, "masquerade_all": masq_all}
    if detector == "cidr-all":
        kw["cluster_cidrs"] = (POD_POOL,)
        if rng.random() < 0.5:
            kw["detect_local_mode"] = "ClusterCIDR"
        text = f"clusterCIDR {POD_POOL}"
    elif detector == "cidr-some":
        # 10.244.0.0/23 holds node1's pods (10.244.1.0/24); /22 node1-3's
        cidr = ip_network(rng.choice(["10.244.0.0/23", "10.244.0.0/22"]))
        kw["cluster_cidrs"] = (cidr,)
        text = f"clusterCIDR {cidr} (some pods outside)"
    elif detector == "cidr-none":
        cidr = ip_network("10.245.0.0/16")
        kw["cluster_cidrs"] = (cidr,)
        text = f"clusterCIDR {cidr} (every pod outside)"
    elif detector == "no-cidr":
        text = "no clusterCIDR (no-op detector)"
    elif detector == "NodeCIDR":
        kw["detect_local_mode"] = "NodeCIDR"
        if rng.random() < 0.5:
            kw["cluster_cidrs"] = (POD_POOL,)
        text = "detectLocalMode NodeCIDR"
    elif detector == "BridgeInterface":
        kw["detect_local_mode"] = "BridgeInterface"
        kw["bridge_interface"] = bridge
        text = f"detectLocalMode BridgeInterface {bridge}"
    else:
        kw["detect_local_mode"] = "InterfaceNamePrefix"
        kw["interface_name_prefix"] = "cali"
        text = "detectLocalMode InterfaceNamePrefix cali"
    if masq_all:
        text += ", masqueradeAll"
    return KubeProxyConfig(**kw), text  # type: ignore[arg-type]


def v6_twin(addr: IPv4Address) -> IPv6Address:
    """The IPv6 address standing for ``addr``: its last three octets as the last groups
    (decimal digits read as hex, so 10.244.2.11 -> fd00:10:244:2::11)."""
    a, b, c, d = str(addr).split(".")
    if (a, b) == ("10", "0"):
        return IPv6Address(f"fd00:10::{d}")
    if (a, b) == ("10", "96"):
        return IPv6Address(f"fd00:10:96::{d}")
    if (a, b) in (("10", "244"), ("10", "245")):
        return IPv6Address(f"fd00:10:{b}:{c}::{d}")
    return IPv6Address(f"2001:db8:{a}:{b}:{c}::{d}")  # externalIPs


def v6_net_twin(net: IPv4Network) -> IPv6Network:
    """The IPv6 prefix standing for ``net``: a /24 of 10.244 is a /64, a /16 a /56, and
    shorter prefixes keep the same number of node /64s (/23 -> /63, /22 -> /62)."""
    plen = 56 if net.prefixlen <= 16 else 64 - (24 - net.prefixlen)
    return IPv6Network(f"{v6_twin(net.network_address)}/{plen}", strict=False)


def _v6_source_range(net: IPv4Network) -> IPv6Network:
    """The IPv6 loadBalancerSourceRange standing for ``net``: the lab's external client's
    /64 for the range that holds the IPv4 client (192.168.100.0/24), a documentation /64
    that holds nothing of the lab for the one that excludes it."""
    if net == IPv4Network("192.168.100.0/24"):
        return IPv6Network("2001:db8:ffff::/64")
    return IPv6Network("2001:db8:113::/64")


def _with_family(cluster: Cluster, family: str, rng: random.Random) -> tuple[Cluster, str]:
    """``cluster`` (drawn in IPv4) made dual-stack or IPv6-only, and what changed."""
    if family == "4":
        return cluster, ""
    dual = family == "dual"
    notes: list[str] = []

    def ips(addrs: tuple[object, ...]) -> tuple[object, ...]:
        v6 = tuple(v6_twin(a) for a in addrs if isinstance(a, IPv4Address))
        return (*addrs, *v6) if dual else v6

    def nets(items: tuple[object, ...]) -> tuple[object, ...]:
        v6 = tuple(v6_net_twin(n) for n in items if isinstance(n, IPv4Network))
        return (*items, *v6) if dual else v6

    nodes = tuple(replace(n, internal_ips=ips(n.internal_ips),  # type: ignore[arg-type]
                          pod_cidrs=nets(n.pod_cidrs)) for n in cluster.nodes)
    pods = tuple(replace(p, ips=ips(p.ips)) for p in cluster.pods)  # type: ignore[arg-type]
    services = []
    for svc in cluster.services:
        six_first = dual and rng.random() < 0.5
        cips = ips(svc.cluster_ips)
        if six_first:
            cips = cips[::-1]
        kw: dict[str, object] = {
            "cluster_ips": cips,
            "ip_families": tuple("IPv4" if isinstance(c, IPv4Address) else "IPv6"
                                 for c in cips),
            "external_ips": ips(svc.external_ips)}
        if svc.type == "LoadBalancer":
            v6_ips = tuple(replace(i, ip=v6_twin(i.ip)) for i in svc.lb_ingress
                           if isinstance(i.ip, IPv4Address))
            v6_ranges = tuple(_v6_source_range(r) for r in svc.lb_source_ranges
                              if isinstance(r, IPv4Network))
            kw.update(lb_ingress=(*svc.lb_ingress, *v6_ips) if dual else v6_ips,
                      lb_source_ranges=((*svc.lb_source_ranges, *v6_ranges) if dual
                                        else v6_ranges))
        if six_first:
            notes.append(f"{svc.name} IPv6 first")
        services.append(replace(svc, **kw))  # type: ignore[arg-type]
    slices = []
    for es in cluster.endpoint_slices:
        v6 = replace(es, name=es.name + ("-v6" if dual else ""), address_type="IPv6",
                     endpoints=tuple(replace(ep, addresses=(v6_twin(ep.addresses[0]),))  # type: ignore[arg-type]
                                     for ep in es.endpoints))
        slices += [es, v6] if dual else [v6]
    kp = replace(cluster.kube_proxy,
                 cluster_cidrs=nets(cluster.kube_proxy.cluster_cidrs))  # type: ignore[arg-type]
    profile = replace(cluster.profile, pod_cidrs=nets(cluster.profile.pod_cidrs))  # type: ignore[arg-type]
    out = Cluster(nodes=nodes, pods=pods, services=tuple(services),
                  endpoint_slices=tuple(slices), kube_proxy=kp, profile=profile)
    text = "dual-stack" if dual else "IPv6-only"
    return out, text + (f" ({', '.join(notes)})" if notes else "")


def generate(seed: int, *, detectors: tuple[str, ...] = DEFAULT_DETECTORS,
             pod_attach: str | None = None, family: str | None = None) -> Scenario:
    """The scenario of ``seed`` (deterministic for the same arguments). ``detectors`` are the
    local-traffic detectors to draw from (``DETECTORS`` names them); ``pod_attach`` forces
    the profile's pod attachment (it is drawn anyway, so the other draws stay the same);
    ``family`` (``4``, ``dual``, ``6``) forces the IP families (drawn otherwise)."""
    rng = random.Random(seed)
    n_nodes = rng.randint(2, 6)
    drawn_attach = rng.choice(["bridge", "routed"])
    pod_attach = pod_attach or drawn_attach
    inter_node = rng.choice(["direct", "tunnel"])
    egress = rng.random() < 0.25
    bridge = rng.choice(["cni0", "cbr0"])
    mode = _weighted(rng, {"iptables": 0.55, "nftables": 0.45})
    backend = rng.choice(["legacy", "nft"]) if mode == "iptables" else "legacy"
    kp, kp_text = _kube_proxy(rng, mode, pod_attach, bridge, detectors)
    profile = NetworkProfile(pod_attach=pod_attach,  # type: ignore[arg-type]
                             bridge_name=bridge,
                             inter_node=inter_node,  # type: ignore[arg-type]
                             egress_masquerade=egress, pod_cidrs=(POD_POOL,))

    nodes: list[Node] = []
    next_host: dict[str, int] = {}
    for i in range(n_nodes):
        name = f"node{i + 1}"
        nodes.append(Node(name=name, internal_ips=(ip_address(f"10.0.0.{11 + i}"),),
                          pod_cidrs=(ip_network(f"10.244.{i + 1}.0/24"),)))
        next_host[name] = 10

    def pod_ip(node: str) -> IPv4Address:
        n = int(node.removeprefix("node"))
        host = next_host[node]
        next_host[node] = host + 1
        return IPv4Address(f"10.244.{n}.{host}")

    pods: list[Pod] = []
    for node in nodes:
        for j in range(rng.choice([1, 1, 2])):
            pods.append(Pod(namespace="default", name=f"client-{node.name}-{j}",
                            node_name=node.name, ips=(pod_ip(node.name),),
                            labels={"role": "client"}))

    services: list[Service] = []
    slices: list[EndpointSlice] = []
    svc_texts: list[str] = []
    n_svcs = rng.randint(1, 3)
    for k in range(n_svcs):
        name = f"svc{k}"
        stype = _weighted(rng, {"ClusterIP": 0.3, "NodePort": 0.3, "LoadBalancer": 0.4})
        etp = rng.choice(["Cluster", "Local"])
        itp = "Local" if rng.random() < 0.2 else "Cluster"
        with_udp = rng.random() < 0.3
        target = 8080 + k
        ports = [ServicePort(name="http" if with_udp else "", port=80, target_port=target,
                             node_port=30080 + 10 * k if stype != "ClusterIP" else None)]
        if with_udp:
            ports.append(ServicePort(name="dns", port=53, protocol="udp", target_port=5353 + k,
                                     node_port=30081 + 10 * k if stype != "ClusterIP" else None))
        extra: list[str] = []
        kw: dict[str, object] = {}
        if stype == "LoadBalancer":
            lb_ip = ip_address(f"172.18.255.{10 + k}")
            kw["lb_ingress"] = (LoadBalancerIngress(ip=lb_ip),)
            extra.append(f"LB {lb_ip}")
            if etp == "Local":
                kw["health_check_node_port"] = 32000 + k
            if rng.random() < 0.25:
                inside = rng.random() < 0.5
                ranges = ((ip_network("192.168.100.0/24"),) if inside
                          else (ip_network("203.0.113.0/24"),))
                kw["lb_source_ranges"] = ranges
                extra.append(f"sourceRanges {ranges[0]} (client {'in' if inside else 'out'})")
        if stype == "ClusterIP" and rng.random() < 0.3:
            eip = ip_address(f"198.51.100.{10 + k}")
            kw["external_ips"] = (eip,)
            extra.append(f"externalIP {eip}")
        if rng.random() < 0.1:
            kw["session_affinity"] = "ClientIP"
            extra.append("affinity ClientIP")
        svc = Service(namespace="default", name=name, type=stype,  # type: ignore[arg-type]
                      cluster_ips=(ip_address(f"10.96.0.{10 + k}"),), selector={"app": name},
                      ports=tuple(ports), external_traffic_policy=etp,  # type: ignore[arg-type]
                      internal_traffic_policy=itp,  # type: ignore[arg-type]
                      **kw)  # type: ignore[arg-type]
        services.append(svc)

        # endpoints
        endpoints: list[Endpoint] = []
        ep_texts: list[str] = []
        no_endpoints = rng.random() < 0.15
        if not no_endpoints:
            for node in nodes:
                count = rng.choices([0, 1, 2], weights=[0.45, 0.35, 0.2])[0]
                marks = ""
                for j in range(count):
                    state = rng.choices(ENDPOINT_STATES, weights=[0.72, 0.15, 0.06, 0.07])[0]
                    ip = pod_ip(node.name)
                    cports = [ContainerPort(container_port=target, name="http")]
                    if with_udp:
                        cports.append(ContainerPort(container_port=5353 + k, name="dns",
                                                    protocol="udp"))
                    terminating = state in ("serving-terminating", "terminating")
                    pods.append(Pod(namespace="default", name=f"{name}-{node.name}-{j}",
                                    node_name=node.name, ips=(ip,), labels={"app": name},
                                    ports=tuple(cports), ready=state == "ready",
                                    terminating=terminating))
                    endpoints.append(Endpoint(
                        addresses=(ip,), node_name=node.name,
                        ready=state == "ready",
                        serving=state in ("ready", "serving-terminating"),
                        terminating=terminating,
                        target_ref=f"default/{name}-{node.name}-{j}"))
                    marks += _STATE_SHORT[state]
                if marks:
                    ep_texts.append(f"{node.name}:{marks}")
        eports = [EndpointPort(name="http" if with_udp else "", port=target)]
        if with_udp:
            eports.append(EndpointPort(name="dns", port=5353 + k, protocol="udp"))
        if endpoints or rng.random() < 0.5:
            slices.append(EndpointSlice(namespace="default", name=f"{name}-abcde",
                                        service_name=name, endpoints=tuple(endpoints),
                                        ports=tuple(eports)))
        eps_text = " ".join(ep_texts) if ep_texts else "no endpoints"
        svc_texts.append(
            f"{name} {stype} etp={etp} itp={itp} "
            f"{'tcp80+udp53' if with_udp else 'tcp80'}"
            + (f" [{', '.join(extra)}]" if extra else "") + f" eps: {eps_text}")

    cluster = Cluster(nodes=tuple(nodes), pods=tuple(pods), services=tuple(services),
                      endpoint_slices=tuple(slices), kube_proxy=kp, profile=profile)
    frng = random.Random(f"family-{seed}")  # its own generator: the draws above stay put
    drawn_family = _weighted(frng, FAMILIES)
    fam = family or drawn_family
    cluster, fam_text = _with_family(cluster, fam, frng)
    lab_mode = f"{mode}" + (f"({backend})" if mode == "iptables" else "")
    summary = (f"seed {seed}: {n_nodes} nodes, {pod_attach}/{inter_node}"
               + (" +egressMasquerade" if egress else "")
               + (f" bridge {bridge}" if pod_attach == "bridge" else "")
               + (f", {fam_text}" if fam_text else "")
               + f", {lab_mode}, {kp_text}; " + "; ".join(svc_texts))
    return Scenario(seed=seed, cluster=cluster, mode=mode, backend=backend, summary=summary,
                    family=fam)


if __name__ == "__main__":  # print a few scenarios: python -m tests.lab.gen_clusters [SEED...]
    import sys

    for arg in sys.argv[1:] or ["1", "2", "3"]:
        print(generate(int(arg)).summary)
