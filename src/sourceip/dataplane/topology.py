"""Each node's interfaces, addresses and routes, derived from the cluster and its NetworkProfile.

This is the routing half of the dataplane: where a packet goes after a node's netfilter hooks,
which interface it leaves by, and the address MASQUERADE picks there (the kernel's choice: the
primary address of the egress interface — the bridge gateway on a bridge CNI, the node address
on a routed veth, the tunnel address on an overlay).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from sourceip.cluster import Cluster, Node, Pod
from sourceip.net.addr import IPAddress, IPNetwork
from sourceip.net.prefixset import PrefixMap, PrefixSet

RouteKind = Literal["local", "pod", "node", "external"]

LOOPBACK4 = ipaddress.ip_network("127.0.0.0/8")
LOOPBACK6 = ipaddress.ip_network("::1/128")


def host_veth_name(pod_key: str, *, routed: bool) -> str:
    """The node-side veth of a pod, as the lab creates it: ``cali`` + 11 hex digits on a routed
    CNI (calico's form, so ``detectLocalMode: InterfaceNamePrefix`` with ``cali`` matches),
    ``veth`` + 11 hex digits on a bridge CNI."""
    digest = hashlib.sha1(pod_key.encode()).hexdigest()[:11]
    return ("cali" if routed else "veth") + digest


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeNet:
    """The network of one node: its primary address, pod attachment and tunnel."""

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
    """Routing for every node of a cluster, following its NetworkProfile."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.profile = cluster.profile
        self.nets: dict[str, NodeNet] = {}
        self._pod_cidrs: PrefixMap[str] = PrefixMap()
        self._local_sets: dict[str, PrefixSet] = {}
        # route() is a pure function of (node, destination): memoized, bounded.
        self._routes: dict[tuple[str, IPAddress], Route] = {}
        for node in cluster.nodes:
            ip = node.primary_ip(4) or (node.addresses[0] if node.addresses else None)
            if ip is None:
                continue
            pod_cidr = node.pod_cidr(ip.version)
            gateway = tunnel = None
            if pod_cidr is not None:
                if self.profile.pod_attach == "bridge":
                    gateway = pod_cidr.network_address + 1
                if self.profile.inter_node == "tunnel":
                    tunnel = pod_cidr.network_address
                self._pod_cidrs.add(pod_cidr, node.name)
            self.nets[node.name] = NodeNet(
                node=node, ip=ip, iface=self.profile.node_interface, pod_cidr=pod_cidr,
                gateway=gateway, tunnel_addr=tunnel, attach=self.profile.pod_attach,
                bridge_name=self.profile.bridge_name, tunnel_device=self.profile.tunnel_device,
            )

    @cached_property
    def _owner(self) -> dict[IPAddress, str]:
        """Address -> node owning it (node addresses, gateways, tunnel addresses)."""
        out: dict[IPAddress, str] = {}
        for name, net in self.nets.items():
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

    def local_set(self, node: str) -> PrefixSet:
        """What ``addrtype LOCAL`` matches on ``node``, built once per node."""
        ps = self._local_sets.get(node)
        if ps is None:
            ps = self._local_sets[node] = PrefixSet(self.nets[node].local_addresses())
        return ps

    def net(self, node: str) -> NodeNet:
        return self.nets[node]

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
        if addr.version == 4 and addr in LOOPBACK4:
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
        net = self.nets[node]
        if self.is_local(node, dst):
            return Route(kind="local", oif="lo", src=dst)
        where = self.pod_node(dst)
        if where is not None:
            owner, pod = where
            if owner == node:
                src = net.gateway if net.gateway is not None else net.ip
                return Route(kind="pod", oif=net.pod_iface(pod), src=src, pod=pod)
            other = self.nets[owner]
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
