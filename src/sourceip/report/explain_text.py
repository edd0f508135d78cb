"""Text renderings of explain results: a table per Service, fixes, and ASCII path drawings,
laid out to the terminal's width (``report.term``)."""

from __future__ import annotations

from typing import Any

from sourceip.dataplane.trace import Hop, Outcome
from sourceip.explain.direct_paths import DirectExplanation
from sourceip.explain.engine import PathResult, ServiceExplanation
from sourceip.report.term import PLAIN, Term, table, wrap_lines


def pct(p: float) -> str:
    """A share of connections: ``50%``, ``33.3%``, ``0.01%``."""
    v = float(p) * 100
    if v >= 0.1 and abs(v - round(v)) < 0.05:
        return f"{round(v)}%"
    return f"{v:.1f}%" if v >= 0.1 else f"{v:.3g}%"


def shares(p: PathResult) -> list[tuple[float, str, bool]]:
    """(probability, what the app sees, is it the client) per distinct answer of ``p``, most
    likely first. Behind an ingress controller, from the controller's branches (what the
    app resolves); otherwise ``PathResult.shares`` (what the pod sees)."""
    if p.real_client is None:
        return []
    if p.kind == "ingress" and p.app_sees:
        client = str(p.trace.original.src)
        out: dict[tuple[Any, ...], list[Any]] = {}
        for b in p.app_sees.get("branches") or []:
            key = (b.get("resolved_client"), b.get("peer")) if b.get("resolved_client") \
                else (None, b.get("error"))
            entry = out.setdefault(key, [0.0, True])
            entry[0] += float(b.get("probability") or 0.0)
            entry[1] = entry[1] and bool(b.get("ok")) and b.get("resolved_client") == client
        # ingress_paths lists p.seen in the order the branches first give each answer
        if len(out) != len(p.seen):
            return []
        return sorted(((prob, d, ok) for (prob, ok), d in zip(out.values(), p.seen,
                                                              strict=True)),
                      key=lambda s: -s[0])
    return list(p.shares)


def _verdict(p: PathResult) -> str:
    """``yes`` / ``NO`` / ``-``; when the outcomes of a path differ, each answer with its
    share: ``50%: 10.244.1.1 (node1's bridge cni0) NO | 50%: the client yes``."""
    if p.real_client is None:
        return "-"
    parts = shares(p)
    if len({ok for _, _, ok in parts}) > 1:
        return " | ".join(f"{pct(prob)}: " + ("the client yes" if ok else f"{d} NO")
                          for prob, d, ok in parts)
    return "yes" if p.real_client else "NO"


def mixed(p: PathResult) -> bool:
    """Some outcomes of ``p`` keep the client, others do not."""
    return len({ok for _, _, ok in shares(p)}) > 1


def _verdict_style(col: int, text: str) -> str | None:
    if col != 2:
        return None
    if text == "yes":
        return "good"
    if text == "NO":
        return "bad"
    return "warn" if "%" in text else None


def _seen(p: PathResult) -> str:
    if p.seen:
        return " | ".join(p.seen)
    dispositions = sorted({o.disposition for o in p.trace.outcomes})
    return "nothing: " + "/".join(dispositions)


