"""``sourceip lab``: build the cluster in network namespaces, load kube-proxy's rules, probe
every explain path with real connections, and compare the source IPs with the predictions.

Exit codes: 0 every path agrees (or the command succeeded), 1 a disagreement or a lab failure,
2 usage, 3 a precondition is missing (not root, a tool absent) — the message says what to
install.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import TYPE_CHECKING, Any, cast

import click

from sourceip.cli.common import cluster_options, load_from_options
from sourceip.errors import LabError

if TYPE_CHECKING:
    from sourceip.cluster.model import ProxyMode

MODE = click.option("--mode", type=click.Choice(["iptables", "nftables", "ipvs"]), default=None,
                    help="kube-proxy mode (default: the KubeProxyConfiguration's).")
BACKEND = click.option("--iptables", "iptables_backend", type=click.Choice(["legacy", "nft"]),
                       default="legacy", show_default=True,
                       help="iptables back end for iptables mode (iptables-legacy-restore or "
                            "iptables-nft-restore).")
LB_ATTEMPTS = 6
NO_RULES = click.option("--no-rules", is_flag=True,
                        help="Build the topology without kube-proxy's rules.")


def _plan(filenames: tuple[str, ...], example: str | None, mode: str | None,
          iptables_backend: str, no_rules: bool) -> Any:
    from sourceip.lab.plan import plan_lab

    cluster = load_from_options(filenames, example)
    if mode is not None:  # predictions must come from the mode the lab loads
        from dataclasses import replace

        cluster = cluster.with_(kube_proxy=replace(cluster.kube_proxy,
                                                   mode=cast("ProxyMode", mode)))
    return cluster, plan_lab(cluster, mode=mode, iptables_backend=iptables_backend,
                             rules=not no_rules)


@click.group()
def lab() -> None:
    """Build the cluster for real in network namespaces (root) and check the predictions."""


# ----------------------------------------------------------------------------- run


def _l7(xff: str | None, resolved: str | None) -> str:
    """`` XFF 192.168.2.1 → 192.168.2.1``: what an HTTP path's app resolves, and from what."""
    return f" XFF {xff or '-'} → {resolved or 'none'}"


def _observed_text(observations: Any) -> str:
    seen: list[str] = []
    for o in observations:
        text = o.seen_source if o.disposition == "delivered" else o.disposition
        if o.disposition == "delivered" and o.headers is not None:
            text = f"{o.seen_source}{_l7(o.header('X-Forwarded-For'), o.resolved_client)}"
        elif o.disposition == "delivered" and o.pod:
            text = f"{o.seen_source} ({o.pod})"
        if o.disposition in ("error", "failed"):
            text = f"{o.disposition}: {o.error}"
        if text not in seen:
            seen.append(str(text))
    return " | ".join(seen) or "-"


def _predicted_text(prediction: Any) -> str:
    if prediction is None:
        return "(no prediction)"
    parts = []
    for o in prediction.outcomes:
        text = o.seen_source if o.disposition == "delivered" else o.disposition
        if o.disposition == "delivered" and o.headers is not None:
            xff = next((v for n, v in o.headers if n.lower() == "x-forwarded-for"), None)
            text = f"{o.seen_source}{_l7(xff, o.resolved_client)}"
        if len(prediction.outcomes) > 1:
            text = f"{text} {o.probability:.0%}"
        parts.append(str(text))
    return " | ".join(parts)


def _agree_style(col: int, text: str) -> str | None:
    if col != 0:
        return None
    return "good" if text == "agree" else "bad" if text == "DISAGREE" else None


def render_agreements(agreements: Any, term: Any = None) -> str:
    """The comparison table: one row per path, its predicted and observed source IP, laid out
    to ``term`` (a ``report.term.Term``; default: 100 columns, no colour). Long cells wrap;
    nothing is cut."""
    from sourceip.report.term import PLAIN, table, wrap_lines

    term = term or PLAIN
    rows = []
    for a in agreements:
        target = a.spec.target + (f" via {a.spec.via_node}" if a.spec.via_node
                                  and a.spec.client == "external" else "")
        rows.append([
            "agree" if a.agree else "DISAGREE",
            a.spec.description or a.spec.id,
            f"{a.spec.client} → {target}",
            _predicted_text(a.prediction),
            _observed_text(a.observations),
        ])
    lines = table(["", "PATH", "CLIENT → TARGET", "PREDICTED", "OBSERVED"], rows, term=term,
                  cell_style=_agree_style)
    lines += wrap_lines([f"DISAGREE {a.spec.id}: {a.reason}" for a in agreements
                         if not a.agree and a.reason and a.prediction is not None], term.width)
    return "\n".join(lines)


