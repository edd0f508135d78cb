"""The local-traffic detector for each detectLocalMode (pkg/proxy/util/localdetector.go)."""

from __future__ import annotations

import ipaddress

from sourceip.cluster import KubeProxyConfig, Node
from sourceip.kubeproxy.localdetect import local_detector
from sourceip.netfilter.ir import Addr, Iface

NODE = Node(
    name="n1",
    internal_ips=(ipaddress.ip_address("192.168.0.2"),),
    pod_cidrs=(ipaddress.ip_network("10.244.1.0/24"), ipaddress.ip_network("fd00:1::/64")),
)
CIDRS = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/48"))


def test_cluster_cidr_default() -> None:
    d = local_detector(KubeProxyConfig(cluster_cidrs=CIDRS), NODE, 4)
    assert d.mode == "ClusterCIDR" and d.implemented
    assert d.if_local == (Addr("src", (CIDRS[0],)),)
    assert d.if_not_local == (Addr("src", (CIDRS[0],), negate=True),)
    d6 = local_detector(KubeProxyConfig(cluster_cidrs=CIDRS), NODE, 6)
    assert d6.if_local == (Addr("src", (CIDRS[1],)),)


def test_cluster_cidr_missing_is_noop() -> None:
    d = local_detector(KubeProxyConfig(), NODE, 4)
    assert not d.implemented and d.mode == "NoOp"
    assert d.if_local == () and d.if_not_local == ()
    assert "clusterCIDR" in d.reason


def test_node_cidr() -> None:
    d = local_detector(KubeProxyConfig(detect_local_mode="NodeCIDR", cluster_cidrs=CIDRS), NODE)
    assert d.if_not_local == (Addr("src", (NODE.pod_cidrs[0],), negate=True),)
    bare = Node(name="n2")
    assert not local_detector(KubeProxyConfig(detect_local_mode="NodeCIDR"), bare).implemented


def test_bridge_interface() -> None:
    cfg = KubeProxyConfig(detect_local_mode="BridgeInterface", bridge_interface="cni0")
    d = local_detector(cfg, NODE)
    assert d.if_local == (Iface("in", "cni0"),)
    assert d.if_not_local == (Iface("in", "cni0", negate=True),)
    assert d.describe() == "BridgeInterface (-i cni0)"


def test_interface_name_prefix() -> None:
    cfg = KubeProxyConfig(detect_local_mode="InterfaceNamePrefix", interface_name_prefix="veth")
    d = local_detector(cfg, NODE)
    assert d.if_local == (Iface("in", "veth+"),)
    assert d.if_not_local == (Iface("in", "veth+", negate=True),)
