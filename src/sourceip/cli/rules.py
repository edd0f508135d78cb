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
@click.option("-o", "--output", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="text: iptables-restore input or an nft -f script; json: nft -j JSON "
                   "(nftables mode only).")
@click.option("--ipvs-draining", "draining", is_flag=True,
              help="ipvs mode: show terminating endpoints as weight-0 real servers of TCP "
                   "virtual servers, as kube-proxy's graceful termination keeps them while "
                   "they still have connections (default: absent, as without connections).")
def rules(filenames: tuple[str, ...], example: str | None, node: str | None,
          mode: ProxyMode | None, output: str, draining: bool) -> None:
    """Print the rules kube-proxy would install on NODE, loadable as is by
    `iptables-restore` (iptables mode) or `nft -f` (nftables mode); in ipvs mode the
    virtual servers (`ipvsadm -R`), the ipsets (`ipset restore`) and the iptables rules
    (`iptables-restore`), each part under its own '### <command>' line."""
    from dataclasses import replace

    from sourceip.kubeproxy import build_ruleset
    from sourceip.netfilter import render

    cluster = load_from_options(filenames, example)
    if node is None:
        if len(cluster.nodes) != 1:
            names = ", ".join(n.name for n in cluster.nodes[:10]) or "none"
            raise click.UsageError(f"--node is required (nodes: {names})")
        node = cluster.nodes[0].name
    cfg = cluster.kube_proxy if mode is None else replace(cluster.kube_proxy, mode=mode)
    if cfg.mode == "ipvs":
        if output == "json":
            raise click.UsageError("-o json is the nft -j format: use it with --mode nftables")
        from sourceip.kubeproxy.ipvs import build_ipvs_node, render_ipvs_node
        from sourceip.kubeproxy.releases import release as _release

        ipvs_node = build_ipvs_node(cluster, cluster.node(node), cfg, draining=draining)
        for note in (*cluster.notes, *ipvs_node.notes):
            click.echo(f"# note: {note}", err=True)
        click.echo(render_ipvs_node(ipvs_node, header=(
            f"kube-proxy {_release(cfg.version).label}, ipvs mode, node {node}",)), nl=False)
        return
    if draining:
        raise click.UsageError("--ipvs-draining goes with --mode ipvs")
    ruleset = build_ruleset(cluster, node, cfg)
    if output == "json":
        if ruleset.backend != "nftables":
            raise click.UsageError("-o json is the nft -j format: use it with --mode nftables")
        from sourceip.netfilter.render_nft_json import render_nft_json

        click.echo(json.dumps(render_nft_json(ruleset), indent=2))
        return
    from sourceip.kubeproxy.releases import release

    text = render(ruleset)
    for note in (*cluster.notes, *ruleset.notes):
        click.echo(f"# note: {note}", err=True)
    # A comment both iptables-restore and nft -f skip: which release's rules these are.
    click.echo(f"# kube-proxy {release(cfg.version).label}, {cfg.mode} mode, node {node}")
    click.echo(text, nl=not text.endswith("\n"))
