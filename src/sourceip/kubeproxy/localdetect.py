"""kube-proxy's local-traffic detector: which packets come from a pod on this node.

Mirrors ``pkg/proxy/util/localdetector.go`` (``NewDetectLocalByCIDR``,
``NewDetectLocalByBridgeInterface``, ``NewDetectLocalByInterfaceNamePrefix``,
``NewNoOpLocalDetector``) and the choice made in ``cmd/kube-proxy/app/server.go``
(``getLocalDetectors``):

* ``ClusterCIDR`` (the default): ``-s <first clusterCIDR of the family>``; NoOp when the config
  has no cluster CIDR of that family;
* ``NodeCIDR``: ``-s <the node's podCIDR of the family>``; NoOp without one;
* ``BridgeInterface``: ``-i <bridge>``;
* ``InterfaceNamePrefix``: ``-i <prefix>+`` (nft writes the wildcard as ``*``; the IR keeps
  iptables' ``+``, see ``netfilter.ir.Iface``).

The matches are IR values shared by the iptables and nftables builders; ``if_not_local`` is the
negation (``! -s cidr`` / ``ip saddr != cidr``). A NoOp detector has empty match tuples and
``implemented`` False: callers must then omit the rules that use it, as kube-proxy does.
"""

from __future__ import annotations

from dataclasses import dataclass

from sourceip.cluster import KubeProxyConfig, Node
from sourceip.netfilter.ir import Addr, Iface, Match

__all__ = ["LocalDetector", "local_detector", "noop_detector"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalDetector:
    """The detector kube-proxy runs for one IP family on one node.

    ``mode`` is the effective mode (``ClusterCIDR``, ``NodeCIDR``, ``BridgeInterface``,
    ``InterfaceNamePrefix`` or ``NoOp``); ``reason`` says why a configured mode fell back to
    NoOp (empty otherwise)."""

    mode: str
    if_local: tuple[Match, ...] = ()
    if_not_local: tuple[Match, ...] = ()
    reason: str = ""

    @property
    def implemented(self) -> bool:
        """``IsImplemented()``: the detector produces matches."""
        return bool(self.if_local)

    def describe(self) -> str:
        """One line for notes and explanations, e.g. ``ClusterCIDR (-s 10.0.0.0/8)``."""
        if not self.implemented:
            return f"NoOp ({self.reason})" if self.reason else "NoOp"
        m = self.if_local[0]
        if isinstance(m, Addr):
            return f"{self.mode} (-s {m.nets[0]})"
        if isinstance(m, Iface):
            return f"{self.mode} (-i {m.name})"
        return self.mode


def noop_detector(reason: str = "") -> LocalDetector:
    """``NewNoOpLocalDetector``."""
    return LocalDetector(mode="NoOp", reason=reason)


def local_detector(cfg: KubeProxyConfig, node: Node, family: int = 4) -> LocalDetector:
    """The detector kube-proxy configured with ``cfg`` builds on ``node`` for ``family``."""
    mode = cfg.effective_detect_local_mode
    if mode == "ClusterCIDR":
        cidr = next((c for c in cfg.cluster_cidrs if c.version == family), None)
        if cidr is None:
            return noop_detector(f"detectLocalMode ClusterCIDR without an IPv{family} clusterCIDR")
        return LocalDetector(
            mode=mode,
            if_local=(Addr("src", (cidr,)),),
            if_not_local=(Addr("src", (cidr,), negate=True),),
        )
    if mode == "NodeCIDR":
        net = node.pod_cidr(family)
        if net is None:
            return noop_detector(
                f"detectLocalMode NodeCIDR but node {node.name} has no IPv{family} podCIDR"
            )
        return LocalDetector(
            mode=mode,
            if_local=(Addr("src", (net,)),),
            if_not_local=(Addr("src", (net,), negate=True),),
        )
    if mode == "BridgeInterface":
        if not cfg.bridge_interface:
            return noop_detector("detectLocalMode BridgeInterface without a bridgeInterface")
        return LocalDetector(
            mode=mode,
            if_local=(Iface("in", cfg.bridge_interface),),
            if_not_local=(Iface("in", cfg.bridge_interface, negate=True),),
        )
    if mode == "InterfaceNamePrefix":
        if not cfg.interface_name_prefix:
            return noop_detector(
                "detectLocalMode InterfaceNamePrefix without an interfaceNamePrefix"
            )
        name = cfg.interface_name_prefix + "+"
        return LocalDetector(
            mode=mode,
            if_local=(Iface("in", name),),
            if_not_local=(Iface("in", name, negate=True),),
        )
    return noop_detector(f"unknown detectLocalMode {mode!r}")
