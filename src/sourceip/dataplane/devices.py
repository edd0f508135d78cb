"""Network devices that CNI plugins, container runtimes and kube-proxy create on a node.

A dump traced on its own (``trace --dump`` without a cluster) comes from a node whose interface
names are not known: the stand-in node calls its uplink ``eth0`` (NetworkProfile's default),
but the real node's may be ``ens5``, ``bond0`` or a VPN's ``wt0``. A rule's ``-i``/``-o`` on
that uplink is then undecidable — unless the rule names a device that some CNI, runtime or
kube-proxy creates for its own use, which the uplink is not. ``DEVICES`` is that list, one
row per device name (a trailing ``+`` is a prefix, as in iptables), with who creates it.
"""

from __future__ import annotations

from collections.abc import Collection

from sourceip.netfilter.evaluate import IfaceQuestion, iface_matches

# (name or prefix+, who creates it). Sources: each project's documentation or code, named.
DEVICES: tuple[tuple[str, str], ...] = (
    ("lo", "the loopback device"),
    ("docker0", "Docker's default bridge (moby libnetwork bridge driver)"),
    ("br-+", "Docker user-defined bridge networks (libnetwork: br-<network id>)"),
    ("veth+", "veth pairs of Docker, the bridge/ptp CNI plugins, flannel, kindnet"),
    ("cni0", "the bridge CNI plugin's default bridge (flannel, k3s)"),
    ("cbr0", "kubenet's bridge"),
    ("cni-podman+", "podman's CNI bridge"),
    ("flannel.+", "flannel's VXLAN device flannel.<VNI> (backend/vxlan)"),
    ("flannel-v6.+", "flannel's IPv6 VXLAN device"),
    ("flannel-wg+", "flannel's WireGuard backend (flannel-wg, flannel-wg-v6)"),
    ("cali+", "calico's per-pod veth host ends (felix: InterfacePrefix cali)"),
    ("tunl0", "calico's IP-in-IP device (ipip module)"),
    ("vxlan.calico", "calico's VXLAN device"),
    ("vxlan-v6.calico", "calico's IPv6 VXLAN device"),
    ("wireguard.cali", "calico's WireGuard device"),
    ("wg-v6.cali", "calico's IPv6 WireGuard device"),
    ("weave", "weave net's bridge"),
    ("vethwe+", "weave net's veths"),
    ("datapath", "weave net's Open vSwitch datapath"),
    ("vxlan-6784", "weave net's fast-datapath VXLAN device"),
    ("cilium_+", "cilium's devices (cilium_host, cilium_net, cilium_vxlan, cilium_geneve, "
                 "cilium_wg0)"),
    ("lxc+", "cilium's per-endpoint veth host ends"),
    ("kube-bridge", "kube-router's bridge"),
    ("kube-dummy-if", "kube-router's dummy device for service VIPs"),
    ("kube-ipvs0", "kube-proxy ipvs mode's dummy device for service VIPs"),
    ("nodelocaldns", "NodeLocal DNSCache's dummy device"),
    ("azure0", "Azure CNI's bridge (bridge mode)"),
    ("azv+", "Azure CNI's per-pod veth host ends (transparent mode)"),
    ("antrea-+", "Antrea's gateway and tunnel devices (antrea-gw0, antrea-tun0)"),
    ("ovn-k8s-+", "OVN-Kubernetes' management port (ovn-k8s-mp0)"),
    ("genev_sys_+", "Open vSwitch's Geneve tunnel device (OVN-Kubernetes, Antrea)"),
    ("eni+", "amazon-vpc-cni's per-pod veth host ends"),
    ("gke+", "GKE's per-pod veth host ends (kubenet/dataplane v1)"),
    ("virbr+", "libvirt's bridges"),
)


def _names_a_device(pattern: str) -> bool:
    """Whether every interface ``pattern`` can match is one of ``DEVICES`` (so not an
    uplink): the pattern is a device's name, or lies within a device prefix."""
    literal = pattern[:-1] if pattern.endswith("+") else pattern
    for name, _ in DEVICES:
        if name.endswith("+"):
            if literal.startswith(name[:-1]):
                return True
        elif pattern == name:
            return True
    return False


# The name a stand-in node gives an interface it cannot name at all: a packet's input on a
# `--node` flow (its source may be a local pod behind a CNI device, or anything else) and the
# output of every route (the stand-in does not know which addresses are its local pods).
UNKNOWN_DEVICE = "(unknown)"


def stand_in_ifaces(uplinks: Collection[str]) -> IfaceQuestion:
    """``Evaluator(ifaces=...)`` for a dump's stand-in node. ``uplinks``: the names it gives
    its uplink when that device's real name is a guess; a rule's ``-i``/``-o`` on it is
    answered only when it names a CNI/runtime/kube-proxy device (not the uplink) or matches
    every name (``+``). On ``UNKNOWN_DEVICE`` only ``+`` is answered. Other devices are
    compared exactly."""
    guessed = frozenset(uplinks)

    def ask(current: str, pattern: str) -> bool | None:
        if current == UNKNOWN_DEVICE:
            return True if pattern == "+" else None
        if current not in guessed:
            return iface_matches(current, pattern)
        if pattern == "+":
            return True
        if _names_a_device(pattern):
            return False
        return None

    return ask
