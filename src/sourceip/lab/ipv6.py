"""The IPv6 half of a lab plan (pure: computes ``ip -6 -batch`` lines and sysctls, runs nothing).

For a cluster whose nodes have IPv6 InternalIPs, ``lab.plan`` adds to the IPv4 lab (or builds
alone, for an IPv6-only cluster) what the same CNI profiles do for IPv6, addresses added with
``nodad`` (duplicate address detection would hold a fresh address *tentative* for a second):

* the node link: each node's IPv6 InternalIP with the prefix of the smallest subnet holding
  them all (at least a /64), the router's first free address as the nodes' IPv6 default route;
* ``bridge``: the bridge's IPv6 address is the first host of the node's IPv6 podCIDR (as the
  tracer's ``Topology`` has it), pods take ``podIP/prefix`` and route via it; multicast
  snooping is off so that neighbour discovery is flooded to every port;
* ``routed``: pods take ``podIP/128`` and a default route via ``fe80::1``, the link-local
  address of their host veth (calico gives the host side ``fe80::ecee:eeff:feee:eeee`` for the
  same purpose); the node routes ``podIP/128`` to that veth and answers neighbour discovery for
  its own link-local address, so no proxy-NDP is needed;
* ``tunnel``: flannel's second VXLAN device for IPv6, ``flannel-v6.<VNI>`` (``topology``'s
  ``tunnel_device``), over the nodes' IPv6 addresses, with the IPv6 podCIDR's network address
  /128, onlink routes, permanent neighbour and fdb entries;
* ``direct``: routes to other nodes' IPv6 podCIDRs via their IPv6 addresses;
* sysctls: ``net.ipv6.conf.all.forwarding=1``, ``net.ipv6.icmp.ratemask`` empty and
  ``ratelimit=0`` (REJECTed probes must not turn into timeouts), ``bridge-nf-call-ip6tables=1``
  on a bridge profile;
* the router routes IPv6 VIPs to nodes as it does IPv4 ones, with ``ip -6 rule ... sport``
  for probes steered to one node; the external client gets an address in the first of
  ``EXTERNAL_SUBNETS6`` that overlaps nothing of the cluster.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from sourceip.cluster import Cluster, Node
from sourceip.dataplane.tracer import DEFAULT_EXTERNAL_IP6
from sourceip.errors import LabError
from sourceip.lab.model import Sysctl

IPv6 = ipaddress.IPv6Address
IPv6Net = ipaddress.IPv6Network

# The first is the explain engine's default IPv6 external client's /64, so that a lab run's
# predictions and `sourceip explain` name the same client when nothing overlaps it.
EXTERNAL_SUBNETS6 = (str(IPv6Net(f"{DEFAULT_EXTERNAL_IP6}/64", strict=False)),
                     "2001:db8:fffe::/64", "fd53:1ab::/64")
EXTERNAL_HOST6 = int(IPv6(DEFAULT_EXTERNAL_IP6)) & 0xFFFF  # ::10, as the default client
ROUTED_GATEWAY6 = "fe80::1"  # the link-local address of every routed pod's host veth


def v6_pod_cidr(node: Node) -> IPv6Net | None:
    cidr = node.pod_cidr(6)
    return cidr if isinstance(cidr, IPv6Net) else None


def node_subnet6(ips: Sequence[IPv6]) -> IPv6Net:
    """The IPv6 node link's subnet: the /64 holding every node IPv6 address, or the smallest
    common supernet."""
    prefix = 64
    while prefix > 0:
        net = IPv6Net(f"{ips[0]}/{prefix}", strict=False)
        if all(ip in net for ip in ips):
            return net
        prefix -= 1
    raise LabError("node IPv6 addresses have no common supernet")


@dataclass(slots=True, kw_only=True)
class V6Base:
    """The IPv6 addresses of the lab's own namespaces (router, external client)."""

    node_ip: dict[str, IPv6]
    subnet: IPv6Net
    router_ip: IPv6
    ext_net: IPv6Net
    ext_gw: IPv6
    ext_ip: IPv6
    notes: list[str] = field(default_factory=list)


