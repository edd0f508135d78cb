"""Text renderings of explain results: a table per Service, fixes, and ASCII path drawings."""

from __future__ import annotations

from sourceip.dataplane.trace import Outcome
from sourceip.explain.engine import PathResult, ServiceExplanation


def _table(rows: list[list[str]], headers: list[str]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return out


def _verdict(p: PathResult) -> str:
    if p.real_client is None:
        return "-"
    return "yes" if p.real_client else "NO"


def _seen(p: PathResult) -> str:
    if p.seen:
        return " | ".join(p.seen)
    dispositions = sorted({o.disposition for o in p.trace.outcomes})
    return "nothing: " + "/".join(dispositions)


def render_explanations(items: list[ServiceExplanation], *, wide: bool = False,
                        diagrams: bool = False) -> str:
    """One block per Service port: a table of paths, then fixes and what would change."""
    blocks: list[str] = []
    for e in items:
        head = f"Service {e.service} ({e.type}"
        if e.cluster_ip:
            head += f", ClusterIP {e.cluster_ip}, port {e.port}"
        head += f", externalTrafficPolicy {e.external_traffic_policy}"
        if e.internal_traffic_policy != "Cluster":
            head += f", internalTrafficPolicy {e.internal_traffic_policy}"
        head += ")"
        lines = [head]
        if not e.paths:
            lines += [f"  {n}" for n in e.notes]
            blocks.append("\n".join(lines))
            continue
        lines.append("  " + summarize(e))
        headers = ["PATH", "POD SEES", "REAL CLIENT?"]
        if wide:
            headers.append("REWRITTEN BY")
        rows = []
        for p in e.paths:
            row = [p.title, _seen(p), _verdict(p)]
            if wide:
                row.append(" | ".join(p.rewritten_by) or "-")
            rows.append(row)
        lines += ["  " + ln for ln in _table(rows, headers)]
        for p in e.paths:
            extra: list[str] = []
            if p.real_client is not True:
                extra.append(f"    {p.summary}")
                for r in p.rewritten_by if not wide else ():
                    extra.append(f"    rewritten on {r.split(':', 1)[0]}: "
                                 f"{r.split(': ', 1)[1]}")
            extra += _app_lines(p)
            for c in p.changes:
                extra.append(f"    what would change this: {c}")
            if diagrams:
                extra += ["    " + ln for ln in draw_path(p).splitlines()]
            if extra:
                lines.append(f"  {p.title}:")
                lines += extra
        # Fixes once per Service, naming the paths they apply to.
        fix_paths: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
        for p in e.paths:
            for f in p.fixes:
                fix_paths.setdefault((f.change, f.effect, f.side_effects), []).append(p.title)
        if fix_paths:
            lines.append("  fixes:")
        for (change, effect, costs), titles in fix_paths.items():
            lines.append(f"    {change}")
            lines.append(f"      for: {'; '.join(titles)}")
            lines.append(f"      effect: {effect}")
            lines += [f"      cost: {c}" for c in costs]
        lines += [f"  note: {n}" for n in e.notes]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _app_lines(p: PathResult) -> list[str]:
    """Behind an ingress controller: the request the app receives and how it should read it."""
    app = p.app_sees
    if not app:
        return []
    out = [f"    the app's peer is {app.get('peer')} (the controller pod); it receives:"]
    for name, value in (app.get("headers") or {}).items():
        out.append(f"      {name}: {value}")
    if not app.get("headers"):
        out.append("      no forwarding headers")
    out.append(f"    read it with: {app.get('strategy')}")
    branches = app.get("branches") or []
    forged = [b["forged"] for b in branches if b.get("forged")]
    if forged:
        believed = [f for f in forged if not f.get("refused")]
        if believed:
            out.append(f"    FORGEABLE: a client sending {forged[0]['header']} makes the app "
                       f"resolve {believed[0].get('resolved_client')}")
        else:
            out.append(f"    a client sending {forged[0]['header']} is not believed (the app "
                       f"resolves {forged[0].get('resolved_client')})")
    for f in p.findings:
        out.append(f"    finding: {f}")
    return out


_IN_CLUSTER = ("pod-same-node", "pod-other-node", "pod-to-lb")
_EXTERNAL = ("nodeport", "loadbalancer", "external-ip", "through-lb")


def _verdict_of(paths: list[PathResult]) -> str:
    if not paths:
        return ""
    reached = [p for p in paths if p.real_client is not None]
    if not reached:
        return "never reach a pod"
    real = sum(1 for p in reached if p.real_client)
    dropped = len(paths) - len(reached)
    if real == len(reached):
        text = "keep their address"
    elif real == 0:
        text = "are seen as a rewritten address"
    else:
        text = f"keep their address on {real} of {len(reached)} paths"
    if dropped:
        text += f" ({dropped} path{'s' if dropped > 1 else ''} dropped or rejected)"
    return text


def summarize(e: ServiceExplanation) -> str:
    """One line: do pod clients and external clients keep their address?"""
    parts = []
    inside = _verdict_of([p for p in e.paths if p.kind in _IN_CLUSTER])
    outside = _verdict_of([p for p in e.paths if p.kind in _EXTERNAL])
    if inside:
        parts.append(f"pod clients {inside}")
    if outside:
        parts.append(f"external clients {outside}")
    behind = _verdict_of([p for p in e.paths if p.kind == "ingress"])
    if behind:
        forge = any((p.app_sees or {}).get("forgeable") for p in e.paths)
        parts.append(f"clients through an ingress {behind}"
                     + (" and CAN FORGE it" if forge else ""))
    return "in short: " + ("; ".join(parts) if parts else "no client paths") + "."


def draw_path(p: PathResult) -> str:
    """An ASCII drawing of the most likely outcome of a path, like blog-post diagrams:
    client, the nodes crossed, the endpoint, and where DNAT and SNAT happen."""
    if not p.trace.outcomes:
        return ""
    o: Outcome = p.trace.outcomes[0]
    boxes: list[str] = []
    labels: list[str] = []
    for h in o.hops:
        boxes.append(f"[{h.at}]")
        notes = []
        if o.dnat_node and h.node == o.dnat_node:
            notes.append("DNAT")
        if o.snat_node and h.node == o.snat_node:
            notes.append(f"SNAT->{o.seen_source}")
        labels.append(",".join(notes))
    if o.disposition == "delivered":
        boxes.append(f"[{o.endpoint_name or o.endpoint}]")
        labels.append(f"sees {o.seen_source}")
    else:
        boxes.append(f"<{o.disposition}>")
        labels.append("")
    widths = [max(len(b), len(lab)) for b, lab in zip(boxes, labels, strict=True)]
    top = " --> ".join(b.ljust(w) for b, w in zip(boxes, widths, strict=True)).rstrip()
    under = "     ".join(lab.ljust(w) for lab, w in zip(labels, widths, strict=True)).rstrip()
    return top + "\n" + under if under else top
