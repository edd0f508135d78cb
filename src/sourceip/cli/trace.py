"""``sourceip trace``: one connection hop by hop through the rules, conntrack and routing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sourceip.cli.common import (
    cluster_options,
    emit,
    ip_option_value,
    load_from_options,
    output_option,
)
from sourceip.errors import InputError, SourceIPError

if TYPE_CHECKING:  # `sourceip --help` imports this module: keep it light
    from sourceip.cluster.model import ProxyMode


def _syntax(parse: Any) -> Any:
    """A click callback that checks an option's syntax with ``parse`` (one of the tracer's
    ``parse_source`` / ``parse_target``): a typo is a usage error (exit 2) before anything is
    loaded."""
    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return None
        from sourceip.dataplane import tracer

        try:
            getattr(tracer, parse)(value)
        except SourceIPError as exc:
            raise click.BadParameter(exc.message, ctx=ctx, param=param) from None
        return value

    return check


def _ip_list(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
             ) -> tuple[str, ...]:
    for v in value:
        ip_option_value(ctx, param, v)
    return value


@click.command()
@cluster_options
@click.option("--from", "source", metavar="WHERE", callback=_syntax("parse_source"),
              help="pod/NS/NAME | node/NAME | external[=IP]")
@click.option("--to", "target", metavar="WHAT", callback=_syntax("parse_target"),
              help="svc/NS/NAME[:PORT] | IP:PORT | [IPv6]:PORT | node/NAME:NODEPORT (ports "
                   "1-65535)")
@click.option("--family", type=click.Choice(["4", "6"]), default=None,
              help="IP family of a svc/... or node/... target: its ClusterIP / node address "
                   "of that family (default: the Service's first ClusterIP, the node's IPv4 "
                   "address; an external=IP source picks its own family).")
@click.option("--via", metavar="NODE", help="With --from external only: for traffic to a "
              "LoadBalancer IP or externalIP, the node it arrives at (default: every node the "
              "LB would use).")
@click.option("--proto", type=click.Choice(["tcp", "udp", "sctp"]), default=None,
              help="Protocol (default: the Service port's, else tcp).")
@click.option("--node", metavar="NODE", help="Evaluate this node's rules alone (with --src, "
              "--dst, --dport), as kube-proxy's packet-flow tests do.")
@click.option("--src", metavar="IP", callback=ip_option_value,
              help="Source address for --node.")
@click.option("--dst", metavar="IP", callback=ip_option_value,
              help="Destination address for --node.")
@click.option("--dport", type=click.IntRange(1, 65535), help="Destination port for --node.")
@click.option("--flows", "flows", type=click.Path(dir_okay=False, allow_dash=True),
              help="JSON lines of {node, src, dst, dport[, proto]}: one JSON line out each.")
@click.option("--iptables-save", "ipt_save", type=click.Path(exists=True, dir_okay=False),
              help="Trace through rules dumped from a real node (needs --node or "
                   "--rules-node).")
@click.option("--nft-json", "nft_json", type=click.Path(exists=True, dir_okay=False),
              help="Trace through `nft -j list ruleset` output from a real node.")
@click.option("--dump", "dumps", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A real node's dump, any of: iptables-save (-c too), nft list ruleset (text "
                   "or -j JSON), ipset save, ipvsadm -Sn/-Ln (detected from the content; "
                   "repeat for several dumps of one node). Without -f/--example the dumps "
                   "are traced on their own.")
@click.option("--node-ip", "node_ips", multiple=True, callback=_ip_list, metavar="IP",
              help="With --dump: an address of the node the dumps come from (repeatable; "
                   "default: inferred from the dump).")
@click.option("--node-interface", metavar="NAME", help="With --dump on its own: the name of "
              "the node's uplink (e.g. ens5), where packets from outside arrive. Without it "
              "that name is unknown and a rule's -i on it forks the trace (CNI devices such "
              "as cni0, docker0, cali+ are told apart).")
@click.option("--rules-node", metavar="NODE", help="The node the dump was taken on "
              "(default: --node).")
@click.option("--mode", type=click.Choice(["iptables", "nftables", "ipvs"]), default=None,
              help="kube-proxy mode of generated rules.")
@click.option("--external-ip", default="203.0.113.10", show_default=True,
              callback=ip_option_value,
              help="Address of the external client for --from external (an IPv6 address "
                   "replaces the IPv6 client, 2001:db8:ffff::10 by default).")
@output_option(("text", "json", "yaml", "wide"))
def trace(filenames: tuple[str, ...], example: str | None, source: str | None,
          target: str | None, family: str | None, via: str | None, proto: str | None,
          node: str | None,
          src: str | None, dst: str | None, dport: int | None, flows: str | None,
          ipt_save: str | None, nft_json: str | None, dumps: tuple[str, ...],
          node_ips: tuple[str, ...], node_interface: str | None, rules_node: str | None,
          mode: ProxyMode | None, external_ip: str, output: str) -> None:
    """Follow one connection hop by hop: every rule it matches, each rewrite, every
    load-balancing branch with its probability, and whether the reply finds its way back."""
    from sourceip.dataplane.tracer import Tracer
    from sourceip.report.trace_text import render_trace

    if via is not None and source is not None and not source.startswith("external"):
        raise click.UsageError("--via applies to --from external only (a pod or node client "
                               "sends from its own node)")
    if via is not None and (node is not None or flows):
        raise click.UsageError("--via applies to --from external only, not to --node/--flows")
    standalone = bool(dumps or ipt_save or nft_json) and not filenames and not example
    node_dumps = None
    ipsets = {}
    ipvs_tables: dict[str, Any] = {}
    if dumps or standalone:
        if dumps and (ipt_save or nft_json):
            raise click.UsageError("give the dumps with --dump only (it reads iptables-save "
                                   "and nft JSON too)")
        if node_interface is not None and not standalone:
            raise click.UsageError("--node-interface goes with --dump on its own (with "
                                   "-f/--example the cluster's NetworkProfile names it)")
        node_dumps, cluster, dump_node = _load_dumps(
            list(dumps) or [p for p in (ipt_save, nft_json) if p], node_ips, filenames,
            example, rules_node or node, node_interface)
        assert node_dumps.ruleset is not None
        rulesets = {dump_node: node_dumps.ruleset}
        ipsets = {dump_node: node_dumps.ipsets}
        if node_dumps.ipvs:  # an ipvs-mode node: its virtual servers (dataplane/ipvs.py)
            from sourceip.netfilter.parse_ipvsadm import IPVSTable

            ipvs_tables = {dump_node: IPVSTable(virtual_servers=node_dumps.ipvs)}
        ipt_save = nft_json = None
    else:
        if node_ips or node_interface:
            raise click.UsageError("--node-ip and --node-interface go with --dump")
        cluster = load_from_options(filenames, example)
        rulesets = {}
    cfg = cluster.kube_proxy if mode is None else replace(cluster.kube_proxy, mode=mode)
    if ipt_save or nft_json:
        old_node = rules_node or node
        if old_node is None:
            raise click.UsageError("--iptables-save/--nft-json need --node or --rules-node")
        cluster.node(old_node)
        if ipt_save:
            from sourceip.netfilter.parse_iptables import parse_iptables_save

            rulesets[old_node] = parse_iptables_save(Path(ipt_save).read_text(),
                                                      source=ipt_save)
        else:
            from sourceip.netfilter.parse_nft import parse_nft_json

            rulesets[old_node] = parse_nft_json(Path(nft_json or "").read_text(),
                                                 source=nft_json or "")
    # A standalone dump's node is a stand-in: its interfaces (bridge ports) are not known.
    tracer = Tracer(cluster, cfg, rulesets=rulesets, external_ip=external_ip,
                    compile_all=flows is not None, ipsets=ipsets, ipvs=ipvs_tables,
                    interfaces_unknown=tuple(rulesets) if standalone else (),
                    uplink_unknown=tuple(rulesets) if standalone and not node_interface
                    else ())

    if flows:
        stream = click.open_file(flows, "r")
        for n, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                flow: dict[str, Any] = json.loads(line)
                result = tracer.trace_node(str(flow["node"]), str(flow["src"]),
                                           str(flow["dst"]), int(flow["dport"]),
                                           str(flow.get("proto", "tcp")))
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"bad flow: {exc}", file=flows, line=n) from None
            out = result.to_dict()
            out["input"] = flow
            click.echo(json.dumps(out))
        return
    if node is not None and (src or dst or dport):
        if not (src and dst and dport):
            raise click.UsageError("--node needs --src, --dst and --dport")
        result = tracer.trace_node(node, src, dst, dport, proto or "tcp")
    else:
        if not source or not target:
            raise click.UsageError("give --from and --to (or --node with --src/--dst/--dport, "
                                   "or --flows FILE)")
        lb_trace = None
        start = tracer.start(source)
        if start.kind == "external" and via is None and not rulesets:
            # A LoadBalancer IP from outside: through the load balancer in front (its health
            # checks pick the nodes; --via NODE traces one node as if the LB chose it).
            from sourceip.explain.lb_paths import trace_through_lb

            fam = int(family) if family else None
            ip, port, proto_, _desc = tracer.target(target, proto, fam)
            client = tracer.external_ips[ip.version] if start.ip is None or \
                start.ip.version != ip.version else start.ip
            lb_trace = trace_through_lb(cluster, ip, port, proto_, external_ip=str(client))
        result = lb_trace or tracer.trace(source, target, proto=proto, via=via,
                                          family=int(family) if family else None)
    if output in ("json", "yaml"):
        doc = result.to_dict()
        if node_dumps is not None:
            doc["dump"] = node_dumps.to_dict()
        emit(doc, output)
    else:
        from sourceip.report.term import detect, wrap_lines

        term = detect()
        text = render_trace(result, wide=output == "wide", term=term)
        if node_dumps is not None:  # what the dumps are, wrapped to the terminal as the trace
            text = "\n".join(wrap_lines(node_dumps.lines(), term.width, hang=4)) + "\n" + text
        emit(text, "text")


STAND_IN_NODE_IP = "192.0.2.1"  # TEST-NET-1 (RFC 5737): never a real node's address


def _load_dumps(paths: list[str], node_ips: tuple[str, ...], filenames: tuple[str, ...],
                example: str | None, node_name: str | None,
                node_interface: str | None = None) -> tuple[Any, Any, str]:
    """Read the dumps of one node; the cluster to trace them in: the one given (-f/--example,
    the dumps replace that node's rules) or a one-node cluster made from the dumps."""
    from sourceip.errors import TraceError
    from sourceip.netfilter.dumps import load_node_dumps

    nd = load_node_dumps(paths, node_ips)
    if nd.mode == "ipvs" and not nd.ipvs:
        # The rules say ipvs mode, but without the virtual servers the DNAT is unknown: a
        # trace would say "passed" where IPVS sends the packet to an endpoint.
        raise TraceError("kube-proxy's ipvs rules/ipsets present (KUBE-CLUSTER-IP): this node "
                         "runs kube-proxy in ipvs mode; add its `ipvsadm -Sn` (or -Ln) dump "
                         "with --dump to trace the virtual servers", file=paths[0])
    if nd.ruleset is None:
        raise InputError("the dumps hold no rules (ipsets or IPVS only): add the node's "
                         "iptables-save or nft list ruleset", file=paths[0])
    if filenames or example:
        cluster = load_from_options(filenames, example)
        if node_name is None:
            raise click.UsageError("--dump with a cluster (-f/--example) needs --node or "
                                   "--rules-node: the node the dumps come from")
        cluster.node(node_name)
        return nd, cluster, node_name
    from sourceip.cluster import Cluster, KubeProxyConfig, NetworkProfile, Node
    from sourceip.net.addr import parse_ip

    if not nd.node_ips:
        nd.node_ips = (parse_ip(STAND_IN_NODE_IP),)
        nd.node_ips_from += f"; {STAND_IN_NODE_IP} (TEST-NET-1) stands in for the node"
    ips = nd.node_ips
    name = node_name or "node"
    kp = KubeProxyConfig(mode="nftables" if nd.mode == "nftables" else
                         "ipvs" if nd.mode == "ipvs" else "iptables")
    nd.notes.append("the node's devices are not known: '(unknown)' stands for a --node "
                    "flow's input and every route's output, and a rule with -i/-o on them "
                    "forks the trace" + (
                        "; eth0 stands in for the uplink packets from outside arrive on "
                        "(CNI devices such as docker0, cni0, cali+ are told apart from it; "
                        "--node-interface NAME names it)" if node_interface is None else
                        f"; packets from outside arrive on {node_interface}"))
    profile = NetworkProfile() if node_interface is None else \
        NetworkProfile(node_interface=node_interface)
    return nd, Cluster(nodes=(Node(name=name, internal_ips=ips),), kube_proxy=kp,
                       profile=profile), name