def plan_base6(cluster: Cluster, node_ip: dict[str, IPv6]) -> V6Base:
    """The node subnet, the router's and the external client's IPv6 addresses."""
    subnet = node_subnet6(list(node_ip.values()))
    taken = set(node_ip.values())
    router = next((h for h in _hosts(subnet) if h not in taken), None)
    if router is None:
        raise LabError(f"no free address in the IPv6 node subnet {subnet} for the router")
    used: list[IPv6Net] = [subnet]
    used += [c for c in (v6_pod_cidr(n) for n in cluster.nodes) if c is not None]
    used += [c for c in (*cluster.kube_proxy.cluster_cidrs, *cluster.profile.pod_cidrs)
             if isinstance(c, IPv6Net)]
    vips = [ip for s in cluster.services for ip in (*s.cluster_ips, *s.external_ips,
                                                     *s.all_lb_ips) if isinstance(ip, IPv6)]
    for text in EXTERNAL_SUBNETS6:
        cand = IPv6Net(text)
        if any(cand.overlaps(u) for u in used) or any(ip in cand for ip in vips):
            continue
        base = int(cand.network_address)
        return V6Base(node_ip=node_ip, subnet=subnet, router_ip=router, ext_net=cand,
                      ext_gw=IPv6(base + 1), ext_ip=IPv6(base + EXTERNAL_HOST6))
    raise LabError("every candidate external IPv6 subnet overlaps the cluster's addresses")


def _hosts(net: IPv6Net) -> list[IPv6]:
    """The first addresses of ``net`` after the subnet-router anycast address."""
    base = int(net.network_address)
    return [IPv6(base + k) for k in range(1, min(net.num_addresses - 1, 4096))]


def pod_lines6(ip: IPv6, cidr: IPv6Net | None, *, routed: bool) -> list[str]:
    """``ip -6`` lines inside a pod's namespace (its eth0 is up already)."""
    if routed:
        return [f"addr add {ip}/128 dev eth0 nodad",
                f"route add default via {ROUTED_GATEWAY6} dev eth0"]
    assert cidr is not None
    return [f"addr add {ip}/{cidr.prefixlen} dev eth0 nodad",
            f"route add default via {cidr.network_address + 1}"]


def host_veth_lines6(ip: IPv6, host_if: str) -> list[str]:
    """``ip -6`` lines in the node for one routed pod's host veth."""
    return [f"addr add {ROUTED_GATEWAY6}/64 dev {host_if} nodad",
            f"route add {ip}/128 dev {host_if}"]


def vxlan_device_lines(dev: str, mac: str, local: object, *, node_interface: str,
                       vxlan_id: int, vxlan_port: int, address: str) -> list[str]:
    """The lines that create a flannel-style VXLAN device (either family: ``local`` is the
    node's address of that family, ``address`` the device's own ``addr/prefix``; IPv6
    addresses skip duplicate address detection)."""
    nodad = " nodad" if ":" in address else ""
    return [f"link add {dev} address {mac} type vxlan id {vxlan_id} local {local} "
            f"dev {node_interface} dstport {vxlan_port} nolearning",
            f"addr add {address} dev {dev}{nodad}",
            f"link set {dev} up"]


def vtep_mac6(index: int) -> str:
    """The IPv6 VXLAN device's MAC of node ``index`` (distinct from the IPv4 device's)."""
    return f"02:53:36:{(index >> 16) & 255:02x}:{(index >> 8) & 255:02x}:{index & 255:02x}"