def render_explanations(items: list[ServiceExplanation], *, wide: bool = False,
                        diagrams: bool = False, term: Term = PLAIN) -> str:
    """One block per Service port: a table of paths, then fixes and what would change; lines
    and tables fit ``term.width`` (long cells and lines wrap, nothing is cut)."""
    blocks: list[str] = []
    width = term.width
    # the family is named when IPv6 paths are shown (IPv4-only output is unchanged)
    families = any(getattr(e, "family", 4) == 6 for e in items)
    for e in items:
        head = f"Service {e.service} ({e.type}"
        if families and not isinstance(e, DirectExplanation):
            head += f", IPv{e.family}"
        if e.cluster_ip:
            head += f", ClusterIP {e.cluster_ip}, port {e.port}"
        head += f", externalTrafficPolicy {e.external_traffic_policy}"
        if e.internal_traffic_policy != "Cluster":
            head += f", internalTrafficPolicy {e.internal_traffic_policy}"
        head += ")"
        if isinstance(e, DirectExplanation):  # pods reached without a Service
            head = e.heading
        lines = [term.style(ln, "title") for ln in wrap_lines([head], width)]
        if not e.paths:
            lines += wrap_lines([f"  {n}" for n in e.notes], width)
            blocks.append("\n".join(lines))
            continue
        lines += wrap_lines(["  " + summarize(e)], width)
        headers = ["PATH", "POD SEES", "REAL CLIENT?"]
        if wide:
            headers.append("REWRITTEN BY")
        rows = []
        for p in e.paths:
            row = [p.title, _seen(p), _verdict(p)]
            if wide:
                row.append(" | ".join(p.rewritten_by) or "-")
            rows.append(row)
        lines += table(headers, rows, term=term, indent=2, cell_style=_verdict_style)
        for p in e.paths:
            extra: list[str] = []
            if p.real_client is not True:
                extra.append(f"    {_summary(p)}")
                if mixed(p):
                    extra += [f"    {pct(prob)}: {d}" + ("" if ok else ", not the client")
                              for prob, d, ok in shares(p)]
                for r in p.rewritten_by if not wide else ():
                    extra.append(f"    rewritten on {r.split(':', 1)[0]}: "
                                 f"{r.split(': ', 1)[1]}")
            extra += _app_lines(p)
            for c in p.changes:
                extra.append(f"    what would change this: {c}")
            drawing = draw_path(p, width=width - 4) if diagrams else ""
            if extra or drawing:
                lines += wrap_lines([f"  {p.title}:", *extra], width)
                lines += ["    " + ln if ln else "" for ln in drawing.splitlines()]
        # Fixes once per Service, naming the paths they apply to.
        fix_paths: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
        for p in e.paths:
            for f in p.fixes:
                fix_paths.setdefault((f.change, f.effect, f.side_effects), []).append(p.title)
        fix_lines: list[str] = []
        if fix_paths:
            fix_lines.append("  fixes:")
        for (change, effect, costs), titles in fix_paths.items():
            fix_lines.append(f"    {change}")
            fix_lines.append(f"      for: {'; '.join(titles)}")
            fix_lines.append(f"      effect: {effect}")
            fix_lines += [f"      cost: {c}" for c in costs]
        fix_lines += [f"  cost: {f}" for f in getattr(e, "findings", ())]
        fix_lines += [f"  note: {n}" for n in e.notes]
        lines += wrap_lines(fix_lines, width)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


_REWRITTEN = "the pod sees a rewritten address, not the client"


def _summary(p: PathResult) -> str:
    """The path's summary; for a path whose outcomes differ, not the blanket "rewritten"."""
    if mixed(p) and p.summary.startswith(_REWRITTEN):
        return "some connections keep the client address, others do not" + \
            p.summary[len(_REWRITTEN):]
    return p.summary


def _app_lines(p: PathResult) -> list[str]:
    """Behind an ingress controller: the request the app receives and how it should read it."""
    app = p.app_sees
    if not app:  # findings of other paths (e.g. a controller refusing them) still show
        return [f"    finding: {f}" for f in p.findings]
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
    partly = sum(1 for p in reached if not p.real_client and mixed(p))
    dropped = len(paths) - len(reached)
    if real == len(reached):
        text = "keep their address"
    elif real == 0 and not partly:
        text = "are seen as a rewritten address"
    elif not partly:
        text = f"keep their address on {real} of {len(reached)} paths"
    else:
        text = (f"keep their address on {real} of {len(reached)} paths, and on some "
                f"connections of {partly} more")
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
    direct = _verdict_of([p for p in e.paths if p.kind in ("hostnetwork", "hostport")])
    if direct:
        parts.append(f"clients connecting directly {direct}")
    behind = _verdict_of([p for p in e.paths if p.kind == "ingress"])
    if behind:
        forge = any((p.app_sees or {}).get("forgeable") for p in e.paths)
        parts.append(f"clients through an ingress {behind}"
                     + (" and CAN FORGE it" if forge else ""))
    return "in short: " + ("; ".join(parts) if parts else "no client paths") + "."


MAX_DRAWN_BRANCHES = 12


def draw_path(p: PathResult, *, width: int | None = None) -> str:
    """An ASCII drawing of a path, like blog-post diagrams: client, the load balancer, the
    nodes crossed, the endpoint (behind an ingress: the controller, then the app), and where
    DNAT and SNAT happen. Every branch is drawn, each under its share of the connections
    (identical drawings once; at most ``MAX_DRAWN_BRANCHES``, then how many more). With
    ``width``, a drawing wider than that continues on the next lines."""
    drawn: dict[tuple[tuple[str, ...], tuple[str, ...]], float] = {}
    used: set[int] = set()
    for o in p.trace.outcomes:
        boxes, labels = _branch(p, o, used)
        key = (tuple(boxes), tuple(labels))
        drawn[key] = drawn.get(key, 0.0) + o.probability
    if not drawn:
        return ""
    if len(drawn) == 1:
        ((only_boxes, only_labels),) = drawn
        return _draw(list(only_boxes), list(only_labels), width)
    out: list[str] = []
    ordered = sorted(drawn.items(), key=lambda kv: -kv[1])
    for (bx, lb), prob in ordered[:MAX_DRAWN_BRANCHES]:
        out.append(f"{pct(prob)} of connections:")
        sub = _draw(list(bx), list(lb), None if width is None else width - 2)
        out += ["  " + ln for ln in sub.splitlines()]
    rest = ordered[MAX_DRAWN_BRANCHES:]
    if rest:
        out.append(f"... {len(rest)} more branches ({pct(sum(pr for _, pr in rest))} of "
                   "connections); `sourceip trace` shows every one")
    return "\n".join(out)


