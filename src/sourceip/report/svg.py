"""Inline SVG drawings of explain paths, made from ``explain -o json`` dicts (never from the
engine's objects: a saved JSON draws the same picture).

One drawing per path, left to right as in the classic write-ups: the client, the load
balancer (its health check answer on each node it sends to, and the nodes it took out of the
pool, crossed out), each node crossed, the ingress controller, the pod or the app. Every
outcome of the trace is a branch; branches that share their first hops share those boxes, and
the edge into a branch carries its share of the connections. Each edge is labelled with the
source address of the packet on it; the hop that rewrote the source is hatched and marked with
a numbered note quoting the rule (or the load balancer's setting) that did it; dropped and
rejected branches are dashed and crossed out. Everything is text in ``<text>`` elements
(selectable, searchable, read by screen readers) and readable without colour: the marks are
patterns, dashes, symbols and words.

Nothing here decides anything: every word drawn is a field of the JSON (hop ``at``/``in``/
``out``/``note``, outcome ``snat``/``dnat``/``seen_source``/``endpoint_name``, the path's
``seen``/``shares``, ``load_balancer.checks``, ``app_sees.branches``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape
from typing import Any

MAX_BRANCHES = 16  # drawn per path; the rest is summed up in one line

# Layout (px). Text widths are estimated per character: monospace exactly, the sans-serif
# title font by a generous average so that labels never overflow their boxes.
TITLE_PX = 12
MONO_PX = 11
MONO_W = 0.61 * MONO_PX
SANS_W = 0.62 * TITLE_PX
LINE = 15
PAD_X = 10
PAD_Y = 8
MIN_BOX = 120
WRAP_TITLE = 26
WRAP_SUB = 28
BEND = 10
ROW_GAP = 28
MARGIN = 12


def pct(p: float) -> str:
    """A share of connections: ``50%``, ``33.3%``, ``0.01%`` (as the text report writes it)."""
    v = float(p) * 100
    if v >= 0.1 and abs(v - round(v)) < 0.05:
        return f"{round(v)}%"
    return f"{v:.1f}%" if v >= 0.1 else f"{v:.3g}%"


_FLOW = re.compile(r"^(\S+)\s+(.+):(\d+)\s+->\s+(.+):(\d+)$")


def flow_src(text: str | None) -> str | None:
    """The source address of a hop's ``in``/``out`` text (``tcp 1.2.3.4:5 -> 6.7.8.9:80``)."""
    m = _FLOW.match(text or "")
    return m.group(2).strip("[]") if m else None


def flow_dst(text: str | None) -> str | None:
    """``ip:port`` of the destination of a hop's ``in``/``out`` text."""
    m = _FLOW.match(text or "")
    return f"{m.group(4)}:{m.group(5)}" if m else None


def client_ip(path: dict[str, Any]) -> str | None:
    """The client address a path names (``external 203.0.113.10``), else None."""
    c = str(path.get("client") or "")
    return c.split()[-1] if c.startswith("external ") else None


def seen_description(path: dict[str, Any], ip: str | None) -> str | None:
    """The path's ``seen`` entry for address ``ip`` (``10.0.0.12 (node2's address on eth0)``)."""
    if ip is None:
        return None
    for s in path.get("seen") or []:
        if str(s) == ip or str(s).startswith(ip + " "):
            return str(s)
    return None


