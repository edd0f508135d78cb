"""``sourceip report``: the explain results as one self-contained HTML file (drawings of every
path, the verdicts, the fixes and their costs), rendered by ``report.html`` from the same
document ``sourceip explain -o json`` prints, or from such a document saved earlier
(``--from-json``)."""

from __future__ import annotations

import json
from typing import Any

import click

from sourceip.cli.common import (
    WHAT_TO_FEED,
    cluster_options,
    ip_option_value,
)
from sourceip.errors import InputError


def explain_document(filenames: tuple[str, ...], example: str | None,
                     services: tuple[str, ...], namespace: str | None, all_ns: bool,
                     mode: str | None, external_ip: str, sample_nodes: int | None
                     ) -> dict[str, Any]:
    """The document ``sourceip explain ... -o json`` prints for the same options (same
    Services, direct paths and notes; ``tests/report`` checks the two are equal)."""
    from sourceip.cli.explain import run_explain

    _cluster, results, direct, notes, untraced = run_explain(
        filenames, example, services, namespace, all_ns, mode,  # type: ignore[arg-type]
        external_ip, sample_nodes, progress=True)
    if untraced:
        why = "no Nodes were given" if not _cluster.nodes else "see the notes"
        raise InputError(f"no path could be traced for any Service ({why}); give Nodes, Pods "
                         f"and EndpointSlices too, e.g. `{WHAT_TO_FEED}`")
    return {"services": [r.to_dict() for r in results],
            **({"direct": [d.to_dict() for d in direct]} if direct else {}),
            "notes": notes}


def read_document(path: str) -> dict[str, Any]:
    """A saved ``explain -o json`` document (``-`` for stdin); wrong input is an InputError."""
    import sys

    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as exc:
        raise InputError(f"cannot read it: {exc.strerror}", file=path) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{exc.lineno}: not JSON: {exc.msg}", file=path) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), list):
        raise InputError("not the output of `sourceip explain -o json` (no \"services\" list)",
                         file=path)
    return doc


def write_report(doc: dict[str, Any], output: str, title: str) -> None:
    from sourceip import __version__
    from sourceip.report.html import render_report

    text = render_report(doc, title=title, version=__version__)
    if output == "-":
        click.echo(text, nl=False)
        return
    try:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise click.BadParameter(f"cannot write {output}: {exc.strerror}",
                                 param_hint="-o/--output") from None
    click.echo(f"wrote {output} ({len(text.encode()) / 1024:.0f} KiB)", err=True)


@click.command()
@cluster_options
@click.argument("services", nargs=-1, metavar="[SERVICE...]")
@click.option("-n", "--namespace", default=None, help="Only Services of this namespace.")
@click.option("-A", "--all-namespaces", "all_ns", is_flag=True,
              help="Services of every namespace (the default without -n).")
@click.option("--mode", type=click.Choice(["iptables", "nftables", "ipvs"]), default=None,
              help="kube-proxy mode (default: the KubeProxyConfiguration's, else iptables).")
@click.option("--external-ip", default="203.0.113.10", show_default=True,
              callback=ip_option_value,
              help="Address of the external client used for external paths.")
@click.option("--sample-nodes", type=click.IntRange(0), default=None,
              help="As for explain: trace the endpoints of at most K nodes per endpoint "
                   "condition (0: every endpoint).")
@click.option("--from-json", "from_json", metavar="FILE", default=None,
              help="Render a saved `sourceip explain -o json` document (- for stdin) instead "
                   "of explaining a cluster.")
@click.option("--title", default=None, help="The report's title (default: Source IP report).")
@click.option("-o", "--output", "output", metavar="FILE", required=True,
              help="Where to write the HTML (- for stdout).")
def report(filenames: tuple[str, ...], example: str | None, services: tuple[str, ...],
           namespace: str | None, all_ns: bool, mode: str | None, external_ip: str,
           sample_nodes: int | None, from_json: str | None, title: str | None,
           output: str) -> None:
    """One self-contained HTML file: every path to each SERVICE drawn (the client, the load
    balancer and its health checks, the nodes, the ingress controller, the pod), the address
    the pod sees, the hop and rule that rewrote it, the fixes and their costs."""
    from sourceip.report.html import DEFAULT_TITLE

    if from_json is not None:
        if filenames or example or services or namespace:
            raise click.UsageError("--from-json renders a saved explain document: give no "
                                   "cluster (-f/--example) and no SERVICE with it")
        doc = read_document(from_json)
    else:
        doc = explain_document(filenames, example, services, namespace, all_ns, mode,
                               external_ip, sample_nodes)
    write_report(doc, output, title or DEFAULT_TITLE)