def _branch(p: PathResult, o: Outcome, used: set[int]) -> tuple[list[str], list[str]]:
    boxes: list[str] = []
    labels: list[str] = []
    hops = list(o.hops)
    if hops and hops[0].at == "load balancer":
        # the LB hop comes first in the trace; draw the client before it, and not again the
        # client hop after it (a proxying LB's new connection starts there)
        boxes.append(f"[external {p.trace.original.src}]")
        labels.append("")
        if len(hops) > 1 and hops[1].node is None:
            del hops[1]
    for h in hops:
        boxes.append(f"[{h.at}]")
        if h.at == "load balancer":
            labels.append(_lb_label(h))
            continue
        notes = []
        if o.dnat_node and h.node == o.dnat_node:
            notes.append("DNAT")
        if o.snat_node and h.node == o.snat_node:
            notes.append(f"SNAT->{o.seen_source}")
        labels.append(",".join(notes))
    if o.disposition != "delivered":
        boxes.append(f"<{o.disposition}>")
        labels.append("")
        return boxes, labels
    app = p.app_sees if p.kind == "ingress" else None
    if not app:
        boxes.append(f"[{o.endpoint_name or o.endpoint}]")
        labels.append(f"sees {o.seen_source}")
        return boxes, labels
    boxes.append(f"[{app.get('controller')} {o.endpoint_name or o.endpoint}]")
    labels.append(f"sees {o.seen_source}")
    b = _ingress_branch(app, o, used)
    boxes.append(f"[app {p.target}]")
    if b is None:
        labels.append("")
    elif b.get("resolved_client"):
        labels.append(f"peer {b.get('peer')}, resolves {b['resolved_client']}")
    else:
        labels.append(f"the request fails: {b.get('error')}")
    return boxes, labels


def _lb_label(h: Hop) -> str:
    """What the load balancer does to the packet: forwards it, or proxies the connection
    from its own address (with a PROXY header)."""
    out = h.packet_out
    if out is not None and out.src != h.packet_in.src:
        text = f"proxies from {out.src}"
    else:
        text = "forwards"
    if "PROXY v2" in h.note:
        text += " +PROXY v2"
    elif "PROXY v1" in h.note:
        text += " +PROXY v1"
    return text


def _ingress_branch(app: dict[str, Any], o: Outcome,
                    used: set[int]) -> dict[str, Any] | None:
    """The controller's branch for outcome ``o`` (ingress_paths makes one per delivered
    outcome that reaches a controller pod, in order)."""
    for i, b in enumerate(app.get("branches") or []):
        if i in used or b.get("controller_remote_addr") != str(o.seen_source):
            continue
        if abs(float(b.get("probability") or 0.0) - o.probability) > 1e-9:
            continue
        used.add(i)
        return dict(b)
    return None


def _draw(boxes: list[str], labels: list[str], width: int | None) -> str:
    """Boxes joined by arrows, each label under its box; rows that would pass ``width``
    continue on the next lines (starting with an arrow)."""
    widths = [max(len(b), len(lab)) for b, lab in zip(boxes, labels, strict=True)]
    rows: list[list[int]] = [[]]
    used = 0
    for i, w in enumerate(widths):
        step = w + (5 if rows[-1] or len(rows) > 1 else 0)
        if width is not None and rows[-1] and used + step > width:
            rows.append([])
            used, step = 0, w + 5
        rows[-1].append(i)
        used += step
    out: list[str] = []
    for n, row in enumerate(rows):
        lead = "--> " if n else ""
        if width is not None and len(row) == 1 and len(lead) + widths[row[0]] > width:
            # one box wider than the drawing may be: its text wraps under itself
            i = row[0]
            out += wrap_lines([lead + boxes[i]], width, hang=len(lead) + 1)
            out += wrap_lines([" " * len(lead) + labels[i]], width) if labels[i] else []
            continue
        top = lead + " --> ".join(boxes[i].ljust(widths[i]) for i in row)
        under = " " * len(lead) + "     ".join(labels[i].ljust(widths[i]) for i in row)
        out.append(top.rstrip())
        if under.strip():
            out.append(under.rstrip())
    return "\n".join(out)