def share_ok(path: dict[str, Any], ip: str | None) -> bool | None:
    """Whether the answer ``ip`` is the real client, from the path's ``shares``."""
    desc = seen_description(path, ip)
    for s in path.get("shares") or []:
        if s.get("seen") == desc:
            return bool(s.get("real_client"))
    if path.get("real_client") is not None and len(path.get("seen") or []) == 1:
        return bool(path["real_client"])
    return None


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most ``width`` characters, broken after a space, ``/``, ``-`` or ``,``
    where possible (names and rules stay readable), else hard."""
    out: list[str] = []
    rest = text
    while len(rest) > width:
        cut = max(rest.rfind(c, 0, width) for c in " /-,")
        cut = cut + 1 if cut >= width // 3 else width
        out.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest or not out:
        out.append(rest)
    return out


# ----------------------------------------------------------------------------- the model


@dataclass(slots=True)
class Box:
    """One box of the drawing; ``key`` merges identical prefixes of branches."""

    kind: str  # client | lb | node | controller | pod | app | end
    title: str
    sub: tuple[str, ...] = ()
    edge: str = ""  # the label of the edge into this box: the source address on it
    edge_extra: str = ""  # a second line under the edge (e.g. a PROXY header)
    rewrite: str = ""  # "SNAT to 10.0.0.12": this hop rewrote the source
    note: int = 0  # the number of the note quoting the rule or setting
    crossed: bool = False  # dropped / rejected / out of the pool / the request fails
    verdict: str = ""  # on the last box: "the client" / "not the client"
    prob: float = 0.0
    children: list[Box] = field(default_factory=list)
    # layout
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0
    depth: int = 0

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.kind, self.title, self.sub, self.edge, self.edge_extra, self.rewrite,
                self.crossed, self.verdict)


@dataclass(slots=True)
class Notes:
    """The numbered notes under a drawing: who rewrote the source, and with what."""

    items: list[str] = field(default_factory=list)

    def number(self, text: str) -> int:
        if text not in self.items:
            self.items.append(text)
        return self.items.index(text) + 1


def _pod_name(name: str | None) -> str:
    """``pod/default/nginx-...`` as ``pod default/nginx-...``."""
    if not name:
        return "endpoint"
    return name.replace("/", " ", 1) if name.startswith("pod/") else name


def _checks(path: dict[str, Any]) -> dict[str, dict[str, Any]]:
    lb = path.get("load_balancer") or {}
    return {str(c.get("node")): c for c in lb.get("checks") or []}


def _check_text(c: dict[str, Any]) -> str:
    """``health check: 200 on 32000 (1 local ready endpoints)`` from the check's reason."""
    reason = str(c.get("reason") or "")
    reason = reason.removeprefix("taken out of the pool by the health check: ")
    return f"health check: {reason}" if reason else "health check"


def _terminal_step(o: dict[str, Any]) -> str:
    """The chain that dropped or rejected the packet (its last drop/reject step)."""
    for h in reversed(o.get("hops") or []):
        for st in reversed(h.get("steps") or []):
            eff = str(st.get("effect") or "")
            if eff.startswith(("drop", "reject")):
                return f"by {st.get('chain')}"
    return ""


def _ingress_branch(app: dict[str, Any], o: dict[str, Any], used: set[int]
                    ) -> dict[str, Any] | None:
    """The controller's branch for outcome ``o`` (one per delivered outcome, in order, with
    the controller's remote address and the outcome's probability)."""
    for i, b in enumerate(app.get("branches") or []):
        if i in used or b.get("controller_remote_addr") != o.get("seen_source"):
            continue
        if abs(float(b.get("probability") or 0.0) - float(o.get("probability") or 0.0)) > 1e-9:
            continue
        used.add(i)
        return dict(b)
    return None


_CLIENT_HEADERS = ("x-forwarded-for", "x-real-ip", "forwarded", "x-envoy-external-address",
                   "x-original-forwarded-for", "true-client-ip", "cf-connecting-ip")


def _lb_box(path: dict[str, Any], hop: dict[str, Any] | None, notes: Notes) -> Box:
    lb = path.get("load_balancer") or {}
    mode = str(lb.get("mode") or "")
    title = "load balancer" + (f" ({mode})" if mode else "")
    sub: list[str] = []
    if lb.get("vip"):
        sub.append(f"VIP {lb['vip']}")
    box = Box(kind="lb", title=title)
    if hop is not None:
        src_in, src_out = flow_src(hop.get("in")), flow_src(hop.get("out"))
        if src_out and src_in and src_out != src_in:
            pp = lb.get("proxy_protocol")
            if pp:
                sub.append(f"PROXY {pp} header: {src_in}")
            box.rewrite = f"proxies from {src_out}"
            what = f"the load balancer proxies: the node sees a new connection from {src_out}"
            if pp:
                what += f"; the PROXY {pp} header it sends carries the client {src_in}"
            if lb.get("decided_by"):
                what += f" ({lb['decided_by']})"
            box.note = notes.number(what)
    box.sub = tuple(sub)
    return box


