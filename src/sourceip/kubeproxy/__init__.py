"""kube-proxy's rules for one node, built as netfilter IR (iptables, nftables and ipvs modes;
ipvs mode's virtual servers and ipsets: ``kubeproxy.ipvs.build_ipvs_node``)."""

from __future__ import annotations

from sourceip.cluster import Cluster, KubeProxyConfig, Node
from sourceip.netfilter.ir import Ruleset


def build_ruleset(
    cluster: Cluster,
    node: Node | str,
    config: KubeProxyConfig | None = None,
    *,
    family: int = 4,
) -> Ruleset:
    """The ruleset kube-proxy would install on ``node`` for IP ``family`` (4 or 6), in the mode
    ``config.mode`` (default: the cluster's KubeProxyConfiguration)."""
    cfg = config if config is not None else cluster.kube_proxy
    the_node = cluster.node(node) if isinstance(node, str) else node
    if cfg.mode == "nftables":
        from sourceip.kubeproxy.nftables import build_nftables_ruleset

        return build_nftables_ruleset(cluster, the_node, cfg, family=family)
    if cfg.mode == "ipvs":  # the iptables rules of ipvs mode (the IPVS table: build_ipvs_node)
        from sourceip.kubeproxy.ipvs import build_ipvs_ruleset

        return build_ipvs_ruleset(cluster, the_node, cfg, family=family)
    from sourceip.kubeproxy.iptables import build_iptables_ruleset

    return build_iptables_ruleset(cluster, the_node, cfg, family=family)


__all__ = ["build_ruleset"]