def node_lines6(cluster: Cluster, index: int, base: V6Base, *, node_interface: str,
                bridge: str | None, tunnel_device: str | None, vxlan_id: int,
                vxlan_port: int) -> tuple[list[str], list[str]]:
    """``ip -6`` and ``bridge`` lines of node ``index``: its address and default route, the
    bridge's IPv6 address, the tunnel device, routes to the other nodes' IPv6 podCIDRs."""
    nodes = cluster.nodes
    node = nodes[index]
    ip = base.node_ip[node.name]
    cidr = v6_pod_cidr(node)
    lines = [f"addr add {ip}/{base.subnet.prefixlen} dev {node_interface} nodad",
             f"route add default via {base.router_ip}"]
    fdb: list[str] = []
    if bridge is not None and cidr is not None:
        lines += [f"addr add {cidr.network_address + 1}/{cidr.prefixlen} dev {bridge} nodad",
                  f"link set {bridge} type bridge mcast_snooping 0"]
    if bridge is None and cidr is not None:
        lines.append(f"route add blackhole {cidr}")
    if tunnel_device is not None and cidr is not None:
        lines += vxlan_device_lines(tunnel_device, vtep_mac6(index), ip,
                                    node_interface=node_interface, vxlan_id=vxlan_id,
                                    vxlan_port=vxlan_port,
                                    address=f"{cidr.network_address}/128")
    for j, other in enumerate(nodes):
        ocidr = v6_pod_cidr(other)
        if other.name == node.name or ocidr is None:
            continue
        if tunnel_device is not None:
            vtep = ocidr.network_address
            lines += [f"route add {ocidr} via {vtep} dev {tunnel_device} onlink",
                      f"neigh add {vtep} lladdr {vtep_mac6(j)} dev {tunnel_device} "
                      "nud permanent"]
            fdb.append(f"fdb append {vtep_mac6(j)} dev {tunnel_device} "
                       f"dst {base.node_ip[other.name]} self permanent")
        else:
            lines.append(f"route add {ocidr} via {base.node_ip[other.name]}")
    return lines, fdb


def node_sysctls6(*, bridge: bool) -> list[Sysctl]:
    """The IPv6 sysctls of a node namespace."""
    out = [Sysctl(path="net/ipv6/conf/all/forwarding", value="1"),
           # no ICMPv6 error type rate-limited: as icmp_ratemask=0 for IPv4, this also skips
           # the machine-wide budget (icmp_msgs_per_sec / _burst, shared by every lab that
           # runs at once), which would turn REJECTs into timeouts
           Sysctl(path="net/ipv6/icmp/ratemask", value=""),
           Sysctl(path="net/ipv6/icmp/ratelimit", value="0")]
    if bridge:
        out.append(Sysctl(path="net/bridge/bridge-nf-call-ip6tables", value="1"))
    return out


def router_lines6(base: V6Base, vips: Sequence[IPv6], nodes: Sequence[str], *,
                  bridge: str, table_base: int,
                  via_ports: Sequence[tuple[str, tuple[int, int]]]) -> list[str]:
    """The router's IPv6 lines: its addresses, VIP routes to the first node, and a table per
    node with the source-port rule that steers a probe there."""
    lines = [f"addr add {base.router_ip}/{base.subnet.prefixlen} dev {bridge} nodad",
             f"link set {bridge} type bridge mcast_snooping 0",
             f"addr add {base.ext_gw}/{base.ext_net.prefixlen} dev ext0 nodad"]
    if not nodes:
        return lines
    first = base.node_ip[nodes[0]]
    lines += [f"route add {vip}/128 via {first}" for vip in vips]
    ranges = dict(via_ports)
    for i, node in enumerate(nodes):
        table = table_base + i
        lines += [f"route add {vip}/128 via {base.node_ip[node]} table {table}" for vip in vips]
        lo, hi = ranges[node]
        lines.append(f"rule add from {base.ext_ip} sport {lo}-{hi} lookup {table} pref {table}")
    return lines


def external_lines6(base: V6Base) -> list[str]:
    """The external client's IPv6 address and default route."""
    return [f"addr add {base.ext_ip}/{base.ext_net.prefixlen} dev eth0 nodad",
            f"route add default via {base.ext_gw}"]