def _node_box(path: dict[str, Any], o: dict[str, Any], hop: dict[str, Any], notes: Notes,
              checks: dict[str, dict[str, Any]], after_lb: bool) -> Box:
    node = hop.get("node")
    sub: list[str] = []
    if after_lb and node in checks:
        sub += wrap(_check_text(checks[node]), WRAP_SUB)
    iif, oif = hop.get("iif"), hop.get("oif")
    if iif and oif:
        sub.append(f"in {iif}, out {oif}")
    elif iif or oif:
        sub.append(f"in {iif}" if iif else f"out {oif}")
    dnat = o.get("dnat") or {}
    if dnat.get("node") == node and flow_dst(hop.get("in")) != flow_dst(hop.get("out")):
        sub.append(f"DNAT to {flow_dst(hop.get('out'))}")
    box = Box(kind="node", title=str(hop.get("at") or node), sub=tuple(sub))
    src_in, src_out = flow_src(hop.get("in")), flow_src(hop.get("out"))
    snat = o.get("snat") or {}
    if snat.get("node") == node and node is not None:  # the hop explain names
        box.rewrite = f"SNAT to {src_out}"
        iface = f" (leaving by {snat['interface']})" if snat.get("interface") else ""
        box.note = notes.number(f"{node}: {snat.get('rule')}{iface}")
    elif src_in and src_out and src_in != src_out:
        box.rewrite = f"source becomes {src_out}"
        box.note = notes.number(f"{node}: the source became {src_out}")
    return box


def branch(path: dict[str, Any], o: dict[str, Any], notes: Notes, used: set[int]
           ) -> list[Box]:
    """The boxes of one outcome, client first."""
    hops = list(o.get("hops") or [])
    boxes: list[Box] = []
    checks = _checks(path)
    lb = path.get("load_balancer")
    after_lb = False
    if hops and hops[0].get("at") == "load balancer":
        boxes.append(Box(kind="client", title=str(path.get("client") or "client")))
        lb_box = _lb_box(path, hops[0], notes)
        lb_box.edge = f"src {flow_src(hops[0].get('in'))}"
        boxes.append(lb_box)
        # a proxying LB's new connection starts at a client hop of its own: not drawn again
        rest = hops[1:]
        start_src = flow_src(hops[0].get("out"))
        if rest and rest[0].get("node") is None:
            start_src = flow_src(rest[0].get("out")) or start_src
            rest = rest[1:]
        hops = rest
        after_lb = True
        edge_src = start_src
    else:
        first = hops[0] if hops else {}
        if first.get("node") is None and hops:
            boxes.append(Box(kind="client", title=str(first.get("at") or path.get("client"))))
            edge_src = flow_src(first.get("out"))
            hops = hops[1:]
        elif hops:  # the node itself is the client; its rules come in the next box
            boxes.append(Box(kind="client", title=str(path.get("client") or first.get("at")),
                             sub=("the node itself or a", "hostNetwork pod on it")))
            edge_src = flow_src(first.get("in"))
        else:
            edge_src = None
        if lb is not None and hops:  # a forwarding LB delivering to a node group
            lb_box = _lb_box(path, None, notes)
            lb_box.edge = f"src {edge_src}" if edge_src else ""
            boxes.append(lb_box)
            after_lb = True
    for h in hops:
        box = _node_box(path, o, h, notes, checks, after_lb)
        after_lb = False
        box.edge = f"src {edge_src}" if edge_src else ""
        boxes.append(box)
        edge_src = flow_src(h.get("out"))
    disposition = str(o.get("disposition") or "")
    seen = o.get("seen_source")
    if disposition not in ("delivered", "passed"):
        end = Box(kind="end", title=disposition.upper(), sub=(_terminal_step(o),)
                  if _terminal_step(o) else (), crossed=True,
                  edge=f"src {edge_src}" if edge_src else "")
        boxes.append(end)
        return boxes
    app = path.get("app_sees") if path.get("kind") == "ingress" else None
    desc = seen_description(path, seen) if not app else None
    target = Box(kind="controller" if app else "pod",
                 title=(f"{app.get('controller')} {_pod_name(o.get('endpoint_name'))}" if app
                        else _pod_name(o.get("endpoint_name") or o.get("endpoint"))),
                 edge=f"src {seen}")
    sees = f"sees {desc or seen}"
    if disposition == "passed":
        sees = f"passed (no service rule); sees {seen}"
    # "sees ADDRESS" stays on one line (an IPv6 address is longer than WRAP_SUB; the box
    # widens for it rather than cutting the address the reader copies)
    target.sub = tuple(wrap(sees, max(WRAP_SUB, len(f"sees {seen}"))))
    if not o.get("certain", True):
        target.sub += tuple(wrap("uncertain: depends on "
                                 + "; ".join(map(str, o.get("depends_on") or [])), WRAP_SUB))
    if not app:
        ok = share_ok(path, seen)
        target.verdict = "" if ok is None else ("the client" if ok else "not the client")
        boxes.append(target)
        return boxes
    ctrl = str(app.get("controller") or "")
    said = [r for r in path.get("rewritten_by") or []
            if ctrl and r.startswith(ctrl + " ") and f" {seen} " in r]
    if said:  # explain names the controller: what it passes on is its own client
        target.rewrite = f"passes on {seen}"
        target.note = notes.number(str(said[0]))
    boxes.append(target)
    b = _ingress_branch(app, o, used)
    app_box = Box(kind="app", title=f"app behind {app.get('route_kind') or 'Ingress'} "
                                     f"{app.get('ingress')}")
    if b is None:
        boxes.append(app_box)
        return boxes
    app_box.edge = f"src {b.get('peer')}" if b.get("peer") else ""
    if not b.get("ok"):
        app_box.crossed = True
        app_box.sub = tuple(wrap(f"the request fails: {b.get('error')}", WRAP_SUB))
        boxes.append(app_box)
        return boxes
    heads = [f"{k}: {v}" for k, v in (b.get("headers") or {}).items()
             if k.lower() in _CLIENT_HEADERS]
    lines: list[str] = []
    for hline in heads[:3]:
        lines += wrap(hline, WRAP_SUB)
    lines += wrap(f"resolves {b.get('resolved_client')}", WRAP_SUB)
    app_box.sub = tuple(lines)
    cip = client_ip(path)
    if cip is not None:
        app_box.verdict = ("the client" if b.get("resolved_client") == cip
                           else "not the client")
    boxes.append(app_box)
    return boxes


