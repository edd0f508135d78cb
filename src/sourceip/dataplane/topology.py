"""Each node's interfaces, addresses and routes, derived from the cluster and its NetworkProfile.

This is the routing half of the dataplane: where a packet goes after a node's netfilter hooks,
which interface it leaves by, and the address MASQUERADE picks there (the kernel's choice: the
primary address of the egress interface — the bridge gateway on a bridge CNI, the node address
on a routed veth, the tunnel address on an overlay).

Routing is per IP family, as in the kernel: a node has a :class:`NodeNet` for each family it
has an InternalIP of (its IPv6 InternalIP, IPv6 pod CIDR, the bridge's IPv6 gateway — the first
address of that CIDR — and the IPv6 tunnel device), and a destination is routed by the nets of
its own family. No packet changes family on the way (kube-proxy never translates between them),
so a node without an address of a family has no route of that family (``TraceError``).
IPv6 MASQUERADE picks the egress interface's global address (RFC 6724 source selection; a
routed veth has only a link-local address, so the node's own address is taken, as in IPv4).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from sourceip.cluster import Cluster, Node, Pod
from sourceip.errors import TraceError
from sourceip.net.addr import IPAddress, IPNetwork
from sourceip.net.prefixset import PrefixMap, PrefixSet

RouteKind = Literal["local", "pod", "node", "external"]

LOOPBACK4 = ipaddress.ip_network("127.0.0.0/8")
LOOPBACK6 = ipaddress.ip_network("::1/128")

# The IPv6 overlay device of a tunnel device name: flannel creates a second VXLAN device for
# IPv6, ``flannel-v6.<VNI>`` (flannel-io/flannel pkg/backend/vxlan/vxlan.go RegisterNetwork:
# ``fmt.Sprintf("flannel-v6.%v", cfg.VNI)``), addressed with the lease's IPv6 subnet network
# address /128 as the IPv4 one is; a device not listed here carries both families.
TUNNEL_DEVICE_V6: dict[str, str] = {"flannel.1": "flannel-v6.1"}


def tunnel_device(device: str, family: int) -> str:
    """The overlay device that carries ``family`` when the profile names ``device``."""
    return TUNNEL_DEVICE_V6.get(device, device) if family == 6 else device


def family_name(family: int) -> str:
    """``IPv4`` or ``IPv6``."""
    return f"IPv{family}"


def pod_pools(cluster: Cluster, family: int) -> tuple[IPNetwork, ...]:
    """The cluster's pod address pools of IP ``family``, the ranges a CNI's egress NAT leaves
    alone (flannel's ``--ip-masq`` / ``--ip6-masq``, calico's natOutgoing): the profile's
    ``podCIDRs``, else kube-proxy's clusterCIDR, else the nodes' podCIDRs, collapsed."""
    pools = [c for c in cluster.profile.pod_cidrs if c.version == family]
    if not pools:
        pools = [c for c in cluster.kube_proxy.cluster_cidrs if c.version == family]
    if not pools:
        pools = [c for c in (n.pod_cidr(family) for n in cluster.nodes) if c is not None]
    if family == 4:
        return tuple(ipaddress.collapse_addresses(
            [c for c in pools if isinstance(c, ipaddress.IPv4Network)]))
    return tuple(ipaddress.collapse_addresses(
        [c for c in pools if isinstance(c, ipaddress.IPv6Network)]))


def host_veth_name(pod_key: str, *, routed: bool) -> str:
    """The node-side veth of a pod, as the lab creates it: ``cali`` + 11 hex digits on a routed
    CNI (calico's form, so ``detectLocalMode: InterfaceNamePrefix`` with ``cali`` matches),
    ``veth`` + 11 hex digits on a bridge CNI."""
    digest = hashlib.sha1(pod_key.encode()).hexdigest()[:11]
    return ("cali" if routed else "veth") + digest


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeNet:
    """The network of one node for one IP family: its primary address of that family, the pod
    CIDR of that family, the bridge gateway and tunnel address of that family."""

    node: Node
    ip: IPAddress
    iface: str
    pod_cidr: IPNetwork | None
    gateway: IPAddress | None
    tunnel_addr: IPAddress | None
    attach: str
    bridge_name: str = "cni0"
    tunnel_device: str = "flannel.1"

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def family(self) -> int:
        return self.ip.version

    def local_addresses(self) -> tuple[IPAddress | IPNetwork, ...]:
        """What ``addrtype LOCAL`` matches on this node."""
        out: list[IPAddress | IPNetwork] = list(self.node.addresses)
        if self.gateway is not None:
            out.append(self.gateway)
        if self.tunnel_addr is not None:
            out.append(self.tunnel_addr)
        out.extend([LOOPBACK4, LOOPBACK6])
        return tuple(out)

    def bridges(self) -> frozenset[str]:
        """The node's bridge devices: the CNI bridge on a bridge CNI, none on a routed one (a
        packet whose input interface is one entered through a bridge port: ``-m physdev
        --physdev-is-in``)."""
        return frozenset((self.bridge_name,)) if self.attach == "bridge" else frozenset()

    def pod_iface(self, pod: Pod | None) -> str:
        """The node-side interface a local pod's packets arrive on / leave by (the bridge, or
        the pod's own host veth on a routed CNI)."""
        if self.attach == "bridge":
            return self.bridge_name
        return host_veth_name(pod.key if pod is not None else "pod", routed=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Where a node sends a packet for a destination."""

    kind: RouteKind
    oif: str
    src: IPAddress  # the address MASQUERADE would pick on ``oif``
    next_node: str | None = None
    pod: Pod | None = None
    arrive_iif: str | None = None  # the interface it arrives on at next_node


class Topology:
    """Routing for every node of a cluster, following its NetworkProfile, per IP family.

    ``nets`` holds each node's net of its primary family (IPv4 when it has an IPv4 InternalIP,
    else its first address's family): node names, interfaces and the address a node is known
    by; ``family_nets[4|6]`` the nets of each family."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.profile = cluster.profile
        self.nets: dict[str, NodeNet] = {}
        self.family_nets: dict[int, dict[str, NodeNet]] = {4: {}, 6: {}}
        self._pod_cidrs: PrefixMap[str] = PrefixMap()
        self._local_sets: dict[str, PrefixSet] = {}
        # route() is a pure function of (node, destination): memoized, bounded.
        self._routes: dict[tuple[str, IPAddress], Route] = {}
        for node in cluster.nodes:
            first = node.primary_ip(4) or (node.addresses[0] if node.addresses else None)
            if first is None:
                continue
            for family in (4, 6):
                ip = node.primary_ip(family)
                if ip is None and first.version == family:
                    ip = first  # an ExternalIP only
                if ip is None:
                    continue
                net = self._node_net(node, ip)
                self.family_nets[family][node.name] = net
                if net.pod_cidr is not None:
                    self._pod_cidrs.add(net.pod_cidr, node.name)
                if family == first.version:
                    self.nets[node.name] = net

    def _node_net(self, node: Node, ip: IPAddress) -> NodeNet:
        pod_cidr = node.pod_cidr(ip.version)
        gateway = tunnel = None
        if pod_cidr is not None:
            if self.profile.pod_attach == "bridge":
                gateway = pod_cidr.network_address + 1
            if self.profile.inter_node == "tunnel":
                tunnel = pod_cidr.network_address
        return NodeNet(
            node=node, ip=ip, iface=self.profile.node_interface, pod_cidr=pod_cidr,
            gateway=gateway, tunnel_addr=tunnel, attach=self.profile.pod_attach,
            bridge_name=self.profile.bridge_name,
            tunnel_device=tunnel_device(self.profile.tunnel_device, ip.version),
        )

    @cached_property
    def families(self) -> tuple[int, ...]:
        """The IP families some node has an address of (4 first)."""
        return tuple(f for f in (4, 6) if self.family_nets[f])

    @cached_property
    def _owner(self) -> dict[IPAddress, str]:
        """Address -> node owning it (node addresses, gateways, tunnel addresses)."""
        out: dict[IPAddress, str] = {}
        for nets in self.family_nets.values():
            for name, net in nets.items():
                for a in net.node.addresses:
                    out[a] = name
                if net.gateway is not None:
                    out[net.gateway] = name
                if net.tunnel_addr is not None:
                    out[net.tunnel_addr] = name
        return out

    @cached_property
    def lb_ips(self) -> frozenset[IPAddress]:
        """Every LoadBalancer ingress IP of the cluster."""
        return frozenset(ip for s in self.cluster.services for ip in s.all_lb_ips)

    def local_addresses(self, node: str) -> tuple[IPAddress | IPNetwork, ...]:
        """What ``addrtype LOCAL`` / ``fib daddr type local`` matches on ``node``: its
        addresses, gateways and tunnel addresses of every family, and loopback."""
        out: list[IPAddress | IPNetwork] = []
        for family in (4, 6):
            net = self.family_nets[family].get(node)
            if net is not None:
                out += [a for a in net.local_addresses() if a not in out]
        return tuple(out)

    def local_set(self, node: str) -> PrefixSet:
        """What ``addrtype LOCAL`` matches on ``node``, built once per node."""
        ps = self._local_sets.get(node)
        if ps is None:
            ps = self._local_sets[node] = PrefixSet(self.local_addresses(node))
        return ps

    def net(self, node: str, family: int | None = None) -> NodeNet:
        """``node``'s net of ``family`` (default: its primary family); raises ``TraceError``
        when the node has no address of that family."""
        if family is None:
            return self.nets[node]
        net = self.family_nets[family].get(node)
        if net is None:
            if node not in self.nets:
                raise KeyError(node)
            raise TraceError(f"node {node} has no {family_name(family)} address: it has no "
                          f"{family_name(family)} path")
        return net

    def has_family(self, node: str, family: int) -> bool:
        """Whether ``node`` has an address (and so routes) of ``family``."""
        return node in self.family_nets[family]

    def node_owning(self, addr: IPAddress) -> str | None:
        """The node that owns ``addr`` as one of its own addresses."""
        return self._owner.get(addr)

    def pod_node(self, addr: IPAddress) -> tuple[str, Pod | None] | None:
        """The node whose pod network holds ``addr`` (and the pod, if one has that IP)."""
        pod = self.cluster.pod_by_ip.get(addr)
        if pod is not None and pod.node_name in self.nets:
            return pod.node_name, pod
        owner = self._pod_cidrs.lookup(addr)
        if owner is not None:
            return owner, None
        return None

    def is_local(self, node: str, addr: IPAddress) -> bool:
        net = self.nets[node]
        if addr in (LOOPBACK4 if addr.version == 4 else LOOPBACK6):
            return True
        return self._owner.get(addr) == node or addr == net.ip

    def route(self, node: str, dst: IPAddress) -> Route:
        """The route ``node`` takes towards ``dst``."""
        key = (node, dst)
        r = self._routes.get(key)
        if r is None:
            if len(self._routes) >= 1 << 17:
                self._routes.clear()
            r = self._routes[key] = self._route(node, dst)
        return r

    def _route(self, node: str, dst: IPAddress) -> Route:
        net = self.net(node, dst.version)
        if self.is_local(node, dst):
            return Route(kind="local", oif="lo", src=dst)
        where = self.pod_node(dst)
        if where is not None:
            owner, pod = where
            if owner == node:
                src = net.gateway if net.gateway is not None else net.ip
                if net.gateway is None and dst.version == 6 and net.tunnel_addr is not None:
                    src = _longest_match(dst, (net.ip, net.tunnel_addr))
                return Route(kind="pod", oif=net.pod_iface(pod), src=src, pod=pod)
            other = self.net(owner, dst.version)
            if self.profile.inter_node == "tunnel" and net.tunnel_addr is not None:
                return Route(kind="node", oif=net.tunnel_device, src=net.tunnel_addr,
                             next_node=owner, pod=pod, arrive_iif=other.tunnel_device)
            return Route(kind="node", oif=net.iface, src=net.ip, next_node=owner, pod=pod,
                         arrive_iif=other.iface)
        owner_node = self.node_owning(dst)
        if owner_node is not None:
            return Route(kind="node", oif=net.iface, src=net.ip, next_node=owner_node,
                         arrive_iif=self.nets[owner_node].iface)
        return Route(kind="external", oif=net.iface, src=net.ip)


def _longest_match(dst: IPAddress, candidates: tuple[IPAddress, ...]) -> IPAddress:
    """IPv6 source selection when the outgoing interface has no global address (a routed
    pod's host veth): RFC 6724 section 5 rule 8, the candidate sharing the longest prefix with
    ``dst`` (the first on a tie) — the tunnel address (the podCIDR's network address) wins
    over the node's address for the node's own pods. Linux: net/ipv6/addrconf.c
    ipv6_get_saddr_eval, IPV6_SADDR_RULE_PREFIX. Measured in the lab (routed + tunnel)."""
    def common(a: IPAddress) -> int:
        return 128 - (int(a) ^ int(dst)).bit_length()

    return max(candidates, key=common)

