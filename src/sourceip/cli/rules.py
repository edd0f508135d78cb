"""``sourceip rules``: the ruleset kube-proxy would install on a node."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from sourceip.cli.common import cluster_options, load_from_options

if TYPE_CHECKING:  # `sourceip --help` imports this module: keep it light
    from sourceip.cluster.model import ProxyMode


@click.command()
@cluster_options
@click.option("--node", "node", metavar="NODE", help="The node whose rules to print "
              "(default: the only node, else required).")
@click.option("--mode", type=click.Choice(["iptables", "nftables", "ipvs"]), default=None,
              help="kube-proxy mode (default: the KubeProxyConfiguration's, else iptables). "
                   "ipvs prints three parts, each under a '### <command>' line: ipvsadm -Sn, "
                   "ipset save, iptables-save.")
@click.option("--family", "family", type=click.Choice(["4", "6"]), default=None,
              help="The IP family whose proxier's rules to print (default: every family the "
                   "cluster serves; a dual-stack cluster prints IPv4, then IPv6).")
@click.option("-o", "--output", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="text: iptables-restore input or an nft -f script; json: nft -j JSON "
                   "(nftables mode only).")
@click.option("--ipvs-draining", "draining", is_flag=True,
              help="ipvs mode: show terminating endpoints as weight-0 real servers of TCP "
                   "virtual servers, as kube-proxy's graceful termination keeps them while "
                   "they still have connections (default: absent, as without connections).")
def rules(filenames: tuple[str, ...], example: str | None, node: str | None,
          mode: ProxyMode | None, family: str | None, output: str, draining: bool) -> None:
    """Print the rules kube-proxy would install on NODE, loadable as is by
    `iptables-restore` (iptables mode) or `nft -f` (nftables mode); in ipvs mode the
    virtual servers (`ipvsadm -R`), the ipsets (`ipset restore`) and the iptables rules
    (`iptables-restore`), each part under its own '### <command>' line.

    kube-proxy runs one proxier per IP family. For a dual-stack cluster the nftables script
    holds both tables (`ip kube-proxy`, then `ip6 kube-proxy`: one `nft -f` loads both); in
    iptables mode the IPv4 rules come under a '### iptables-restore' line and the IPv6 rules
    under '### ip6tables-restore', each loadable by its tool. --family 4|6 prints one."""
    from dataclasses import replace

    from sourceip.kubeproxy import build_ruleset
    from sourceip.kubeproxy.releases import release
    from sourceip.netfilter import render

    cluster = load_from_options(filenames, example)
    if node is None:
        if len(cluster.nodes) != 1:
            names = ", ".join(n.name for n in cluster.nodes[:10]) or "none"
            raise click.UsageError(f"--node is required (nodes: {names})")
        node = cluster.nodes[0].name
    cfg = cluster.kube_proxy if mode is None else replace(cluster.kube_proxy, mode=mode)
    families = (int(family),) if family else tuple(sorted(cluster.ip_families))
    if cfg.mode == "ipvs":
        if output == "json":
            raise click.UsageError("-o json is the nft -j format: use it with --mode nftables")
        if 6 in families:
            raise click.UsageError(
                "ipvs mode is modelled for IPv4 only" + ("" if family else
                                                        ": use --family 4"))
        from sourceip.kubeproxy.ipvs import build_ipvs_node, render_ipvs_node

        ipvs_node = build_ipvs_node(cluster, cluster.node(node), cfg, draining=draining)
        for note in (*cluster.notes, *ipvs_node.notes):
            click.echo(f"# note: {note}", err=True)
        click.echo(render_ipvs_node(ipvs_node, header=(
            f"kube-proxy {release(cfg.version).label}, ipvs mode, node {node}",)), nl=False)
        return
    if draining:
        raise click.UsageError("--ipvs-draining goes with --mode ipvs")
    rulesets = [build_ruleset(cluster, node, cfg, family=f) for f in families]
    if output == "json":
        if cfg.mode != "nftables":
            raise click.UsageError("-o json is the nft -j format: use it with --mode nftables")
        from sourceip.netfilter.render_nft_json import render_nft_json

        items: list[object] = []
        for rs in rulesets:  # one document: a single metainfo, then each family's table
            part = render_nft_json(rs)["nftables"]
            items.extend(part if not items else part[1:])
        click.echo(json.dumps({"nftables": items}, indent=2))
        return
    for note in (*cluster.notes, *(n for rs in rulesets for n in rs.notes)):
        click.echo(f"# note: {note}", err=True)
    label = release(cfg.version).label
    for f, rs in zip(families, rulesets, strict=True):
        text = render(rs)
        if len(families) > 1 and cfg.mode == "iptables":
            # two inputs for two tools: each part under a '### <command>' line, as ipvs mode
            click.echo(f"### {'iptables' if f == 4 else 'ip6tables'}-restore")
        # A comment both iptables-restore and nft -f skip: which release's rules these are.
        fam = f", IPv{f}" if family or cluster.dual_stack or f == 6 else ""
        click.echo(f"# kube-proxy {label}, {cfg.mode} mode, node {node}{fam}")
        click.echo(text, nl=not text.endswith("\n"))