def _out_of_pool(path: dict[str, Any], notes: Notes) -> list[list[Box]]:
    """Branches to the nodes the load balancer's health checks took out of the pool."""
    lb = path.get("load_balancer") or {}
    rows = []
    cip = client_ip(path)
    for c in lb.get("checks") or []:
        if c.get("in_pool", True):
            continue
        client = Box(kind="client", title=str(path.get("client") or "client"))
        lb_box = _lb_box(path, None, notes)
        lb_box.edge = f"src {cip}" if cip else ""
        node = Box(kind="node", title=f"node {c.get('node')}", crossed=True,
                   sub=tuple(wrap(_check_text(c), WRAP_SUB)) + ("out of the pool: no traffic",))
        rows.append([client, lb_box, node])
    return rows


def build_tree(path: dict[str, Any]) -> tuple[list[Box], Notes, str]:
    """The roots of the drawing of ``path``, its notes, and a line about branches not drawn."""
    notes = Notes()
    used: set[int] = set()
    rows: list[tuple[float, list[Box]]] = []
    lb = path.get("load_balancer") or {}
    if path.get("kind") == "loadbalancer" and lb.get("in_pool") is False:
        rows = [(0.0, r) for r in _out_of_pool(path, notes)]
    else:
        for o in path.get("outcomes") or []:
            rows.append((float(o.get("probability") or 0.0), branch(path, o, notes, used)))
        if path.get("kind") in ("through-lb", "ingress") and lb.get("checks"):
            rows += [(0.0, r) for r in _out_of_pool(path, notes)]
    roots: list[Box] = []
    drawn = 0
    rest_prob = 0.0
    rest_n = 0
    for prob, boxes in rows:
        level = roots
        merged: list[Box] = []
        for b in boxes:
            hit = next((x for x in level if x.key == b.key), None)
            if hit is None:
                level.append(b)
                hit = b
            merged.append(hit)
            level = hit.children
        new_leaf = not merged[-1].children and merged[-1] is boxes[-1]
        if new_leaf:
            drawn += 1
        if drawn > MAX_BRANCHES and new_leaf:  # take it out again, count it
            _remove(roots, merged)
            rest_prob += prob
            rest_n += 1
            continue
        for b in merged:
            b.prob += prob
    more = (f"{rest_n} more branches ({pct(rest_prob)} of connections) are not drawn; "
            "`sourceip trace` shows every one") if rest_n else ""
    return roots, notes, more


def _remove(roots: list[Box], chain: list[Box]) -> None:
    for i in range(len(chain) - 1, -1, -1):
        parent = roots if i == 0 else chain[i - 1].children
        if not chain[i].children and chain[i] in parent and chain[i].prob == 0.0:
            parent.remove(chain[i])


# ----------------------------------------------------------------------------- layout


def _text_w(text: str, mono: bool) -> float:
    return len(text) * (MONO_W if mono else SANS_W)


