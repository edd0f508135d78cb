"""``sourceip explain``: for each Service, every path, what the pod sees, why, and the fix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from sourceip.cli.common import (
    WHAT_TO_FEED,
    cluster_options,
    emit,
    ip_option_value,
    load_from_options,
    missing_inputs,
    output_option,
)
from sourceip.errors import InputError

if TYPE_CHECKING:  # `sourceip --help` imports this module: keep it light
    from sourceip.cluster.cluster import Cluster
    from sourceip.cluster.model import ProxyMode
    from sourceip.explain import Explainer
    from sourceip.explain.engine import ServiceExplanation

AUTO_SAMPLE_ABOVE = 100


@click.command()
@cluster_options
@click.argument("services", nargs=-1, metavar="[SERVICE...]")
@click.option("-n", "--namespace", default=None, help="Only Services of this namespace "
              "(SERVICE names are looked up here too).")
@click.option("-A", "--all-namespaces", "all_ns", is_flag=True,
              help="Services of every namespace (the default without -n).")
@click.option("--mode", type=click.Choice(["iptables", "nftables", "ipvs"]), default=None,
              help="kube-proxy mode (default: the KubeProxyConfiguration's, else iptables).")
@click.option("--diagram/--no-diagram", default=False,
              help="Draw each path as ASCII art (client, nodes, endpoint, where SNAT happens).")
@click.option("--external-ip", default="203.0.113.10", show_default=True,
              callback=ip_option_value,
              help="Address of the external client used for external paths.")
@click.option("--sample-nodes", type=click.IntRange(0), default=None,
              help="Trace the endpoints of at most K nodes per endpoint condition for each "
                   "Service (0: every endpoint). Default: every endpoint up to "
                   f"{AUTO_SAMPLE_ABOVE} nodes, 3 above.")
@output_option(("text", "wide", "json", "yaml"))
def explain(filenames: tuple[str, ...], example: str | None, services: tuple[str, ...],
            namespace: str | None, all_ns: bool, mode: ProxyMode | None, diagram: bool,
            external_ip: str, sample_nodes: int | None, output: str) -> None:
    """For every path to each SERVICE (all Services by default): the source IP the pod sees,
    whether it is the real client, the node and rule that rewrote it, and what to change."""
    from sourceip.report.explain_text import render_explanations

    cluster, results, direct, notes, untraced = run_explain(
        filenames, example, services, namespace, all_ns, mode, external_ip, sample_nodes,
        progress=output in ("text", "wide"))
    if output in ("json", "yaml"):
        emit({"services": [r.to_dict() for r in results],
              **({"direct": [d.to_dict() for d in direct]} if direct else {}),
              "notes": notes}, output)
    else:
        from sourceip.report.term import detect, wrap_lines

        term = detect()
        text = render_explanations(results + direct, wide=output == "wide", diagrams=diagram,
                                   term=term)
        if notes:
            text += "\n" + "\n".join(wrap_lines([f"note: {n}" for n in notes], term.width))
        emit(text, "text")
    if untraced:
        why = "no Nodes were given" if not cluster.nodes else "see the notes above"
        raise InputError(f"no path could be traced for any Service ({why}); give Nodes, Pods "
                         f"and EndpointSlices too, e.g. `{WHAT_TO_FEED}`")


def run_explain(filenames: tuple[str, ...], example: str | None, services: tuple[str, ...],
                namespace: str | None, all_ns: bool, mode: ProxyMode | None, external_ip: str,
                sample_nodes: int | None, *, progress: bool
                ) -> tuple[Cluster, list[ServiceExplanation], list[Any], list[str], bool]:
    """What ``explain`` computes for these options: the cluster, the Service explanations, the
    direct paths, the notes, and whether nothing could be traced for any Service (``report``
    renders the same)."""
    from dataclasses import replace

    from sourceip.explain import Explainer

    cluster = load_from_options(filenames, example)
    if mode is not None:
        cluster = cluster.with_(kube_proxy=replace(cluster.kube_proxy, mode=mode))
    names: list[str] | None = None
    if services:
        ns = namespace or "default"
        names = [s if "/" in s else f"{ns}/{s}" for s in services]
    elif namespace and not all_ns:
        names = [s.key for s in cluster.services if s.namespace == namespace and s.proxied]
        if not names:
            raise click.UsageError(f"no proxied Service in namespace {namespace!r}")
    notes = list(cluster.notes)
    if sample_nodes is None:
        sample_nodes = 3 if len(cluster.nodes) > AUTO_SAMPLE_ABOVE else 0
        if sample_nodes:
            notes.append(f"large cluster ({len(cluster.nodes)} nodes): for each Service the "
                         "endpoints of at most 3 nodes per endpoint condition were traced; "
                         "outcome probabilities are those of that sample "
                         "(--sample-nodes 0 traces every endpoint)")
    direct = [] if names else _direct(cluster, external_ip, namespace if not all_ns else None)
    if not any(s.proxied for s in cluster.services) and not names and not direct:
        raise InputError("nothing to explain: no Service that kube-proxy proxies was given; "
                         f"feed Services with their Nodes and Pods, e.g. `{WHAT_TO_FEED}`")
    explainer = Explainer(cluster, external_ip=external_ip, sample_nodes=sample_nodes or None)
    results = _explain_all(explainer, cluster, names, progress=progress)
    if cluster.ingresses:  # Ingress routes that no controller serves, missing backends, ...
        notes.extend(explainer.discovery.findings)
    # What the input lacks, per Service; nothing traced for any Service is an error (exit 1)
    # so that an incomplete `kubectl get` piped in does not look like an answer.
    for key in dict.fromkeys(r.service for r in results):
        notes.extend(f"Service {key}: {m}" for m in missing_inputs(cluster, cluster.service(key)))
    untraced = bool(results) and not any(r.paths or not _proxied(cluster, r.service)
                                         for r in results)
    return cluster, results, direct, notes, untraced


def _explain_all(explainer: Explainer, cluster: Cluster, names: list[str] | None, *,
                 progress: bool) -> list[ServiceExplanation]:
    """``explainer.explain(names)`` one Service at a time, with a progress bar on stderr (a
    terminal only, after a second of work)."""
    import gc

    from sourceip.report.term import progress as progress_bar

    keys = ([cluster.service(n).key for n in names] if names
            else [s.key for s in cluster.services if s.proxied])
    out: list[ServiceExplanation] = []
    was_enabled = gc.isenabled()
    gc.disable()  # as Explainer.explain does, across all Services
    try:
        with progress_bar("explaining Services", total=len(keys), enabled=progress) as bar:
            for key in keys:
                out.extend(explainer.explain([key]))
                bar.advance()
    finally:
        if was_enabled:
            gc.enable()
    return out


def _direct(cluster: Cluster, external_ip: str, namespace: str | None
            ) -> list[ServiceExplanation]:
    """Direct paths (hostNetwork pod ports, hostPorts) of every namespace or one."""
    from sourceip.explain import Explainer

    found = Explainer(cluster, external_ip=external_ip).explain_direct()
    return [d for d in found if namespace is None or d.service.startswith(f"pod/{namespace}/")]


def _proxied(cluster: Cluster, key: str) -> bool:
    return cluster.service(key).proxied