def render_health_checks(rows: Any, term: Any = None) -> str:
    """The load balancers' health checks: node, check, predicted and observed status."""
    from sourceip.report.term import PLAIN, table

    term = term or PLAIN
    body = []
    for h in rows:
        check = (f"{h['kind']} :{h['port']}{h['path']}" if h["kind"] != "none"
                 else "none")
        node = h["node"] + (" (IPv6)" if h.get("family") == 6 else "")
        body.append(["agree" if h["agree"] else "DISAGREE", h["service"], node, check,
                     str(h["predicted"]), str(h["observed"]), "in" if h["in_pool"] else "out"])
    lines = ["load balancer health checks:"]
    lines += table(["", "SERVICE", "NODE", "CHECK", "PREDICTED", "OBSERVED", "POOL"], body,
                   term=term, indent=2, cell_style=_agree_style)
    return "\n".join(lines)


@lab.command()
@cluster_options
@MODE
@BACKEND
@NO_RULES
@click.option("-o", "--output", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@click.option("--dry-run", is_flag=True, help="Print the shell script that builds the lab.")
@click.option("--keep", is_flag=True,
              help="After probing, keep the lab up until Ctrl-C (probe it with `lab probe`).")
@click.option("--attempts", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Probes per path when the prediction splits between endpoints.")
@click.option("--service", "services", multiple=True, metavar="NS/NAME",
              help="Only these Services' paths (repeatable).")
@click.option("--report", "report_file", metavar="FILE", default=None,
              help="Also write the HTML report (as `sourceip report`) of the paths the lab "
                   "probed, with the address observed beside each prediction.")
def run(filenames: tuple[str, ...], example: str | None, mode: str | None,
        iptables_backend: str, no_rules: bool, output: str, dry_run: bool, keep: bool,
        attempts: int, services: tuple[str, ...], report_file: str | None) -> None:
    """Build the cluster, probe every explain path, print predicted vs observed source IPs.
    Exit 0 only when every path agrees."""
    from sourceip.lab.compare import (
        PredictionsUnavailable,
        compare,
        compare_all,
        explain_predictions,
    )
    from sourceip.lab.plan import default_probe_specs, render_script
    from sourceip.lab.run import Lab, wait_for_signal

    cluster, plan = _plan(filenames, example, mode, iptables_backend, no_rules)
    if dry_run:
        click.echo(render_script(plan, python=sys.executable))
        return
    notes = list(plan.notes)
    try:
        predictions, pnotes = explain_predictions(cluster, external_ip=plan.external_ip,
                                                  services=services or None,
                                                  external_ip6=plan.external_ip6)
        notes += pnotes
        specs = [p.spec for p in predictions]
    except PredictionsUnavailable as exc:
        predictions = []
        click.echo(f"predictions are unavailable: {exc}; showing what the lab observes",
                   err=True)
        specs = default_probe_specs(cluster, plan)
        if services:
            wanted = {s if "/" in s else f"default/{s}" for s in services}
            specs = [s for s in specs if s.id.split(":", 1)[0] in wanted]
    if not specs:
        raise LabError("nothing to probe: no Service path has a client in this cluster")
    # through the load balancer: several connections (source ports spread them over the pool)
    per_spec = {p.spec.id: max(LB_ATTEMPTS, attempts) if p.spec.via_lb
                else attempts if p.split else 1 for p in predictions}
    lab_ = Lab(plan)
    from sourceip.report.term import progress

    with progress(f"building lab {plan.runid} ({len(plan.namespaces)} namespaces)",
                  enabled=output == "text") as bar, lab_:
        bar.update(f"probing {len(specs)} paths")
        observations = lab_.probe(specs, attempts=per_spec or 1)
        bar.stop()  # before anything is printed
        if predictions:
            agreements = compare_all(predictions, observations)
        else:
            by_id: dict[str, list[Any]] = {}
            for o in observations:
                by_id.setdefault(o.spec_id, []).append(o)
            agreements = [compare(s, None, by_id.get(s.id, [])) for s in specs]
        notes += lab_.notes
        asked = sorted({a.spec.target for a in agreements for o in a.observations
                        if isinstance(o.proxy, str) and o.proxy.startswith("sent by the probe")})
        if asked:
            notes.append("these listeners close connections without a PROXY header, so their "
                         "L4 probes announced themselves with PROXY UNKNOWN to learn the source "
                         "address: " + ", ".join(asked))
        _print_run(plan, lab_, agreements, notes, output)
        if report_file:
            _write_report(report_file, cluster, plan, lab_, agreements, notes, services)
        if keep:
            click.echo(f"lab {plan.runid} kept up: `sourceip lab probe --run {plan.runid} "
                       "--from ... --to IP:PORT`; Ctrl-C to tear down", err=True)
            with contextlib.suppress(KeyboardInterrupt, SystemExit):
                wait_for_signal()
    bad = sum(1 for a in agreements if not a.agree)
    bad_checks = sum(1 for h in lab_.health_checks if not h["agree"])
    if bad or bad_checks:
        # exit 1 (ctx.exit(1) would be swallowed: main runs click with standalone_mode=False)
        raise LabError(f"{bad} of {len(agreements)} paths do not agree with the prediction"
                       + (f"; {bad_checks} load-balancer health checks differ from it"
                          if bad_checks else ""))


def _write_report(path: str, cluster: Any, plan: Any, lab_: Any, agreements: Any,
                  notes: list[str], services: tuple[str, ...]) -> None:
    """The HTML report of the paths the lab probed (explain per node, with the lab's external
    client, as ``explain.probes`` made the probes: probe ``SVC:PORT#N`` is path N), each path
    carrying what the lab observed (``"lab"``), and the run's summary."""
    from sourceip.cli.report import write_report
    from sourceip.explain import Explainer
    from sourceip.explain.probes import path_probe_id

    by_id: dict[str, list[Any]] = {}
    for a in agreements:
        by_id.setdefault(a.spec.id.removesuffix("+forged"), []).append(a)
    explainer = Explainer(cluster, external_ip=plan.external_ip, expand_groups=True)
    if plan.external_ip6:
        explainer.external_ip6 = plan.external_ip6
    docs = []
    for e in explainer.explain(list(services) or None):
        d = e.to_dict()
        for n, p in enumerate(d["paths"]):
            found = by_id.get(path_probe_id(e.service, e.port, e.family, n))
            if found is not None:
                p["lab"] = [{"probe": a.spec.id, "agree": a.agree,
                             "predicted": _predicted_text(a.prediction),
                             "observed": _observed_text(a.observations),
                             "reason": a.reason} for a in found]
        docs.append(d)
    doc = {"services": docs, "notes": notes, "lab": {
        "runid": plan.runid, "mode": plan.mode, "external_ip": plan.external_ip,
        **({"external_ip6": plan.external_ip6} if plan.external_ip6 else {}),
        "results_total": len(agreements),
        "results_agree": sum(1 for a in agreements if a.agree),
        "health_checks": lab_.health_checks, "notes": []}}
    write_report(doc, path, f"Source IP report, checked in lab {plan.runid}")


def _print_run(plan: Any, lab_: Any, agreements: Any, notes: list[str], output: str) -> None:
    agree = all(a.agree for a in agreements)
    if output == "json":
        click.echo(json.dumps({
            "runid": plan.runid,
            "mode": plan.mode,
            "iptables": plan.iptables_backend if plan.mode == "iptables" else None,
            "rules_loaded": plan.rules_loaded,
            "external_ip": plan.external_ip,
            **({"external_ip6": plan.external_ip6} if plan.external_ip6 else {}),
            "timings": {k: round(v, 3) for k, v in lab_.timings.items()},
            "notes": notes,
            "agree": agree and all(h["agree"] for h in lab_.health_checks),
            "health_checks": lab_.health_checks,
            "results": [a.to_json() for a in agreements],
        }, indent=2))
        return
    t = lab_.timings
    backend = f" ({plan.iptables_backend})" if plan.mode == "iptables" else ""
    click.echo(f"lab {plan.runid}: {len(plan.namespaces)} namespaces, kube-proxy "
               f"{plan.mode}{backend}"
               + ("" if plan.rules_loaded else " NOT loaded")
               + f", external client {plan.external_ip}"
               + (f" / {plan.external_ip6}" if plan.external_ip6 != plan.external_ip
                  and plan.external_ip6 else "")
               + f", up in {t.get('up', 0):.2f}s")
    from sourceip.report.term import detect, wrap_lines

    term = detect()
    click.echo(render_agreements(agreements, term))
    if lab_.health_checks:
        click.echo(render_health_checks(lab_.health_checks, term))
    for line in wrap_lines([f"note: {n}" for n in notes], term.width):
        click.echo(line)
    n_ok = sum(1 for a in agreements if a.agree)
    click.echo(f"{n_ok}/{len(agreements)} paths agree")


# ----------------------------------------------------------------------------- up / probe / down


@lab.command()
@cluster_options
@MODE
@BACKEND
@NO_RULES
def up(filenames: tuple[str, ...], example: str | None, mode: str | None,
       iptables_backend: str, no_rules: bool) -> None:
    """Build the lab and keep it up until Ctrl-C / SIGTERM / `sourceip lab down RUNID`."""
    from sourceip.lab.run import Lab, wait_for_signal

    _cluster, plan = _plan(filenames, example, mode, iptables_backend, no_rules)
    lab_ = Lab(plan)
    try:
        with lab_:
            click.echo(f"lab {plan.runid} is up: {len(plan.namespaces)} namespaces in "
                       f"{lab_.timings.get('up', 0):.2f}s; external client {plan.external_ip}")
            from sourceip.report.term import detect, table

            term = detect()
            for line in table(["CLIENT", "NAMESPACE"], [list(c) for c in plan.clients],
                              term=term, indent=2):
                click.echo(line)
            if lab_.health_checks:
                click.echo(render_health_checks(lab_.health_checks, term))
            for note in (*plan.notes, *lab_.notes):
                click.echo(f"note: {note}")
            click.echo(f"probe: sourceip lab probe --run {plan.runid} --from CLIENT "
                       "--to IP:PORT")
            click.echo(f"stop:  Ctrl-C, or sourceip lab down {plan.runid}")
            sys.stdout.flush()
            wait_for_signal()
    except (KeyboardInterrupt, SystemExit):
        pass  # the way to end `lab up`; the with block has torn the lab down
    click.echo(f"lab {plan.runid} torn down")


def _parse_target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"{text!r} is not IP:PORT", param_hint="--to")
    return host.strip("[]"), int(port)


@lab.command()
@click.option("--run", "runid", required=True, metavar="RUNID", help="A lab kept up by `lab up`.")
@click.option("--from", "client", required=True, metavar="CLIENT",
              help="pod/NS/NAME | node/NAME | external")
@click.option("--to", "target", required=True, metavar="IP:PORT")
@click.option("--proto", type=click.Choice(["tcp", "udp"]), default="tcp", show_default=True)
@click.option("--via", "via_node", metavar="NODE",
              help="External client: the node the router sends the packet to (LB IPs, "
                   "externalIPs).")
@click.option("--attempts", type=click.IntRange(1, 50), default=1, show_default=True)
@click.option("-o", "--output", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def probe(runid: str, client: str, target: str, proto: str, via_node: str | None,
          attempts: int, output: str) -> None:
    """One real connection (or a few) from CLIENT to IP:PORT in a running lab."""
    from sourceip.lab.model import ProbeSpec
    from sourceip.lab.run import probe_run

    ip, port = _parse_target(target)
    spec = ProbeSpec(id="probe", client=client, proto=proto, dst_ip=ip, dst_port=port,
                     via_node=via_node)
    observations = probe_run(runid, [spec], attempts=attempts)
    if output == "json":
        for o in observations:
            click.echo(json.dumps(o.to_json()))
        return
    for o in observations:
        click.echo(f"{client} → {spec.target}: {o.summary()}  ({o.elapsed_ms:.0f} ms)")


@lab.command()
@click.argument("runid", required=False)
@click.option("--all-stale", is_flag=True, help="Remove every run whose owner process is gone.")
def down(runid: str | None, all_stale: bool) -> None:
    """Tear down lab RUNID (asking its owner first), or every stale run."""
    from sourceip.lab.run import clean_stale, down_run, orphan_namespaces

    if bool(runid) == all_stale:
        raise click.UsageError("give a RUNID or --all-stale")
    if runid:
        click.echo(down_run(runid))
        return
    cleaned = clean_stale()
    click.echo(f"removed stale runs: {', '.join(cleaned)}" if cleaned else "no stale runs")
    orphans = orphan_namespaces()
    if orphans:
        click.echo("namespaces that look like the lab's but no run records (left alone; "
                   "`ip netns del NAME` if they are yours): " + ", ".join(orphans))


@lab.command(name="list")
def list_() -> None:
    """The labs this machine runs (from /run/sourceip-lab)."""
    from sourceip.lab.run import list_states
    from sourceip.report.term import detect, table

    states = list_states()
    if not states:
        click.echo("no lab runs")
        return
    rows = [[s.runid, "up" if s.owner_alive else "STALE", str(s.owner_pid),
             str(len(s.namespaces)), str(len(s.servers))] for s in states]
    for line in table(["RUN", "STATUS", "OWNER PID", "NAMESPACES", "ECHO SERVERS"], rows,
                      term=detect()):
        click.echo(line)


@lab.command()
@cluster_options
@MODE
@BACKEND
@NO_RULES
@click.option("--dry-run", is_flag=True, help="Print the shell script that builds the lab.")
@click.option("-o", "--output", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def plan(filenames: tuple[str, ...], example: str | None, mode: str | None,
         iptables_backend: str, no_rules: bool, dry_run: bool, output: str) -> None:
    """Show what the lab would build (nothing is run); --dry-run prints it as a shell script
    that works by hand (as root)."""
    from dataclasses import asdict

    from sourceip.lab.plan import render_script

    _cluster, lab_plan = _plan(filenames, example, mode, iptables_backend, no_rules)
    if dry_run:
        click.echo(render_script(lab_plan, python=sys.executable))
        return
    if output == "json":
        click.echo(json.dumps(asdict(lab_plan), indent=2))
        return
    from sourceip.report.term import detect, table

    click.echo(f"lab {lab_plan.runid} (kube-proxy {lab_plan.mode}): node subnet "
               f"{lab_plan.node_subnet}, router {lab_plan.router_ip}, external client "
               f"{lab_plan.external_ip}"
               + (f" / {lab_plan.external_ip6}" if lab_plan.external_ip6
                  and lab_plan.external_ip6 != lab_plan.external_ip else ""))
    rows: list[list[str]] = [[ns.role, ns.pod or ns.node or ns.role, ns.name, "-"]
                             for ns in lab_plan.namespaces]
    for srv in lab_plan.servers:
        http = f", http {list(srv.http_ports)}" if srv.http_ports else ""
        rows.append(["echo", srv.pod, "-",
                     f"tcp {list(srv.tcp_ports)}, udp {list(srv.udp_ports)}{http}"])
    for proc in lab_plan.processes:
        rows.append([proc.program, proc.name, proc.ns,
                     f"{proc.role}, listens on {list(proc.listen)}"])
    for lb in lab_plan.load_balancers:
        pool = ", ".join(c.node for c in lb.pool()) or "nobody"
        rows.append(["lb", lb.service, "-", f"{lb.mode} ({lb.title}) {lb.vip}:{lb.port} -> "
                     f"{lb.target}; predicted pool: {pool}"])
    for line in table(["ROLE", "WHAT", "NAMESPACE", "DETAIL"], rows, term=detect(), indent=2):
        click.echo(line)
    for note in lab_plan.notes:
        click.echo(f"note: {note}")