def _size(b: Box) -> None:
    title_lines = wrap(b.title, WRAP_TITLE)
    widths = [_text_w(t, False) for t in title_lines]
    widths += [_text_w(s, True) for s in b.sub]
    if b.verdict:
        widths.append(_text_w(("✓ " if b.verdict == "the client" else "✗ ") + b.verdict, False))
    b.w = max(MIN_BOX, max(widths) + 2 * PAD_X)
    lines = len(title_lines) + len(b.sub) + (1 if b.verdict else 0)
    b.h = 2 * PAD_Y + lines * LINE + 2


def _walk(bs: list[Box], depth: int = 0) -> list[Box]:
    out = []
    for b in bs:
        b.depth = depth
        out.append(b)
        out += _walk(b.children, depth + 1)
    return out


def _iter(bs: list[Box]) -> list[Box]:
    return [x for b in bs for x in (b, *_iter(b.children))]


def layout(roots: list[Box]) -> tuple[float, float]:
    """Place every box; returns the drawing's (width, height)."""
    boxes = _walk(roots)
    for b in boxes:
        _size(b)
    depth = max((b.depth for b in boxes), default=0) + 1
    col_w = [0.0] * depth
    gap = [0.0] * depth  # the gap before column d (the edge labels into it)
    for b in boxes:
        col_w[b.depth] = max(col_w[b.depth], b.w)
        label = max(_text_w(b.edge, True), _text_w(b.edge_extra, True),
                    _text_w(pct(b.prob), True) if b.prob else 0.0)
        gap[b.depth] = max(gap[b.depth], label + BEND + 22 if b.depth else 0.0)
    xs: list[float] = []
    x = float(MARGIN)
    for d in range(depth):
        x += max(gap[d], 48.0) if d else 0.0
        xs.append(x)
        x += col_w[d]
    width = x + MARGIN
    # rows: each leaf gets a slot as tall as its box; a parent sits between its children
    top = MARGIN + 14.0  # room for the rewrite tags above the first row
    for i, r in enumerate(roots):
        top = _place(r, top + (ROW_GAP if i else 0.0))
    for b in boxes:
        b.x = xs[b.depth]
    height = max((b.y + b.h / 2 for b in boxes), default=0.0) + MARGIN
    return width, height


def _place(b: Box, top: float) -> float:
    """Place ``b`` and its subtree from ``top`` down; returns the bottom."""
    if not b.children:
        b.y = top + b.h / 2
        return top + b.h
    bottom = top
    for i, c in enumerate(b.children):
        bottom = _place(c, bottom + (ROW_GAP + (14.0 if c.rewrite else 0.0) if i else 0.0))
    ys = [c.y for c in b.children]
    b.y = (min(ys) + max(ys)) / 2
    if b.y - b.h / 2 < top:  # a parent taller than its children's span pushes them down
        shift = top - (b.y - b.h / 2)
        for c in _iter(b.children):
            c.y += shift
        b.y += shift
        bottom += shift
    return max(bottom, b.y + b.h / 2)


# ----------------------------------------------------------------------------- rendering


def _t(x: float, y: float, text: str, cls: str, anchor: str = "start") -> str:
    a = f' text-anchor="{anchor}"' if anchor != "start" else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}"{a}>{defang(escape(text))}</text>'


def defang(escaped: str) -> str:
    """Text never spells a URL (``http://``): the document must not hold one a browser or a
    scanner would follow. ``://`` is split by an empty element, so copying keeps the text."""
    return escaped.replace("://", ":<tspan>//</tspan>")


def _box_svg(b: Box, uid: str) -> list[str]:
    out = []
    cls = f"box k-{b.kind}" + (" rewrite" if b.rewrite else "") + (" crossed" if b.crossed
                                                                      else "")
    top = b.y - b.h / 2
    geom = f'x="{b.x:.1f}" y="{top:.1f}" width="{b.w:.1f}" height="{b.h:.1f}" rx="6"'
    out.append(f'<g class="{cls}">')
    if b.rewrite or b.crossed:  # the pattern under the frame (CSS styles only the frame)
        out.append(f'<rect {geom} fill="url(#{uid}-{"hatch" if b.rewrite else "cross"})"/>')
    out.append(f'<rect class="frame" {geom}/>')
    ty = top + PAD_Y + 12
    for line in wrap(b.title, WRAP_TITLE):
        out.append(_t(b.x + PAD_X, ty, line, "bt"))
        ty += LINE
    for line in b.sub:
        out.append(_t(b.x + PAD_X, ty, line, "bs"))
        ty += LINE
    if b.verdict:
        ok = b.verdict == "the client"
        out.append(_t(b.x + PAD_X, ty, ("✓ " if ok else "✗ ") + b.verdict,
                      "ok" if ok else "bad"))
    if b.rewrite:
        out.append(_t(b.x, top - 5, f"[{b.note}] {b.rewrite}", "tag"))
    if b.crossed:
        out.append(f'<path class="xmark" d="M{b.x + b.w - 18:.1f},{top + 6:.1f} l12,12 '
                   f'm0,-12 l-12,12"/>')
    out.append("</g>")
    return out


def _edge_svg(p: Box, c: Box, siblings: int) -> list[str]:
    x1, y1 = p.x + p.w, p.y
    x2, y2 = c.x, c.y
    bx = x1 + BEND
    dash = " dashed" if c.crossed else ""
    d = (f"M{x1:.1f},{y1:.1f} H{bx:.1f} V{y2:.1f} H{x2 - 2:.1f}" if abs(y1 - y2) > 0.5
         else f"M{x1:.1f},{y1:.1f} H{x2 - 2:.1f}")
    out = [f'<path class="edge{dash}" d="{d}" marker-end="url(#{{uid}}-arrow)"/>']
    lx = bx + 6
    if c.edge:
        out.append(_t(lx, y2 - 6, c.edge, "el"))
    below = y2 + 15.0
    if siblings > 1 and c.prob > 0:
        out.append(_t(lx, below, pct(c.prob), "pr"))
    if c.crossed:
        mx = (bx + x2) / 2 if abs(y1 - y2) > 0.5 else (x1 + x2) / 2
        out.append(f'<path class="xmark" d="M{mx - 6:.1f},{y2 - 6:.1f} l12,12 m0,-12 '
                   f'l-12,12"/>')
    return out


def _defs(uid: str) -> str:
    return (
        f'<defs><marker id="{uid}-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker>'
        f'<pattern id="{uid}-hatch" width="8" height="8" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="8" height="8" class="hatch-bg"/>'
        '<line x1="0" y1="0" x2="0" y2="8" class="hatch"/></pattern>'
        f'<pattern id="{uid}-cross" width="10" height="10" patternUnits="userSpaceOnUse">'
        '<rect width="10" height="10" class="cross-bg"/>'
        '<path d="M0,0 L10,10 M10,0 L0,10" class="cross"/></pattern></defs>')


def describe(roots: list[Box], notes: Notes) -> list[str]:
    """The drawing in words, one line per branch (the SVG's ``<desc>``)."""
    lines = []

    def walk(b: Box, trail: list[str], prob: float) -> None:
        word = b.title + (f" ({b.rewrite} [{b.note}])" if b.rewrite else "") + \
            (" (crossed out)" if b.crossed else "") + \
            (f": {'; '.join(b.sub)}" if b.kind in ("pod", "controller", "app", "end") and b.sub
             else "")
        t = [*trail, word]
        if not b.children:
            share = f"{pct(b.prob)}: " if b.prob and b.prob < 0.9999 else ""
            lines.append(share + " -> ".join(t))
        for c in b.children:
            walk(c, t, c.prob)

    for r in roots:
        walk(r, [], r.prob)
    lines += [f"[{i}] {n}" for i, n in enumerate(notes.items, 1)]
    return lines


@dataclass(frozen=True, slots=True)
class Drawing:
    """A path's ``<svg>``, the notes its ``[n]`` tags refer to (the rule or setting behind
    each rewrite), a line about branches not drawn, and its natural width (px)."""

    svg: str
    notes: tuple[str, ...]
    more: str
    width: float


def draw_path(path: dict[str, Any], uid: str, *, label: str) -> Drawing | None:
    """The drawing of one path (``uid``: a document-unique id prefix; ``label``: its
    accessible name); None when the path has nothing to draw."""
    roots, notes, more = build_tree(path)
    if not roots:
        return None
    width, height = layout(roots)
    body: list[str] = []
    for b in _iter(roots):
        for c in b.children:
            body += [s.replace("{uid}", uid) for s in _edge_svg(b, c, len(b.children))]
    for b in _iter(roots):
        body += _box_svg(b, uid)
    desc = "\n".join(describe(roots, notes))
    svg = (f'<svg class="path" role="img" aria-labelledby="{uid}-t {uid}-d" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
           f'height="{height:.0f}"><title id="{uid}-t">{defang(escape(label))}</title>'
           f'<desc id="{uid}-d">{defang(escape(desc))}</desc>{_defs(uid)}'
           + "".join(body) + "</svg>")
    return Drawing(svg=svg, notes=tuple(notes.items), more=more, width=width)
