"""``sourceip report``: one self-contained HTML file rendered from ``explain -o json``.

The input is the explain document (``{"services": [...], "direct": [...], "notes": [...]}``,
each entry ``ServiceExplanation.to_dict()``), optionally with lab evidence (``"lab"`` at the top
and ``"lab"`` on the paths the lab probed, added by ``sourceip lab run --report``). Every word
of a path — its title, what the pod sees, the verdict, the rule that rewrote the source, the
fixes and their costs — is a field of that JSON: the report renders, it decides nothing, so a
saved ``explain -o json`` renders to the same file as the live explain.

The file needs nothing else when opened: no network (a Content-Security-Policy forbids it),
no fonts or scripts from elsewhere; the drawings are inline SVG made by ``report.svg``. A few
lines of inline script sort the overview table; without script it is a plain table. It reads
without colour (words, symbols, patterns), prints (print CSS), and is semantic HTML: headings
per Service and path, tables with ``th scope``, drawings with a title and a description.
"""

from __future__ import annotations

import base64
import hashlib
import re
from html import escape
from typing import Any

from sourceip.report.svg import draw_path, pct

DEFAULT_TITLE = "Source IP report"
# drawings up to this wide shrink to the page; wider ones scroll (their text would be too small)
FIT_WIDTH = 1750


def e(value: Any) -> str:
    """HTML-escaped text that never spells a URL (see ``svg.defang``)."""
    return escape(str(value), quote=True).replace("://", ":<wbr>//")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


# ----------------------------------------------------------------------------- verdicts


def shares(path: dict[str, Any]) -> list[tuple[float, str, bool]]:
    """(probability, what the app sees, is it the client) per distinct answer, most likely
    first: the path's ``shares``; behind an ingress controller, its branches grouped by the
    address the app resolves (as the text report does), paired with the path's ``seen``."""
    if path.get("real_client") is None:
        return []
    if path.get("shares"):
        return [(float(s["probability"]), str(s["seen"]), bool(s["real_client"]))
                for s in path["shares"]]
    app = path.get("app_sees")
    if path.get("kind") == "ingress" and app:
        client = str(path.get("client") or "").split()[-1]
        out: dict[tuple[Any, ...], list[Any]] = {}
        for b in app.get("branches") or []:
            key = (b.get("resolved_client"), b.get("peer")) if b.get("resolved_client") \
                else (None, b.get("error"))
            entry = out.setdefault(key, [0.0, True])
            entry[0] += float(b.get("probability") or 0.0)
            entry[1] = entry[1] and bool(b.get("ok")) and b.get("resolved_client") == client
        seen = list(path.get("seen") or [])
        if len(out) != len(seen):
            return []
        return sorted(((prob, d, ok) for (prob, ok), d in zip(out.values(), seen, strict=True)),
                      key=lambda s: -s[0])
    return []


def verdict(path: dict[str, Any]) -> str:
    """``yes`` | ``no`` | ``mixed`` | ``none`` (nothing delivered) | ``uncertain``."""
    rc = path.get("real_client")
    if rc is None:
        return "uncertain" if str(path.get("summary", "")).startswith("uncertain") else "none"
    if len({ok for _, _, ok in shares(path)}) > 1:
        return "mixed"
    return "yes" if rc else "no"


VERDICT_TEXT = {"yes": "✓ yes", "no": "✗ NO", "mixed": "◐ partly", "none": "— nothing delivered",
                "uncertain": "? uncertain"}


def _verdict_cell(path: dict[str, Any]) -> str:
    v = verdict(path)
    text = f'<span class="v v-{v}">{e(VERDICT_TEXT[v])}</span>'
    if v == "mixed":
        text += "<ul class=\"shares\">" + "".join(
            f"<li>{e(pct(p))}: {e(d)} — {'the client ✓' if ok else 'not the client ✗'}</li>"
            for p, d, ok in shares(path)) + "</ul>"
    return text


def _seen_cell(path: dict[str, Any]) -> str:
    seen = path.get("seen") or []
    if seen:
        return "<br>".join(f'<span class="addr">{e(s)}</span>' for s in seen)
    ds = sorted({str(o.get("disposition")) for o in path.get("outcomes") or []})
    return "nothing: " + e("/".join(ds) or "no outcome")


# ----------------------------------------------------------------------------- items


def _items(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Services, then direct pod ports, each with ``_heading``, ``_id`` and ``_direct``."""
    out: list[dict[str, Any]] = []
    used: set[str] = set()
    services = doc.get("services") or []
    # the family is named when the document has IPv6 paths (IPv4-only reports are unchanged)
    families = any(s.get("family") == "IPv6" for s in services)
    for s in services:
        head = f"Service {s.get('service')}"
        if families and s.get("family"):
            head += f" ({s['family']})"
        out.append({**s, "_heading": head, "_direct": False})
    for d in doc.get("direct") or []:
        if d.get("mode") == "hostNetwork":
            what = f"hostNetwork, {d.get('host_port')}/{d.get('protocol')} on {d.get('node')}"
        else:
            what = (f"hostPort {d.get('host_port')}/{d.get('protocol')} on "
                    f"{d.get('host_ip') or d.get('node')} -> container port "
                    f"{d.get('container_port')}")
        out.append({**d, "service": d.get("pod"), "type": d.get("mode"),
                    "_heading": f"Pod {d.get('pod')} (direct, {what})", "_direct": True})
    for it in out:
        base = slug(f"{it['_heading']} {it.get('port', '')}")
        uid, n = base, 2
        while uid in used:
            uid, n = f"{base}-{n}", n + 1
        used.add(uid)
        it["_id"] = uid
    return out


def _meta(it: dict[str, Any]) -> list[tuple[str, str]]:
    if it["_direct"]:
        return [("mode", str(it.get("mode"))), ("node", str(it.get("node"))),
                ("host port", f"{it.get('host_port')}/{it.get('protocol')}"),
                ("container port", str(it.get("container_port")))]
    rows = [("type", str(it.get("type"))), ("port", str(it.get("port")))]
    if it.get("family"):
        rows.append(("IP family", str(it["family"])))
    if it.get("cluster_ip"):
        rows.append(("ClusterIP", str(it["cluster_ip"])))
    rows.append(("externalTrafficPolicy", str(it.get("external_traffic_policy"))))
    rows.append(("internalTrafficPolicy", str(it.get("internal_traffic_policy"))))
    return rows


def _counts(paths: list[dict[str, Any]]) -> dict[str, int]:
    c = {"yes": 0, "no": 0, "mixed": 0, "none": 0, "uncertain": 0}
    for p in paths:
        c[verdict(p)] += 1
    return c


def _forgeable(paths: list[dict[str, Any]]) -> int:
    return sum(1 for p in paths if (p.get("app_sees") or {}).get("forgeable"))


# ----------------------------------------------------------------------------- sections


def _overview(items: list[dict[str, Any]], lab: bool,
              detailed: set[str] | None = None) -> str:
    rows = []
    # a Family column when the document has IPv6 paths (IPv4-only reports are unchanged)
    families = any(it.get("family") == "IPv6" for it in items)
    for it in items:
        paths = it.get("paths") or []
        c = _counts(paths)
        lost = [(i, p) for i, p in enumerate(paths) if verdict(p) in ("no", "mixed")]
        linked = detailed is None or it["_id"] in detailed
        where = "".join(
            (f'<li><a href="#{it["_id"]}-p{i}">{e(p.get("title"))}</a>' if linked
             else f"<li>{e(p.get('title'))}")
            + f'{" (partly)" if verdict(p) == "mixed" else ""}</li>' for i, p in lost)
        forge = _forgeable(paths)
        cells = [
            f'<th scope="row" data-v="{e(it["_heading"])}">'
            + (f'<a href="#{it["_id"]}">{e(it["_heading"])}</a>' if linked
               else e(it["_heading"]))
            + (f' <span class="port">{e(it.get("port"))}</span>' if it.get("port") else "")
            + "</th>",
            f"<td>{e(it.get('type'))}</td>",
            *([f"<td>{e(it.get('family') or '-')}</td>"] if families else []),
            f"<td>{e(it.get('external_traffic_policy') or '-')}</td>",
            f'<td class="num" data-v="{len(paths)}">{len(paths)}</td>',
            f'<td class="num" data-v="{c["yes"]}">{c["yes"]}</td>',
            f'<td class="num" data-v="{c["no"] + c["mixed"]}">{c["no"]}'
            + (f' + {c["mixed"]} partly' if c["mixed"] else "") + "</td>",
            f'<td class="num" data-v="{c["none"] + c["uncertain"]}">{c["none"]}'
            + (f' + {c["uncertain"]} uncertain' if c["uncertain"] else "") + "</td>",
            f'<td class="num" data-v="{forge}">{"✗ " + str(forge) if forge else "0"}</td>',
            f'<td data-v="{len(lost)}">' + (f'<ul class="lost">{where}</ul>' if lost
                                           else "none") + "</td>",
        ]
        if lab:
            probed = [r for p in paths for r in p.get("lab") or []]
            bad = sum(1 for r in probed if not r.get("agree"))
            cells.append(f'<td class="num" data-v="{bad}">'
                         + (f"{len(probed) - bad}/{len(probed)} agree" if probed else "-")
                         + "</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    heads = [("Service", "text"), ("Type", "text"),
             *([("Family", "text")] if families else []), ("externalTraffic­Policy", "text"),
             ("Paths", "num"), ("Real client ✓", "num"), ("Address lost ✗", "num"),
             ("Nothing delivered", "num"), ("Forgeable behind ingress", "num"),
             ("Paths that lose the client address", "num")]
    if lab:
        heads.append(("Lab", "num"))
    th = "".join(f'<th scope="col" data-sort="{k}">{h}</th>' for h, k in heads)
    return ('<section id="overview" aria-labelledby="overview-h"><h2 id="overview-h">'
            "Overview: where the client address is lost</h2>"
            '<p class="hint">One row per Service port (and per directly reached pod port). '
            "Click a column heading to sort.</p>"
            '<div class="scroll"><table class="sortable overview"><caption>'
            "Services and the paths on which the pod does not see the client</caption>"
            f"<thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            "</section>")


def _verdict_table(it: dict[str, Any], lab: bool) -> str:
    rows = []
    for i, p in enumerate(it.get("paths") or []):
        rewritten = "".join(f"<li><code>{e(r)}</code></li>" for r in p.get("rewritten_by")
                            or [])
        cells = [
            f'<td class="num">{i + 1}</td>',
            f'<th scope="row"><a href="#{it["_id"]}-p{i}">{e(p.get("title"))}</a></th>',
            f"<td>{e(p.get('client'))}</td>",
            f"<td>{_seen_cell(p)}</td>",
            f"<td>{_verdict_cell(p)}</td>",
            f"<td>{'<ul class=rules>' + rewritten + '</ul>' if rewritten else '-'}</td>",
        ]
        if lab:
            cells.append(f"<td>{_lab_cell(p)}</td>")
        rows.append(f'<tr class="row-{verdict(p)}">' + "".join(cells) + "</tr>")
    heads = ["#", "Path", "Client", "What the pod sees", "Real client?", "Rewritten by"]
    if lab:
        heads.append("Observed in the lab")
    th = "".join(f'<th scope="col">{h}</th>' for h in heads)
    return (f'<div class="scroll"><table class="verdicts"><caption>Every path to '
            f'{e(it["_heading"])}: what the pod sees</caption><thead><tr>{th}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _lab_cell(p: dict[str, Any]) -> str:
    results = p.get("lab")
    if results is None:
        return '<span class="muted">not probed</span>'
    out = []
    for r in results:
        mark = "✓ agrees" if r.get("agree") else "✗ DISAGREES"
        cls = "ok" if r.get("agree") else "bad"
        forged = " (forged headers)" if str(r.get("probe", "")).endswith("+forged") else ""
        out.append(f'<div><span class="{cls}">{mark}</span>{e(forged)}: observed '
                   f'<span class="addr">{e(r.get("observed"))}</span></div>')
    return "".join(out) or '<span class="muted">not probed</span>'


def _app(app: dict[str, Any]) -> str:
    rows = [("controller", f"{app.get('controller')} ({app.get('settings_from')})"),
            (str(app.get("route_kind") or "Ingress"),
             f"{app.get('ingress')} ({app.get('host')}{app.get('path')})"),
            ("the app's peer", f"{app.get('peer')} (the controller pod)"),
            ("the app should read it with", str(app.get("strategy"))),
            ("it resolves", str(app.get("resolved_client")))]
    dl = "".join(f"<dt>{e(k)}</dt><dd>"
                 + (f"<code>{e(v)}</code>" if k == "the app should read it with" else e(v))
                 + "</dd>" for k, v in rows)
    heads = app.get("headers") or {}
    prov: dict[str, str] = {}
    for b in app.get("branches") or []:
        for k, v in (b.get("provenance") or {}).items():
            prov.setdefault(str(k), str(v))
    hrows = "".join(f'<tr><th scope="row"><code>{e(k)}</code></th><td class="addr">{e(v)}</td>'
                    f"<td>{e(prov.get(k, ''))}</td></tr>" for k, v in heads.items())
    table = (f'<table class="headers"><caption>Headers the app receives</caption><thead><tr>'
             '<th scope="col">Header</th><th scope="col">Value</th><th scope="col">Set by'
             f"</th></tr></thead><tbody>{hrows}</tbody></table>" if heads
             else "<p>The app receives no forwarding headers.</p>")
    forged = [b["forged"] for b in app.get("branches") or [] if b.get("forged")]
    forge = ""
    if forged:
        believed = [f for f in forged if not f.get("refused")]
        if app.get("forgeable") or believed:
            forge = (f'<p class="bad">✗ FORGEABLE: a client sending <code>'
                     f'{e(forged[0].get("header"))}</code> makes the app resolve '
                     f"{e((believed or forged)[0].get('resolved_client'))}.</p>")
        else:
            forge = (f'<p class="ok">✓ Not forgeable: a client sending <code>'
                     f'{e(forged[0].get("header"))}</code> is not believed (the app resolves '
                     f"{e(forged[0].get('resolved_client'))}).</p>")
    return (f'<div class="app"><h5>Behind the ingress controller</h5><dl>{dl}</dl>{table}'
            f"{forge}</div>")


def _path(it: dict[str, Any], i: int, p: dict[str, Any], lab: bool) -> str:
    pid = f"{it['_id']}-p{i}"
    v = verdict(p)
    parts = [f'<article class="path row-{v}" id="{pid}" aria-labelledby="{pid}-h">',
             f'<h4 id="{pid}-h"><span class="n">{i + 1}.</span> {e(p.get("title"))} '
             f'<span class="v v-{v}">{e(VERDICT_TEXT[v])}</span></h4>',
             f'<p class="summary">{e(p.get("summary"))}</p>']
    facts = [("client", str(p.get("client"))), ("target", str(p.get("target")))]
    nodes = p.get("nodes") or []
    if nodes:
        more = int(p.get("node_count") or len(nodes)) - len(nodes)
        facts.append(("nodes", ", ".join(map(str, nodes)) + (f" and {more} more" if more > 0
                                                             else "")))
    parts.append('<p class="facts">' + " · ".join(
        f'<span class="fk">{e(k)}</span> <span class="addr">{e(val)}</span>'
        for k, val in facts) + "</p>")
    d = draw_path(p, f"{pid}-svg", label=f"Drawing of the path {p.get('title')}")
    if d is not None:
        fit = " fit" if d.width <= FIT_WIDTH else ""
        notes = "".join(f'<li><span class="fk">[{n}]</span> <code>{e(text)}</code></li>'
                        for n, text in enumerate(d.notes, 1))
        cap = (f'<figcaption><ol class="notes">{notes}</ol></figcaption>' if notes else "")
        if d.more:
            cap += f'<p class="muted">{e(d.more)}</p>'
        parts.append(f'<figure class="drawing{fit}"><div class="scroll">{d.svg}</div>{cap}'
                     "</figure>")
    if p.get("what_would_change_this"):
        parts.append("<h5>What would change this</h5><ul>" + "".join(
            f"<li>{e(c)}</li>" for c in p["what_would_change_this"]) + "</ul>")
    if p.get("findings"):
        parts.append("<h5>Findings</h5><ul class=\"findings\">" + "".join(
            f"<li>{e(f)}</li>" for f in p["findings"]) + "</ul>")
    if p.get("app_sees"):
        parts.append(_app(p["app_sees"]))
    if lab and p.get("lab") is not None:
        rows = "".join(
            f'<tr><th scope="row">{e(r.get("probe"))}</th><td class="addr">'
            f'{e(r.get("predicted"))}</td><td class="addr">{e(r.get("observed"))}</td>'
            f'<td class="{"ok" if r.get("agree") else "bad"}">'
            f'{"✓ agrees" if r.get("agree") else "✗ DISAGREES: " + str(r.get("reason") or "")}'
            "</td></tr>" for r in p["lab"])
        parts.append('<table class="lab"><caption>Checked in the lab with real connections'
                     '</caption><thead><tr><th scope="col">Probe</th><th scope="col">Predicted'
                     '</th><th scope="col">Observed</th><th scope="col">Agreement</th></tr>'
                     f"</thead><tbody>{rows}</tbody></table>")
    parts.append("</article>")
    return "".join(parts)


def _fixes(it: dict[str, Any]) -> str:
    fixes: dict[tuple[str, str, tuple[str, ...]], list[int]] = {}
    for i, p in enumerate(it.get("paths") or []):
        for f in p.get("fixes") or []:
            key = (str(f.get("change")), str(f.get("effect")),
                   tuple(map(str, f.get("side_effects") or ())))
            fixes.setdefault(key, []).append(i)
    if not fixes:
        return ""
    paths = it.get("paths") or []
    out = ['<section class="fixes"><h3>Fixes and what they cost</h3>']
    for (change, effect, costs), idx in fixes.items():
        links = ", ".join(f'<a href="#{it["_id"]}-p{i}">{e(paths[i].get("title"))}</a>'
                          for i in idx)
        out.append(f'<div class="fix"><h4><code>{e(change)}</code></h4><p>{e(effect)}</p>'
                   f'<p class="for">For: {links}</p>')
        if costs:
            out.append("<p>Costs:</p><ul class=\"costs\">" + "".join(
                f"<li>{e(c)}</li>" for c in costs) + "</ul>")
        out.append("</div>")
    out.append("</section>")
    return "".join(out)


def _changes(it: dict[str, Any]) -> str:
    found: dict[str, list[int]] = {}
    for i, p in enumerate(it.get("paths") or []):
        for c in p.get("what_would_change_this") or []:
            found.setdefault(str(c), []).append(i)
    if not found:
        return ""
    paths = it.get("paths") or []
    lis = "".join(
        f"<li>{e(c)} <span class=\"for\">(on: "
        + ", ".join(f'<a href="#{it["_id"]}-p{i}">{e(paths[i].get("title"))}</a>' for i in idx)
        + ")</span></li>" for c, idx in found.items())
    return f'<section class="changes"><h3>What would change this</h3><ul>{lis}</ul></section>'


def _item(it: dict[str, Any], lab: bool, *, losing_only: bool = False) -> str:
    iid = it["_id"]
    paths = it.get("paths") or []
    meta = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in _meta(it))
    c = _counts(paths)
    short = (f"{len(paths)} paths: {c['yes']} keep the client address, {c['no']} lose it"
             + (f", {c['mixed']} lose it on some connections" if c["mixed"] else "")
             + (f", {c['none']} deliver nothing" if c["none"] else "")
             + (f", {c['uncertain']} uncertain" if c["uncertain"] else "") + ".")
    parts = [f'<section class="item" id="{iid}" aria-labelledby="{iid}-h">',
             f'<h2 id="{iid}-h">{e(it["_heading"])}</h2>',
             f'<dl class="meta">{meta}</dl>']
    if not paths:
        parts.append("<p>No path was traced.</p>")
    else:
        parts.append(f'<p class="short">{e(short)}</p>')
        parts.append(_verdict_table(it, lab))
        if losing_only:
            parts.append("<section><h3>The paths that lose the client address, drawn</h3>")
            parts += [_path(it, i, p, lab) for i, p in enumerate(paths)
                      if verdict(p) in ("no", "mixed")]
        else:
            parts.append("<section><h3>Every path, drawn</h3>")
            parts += [_path(it, i, p, lab) for i, p in enumerate(paths)]
        parts.append("</section>")
        parts.append(_fixes(it))
        parts.append(_changes(it))
    findings = it.get("findings") or []
    if findings:
        parts.append("<section><h3>Findings</h3><ul class=\"findings\">" + "".join(
            f"<li>{e(f)}</li>" for f in findings) + "</ul></section>")
    if it.get("notes"):
        parts.append("<section><h3>Notes</h3><ul>" + "".join(
            f"<li>{e(n)}</li>" for n in it["notes"]) + "</ul></section>")
    parts.append("</section>")
    return "".join(parts)


def _lab_section(lab: dict[str, Any]) -> str:
    results = lab.get("results_total", 0)
    agree = lab.get("results_agree", 0)
    head = (f"Lab run {lab.get('runid')}: kube-proxy {lab.get('mode')}, external client "
            f"{lab.get('external_ip')}: {agree} of {results} probed paths agree with the "
            "prediction.")
    out = [f'<section id="lab" aria-labelledby="lab-h"><h2 id="lab-h">Lab evidence</h2>'
           f"<p>{e(head)} The paths below are those the lab probed: one per node (the lab "
           "checks every node, not one per group of alike nodes).</p>"]
    checks = lab.get("health_checks") or []
    if checks:
        rows = "".join(
            f"<tr><td class=\"{'ok' if h.get('agree') else 'bad'}\">"
            f"{'✓ agrees' if h.get('agree') else '✗ DISAGREES'}</td><td>{e(h.get('service'))}"
            f"</td><th scope=\"row\">{e(h.get('node'))}"
            f"{' (IPv6)' if h.get('family') == 6 else ''}</th><td>{e(h.get('kind'))} "
            f":{e(h.get('port'))}{e(h.get('path') or '')}</td><td>{e(h.get('predicted'))}</td>"
            f"<td>{e(h.get('observed'))}</td><td>{'in' if h.get('in_pool') else 'out'}</td>"
            "</tr>" for h in checks)
        out.append('<table class="lab"><caption>Load balancer health checks, predicted and '
                   'observed</caption><thead><tr><th scope="col">Agreement</th>'
                   '<th scope="col">Service</th><th scope="col">Node</th><th scope="col">Check'
                   '</th><th scope="col">Predicted</th><th scope="col">Observed</th>'
                   f'<th scope="col">Pool</th></tr></thead><tbody>{rows}</tbody></table>')
    if lab.get("notes"):
        out.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in lab["notes"]) + "</ul>")
    out.append("</section>")
    return "".join(out)


LEGEND = """<section id="legend" aria-labelledby="legend-h"><h2 id="legend-h">How to read the
drawings</h2><ul class="legend">
<li><strong>Boxes</strong> are the client, the load balancer, each node the packet crosses, the
ingress controller and the pod (or the app behind the controller), left to right.</li>
<li><strong>Edge labels</strong> (<code>src 10.0.0.12</code>) give the source address of the
packet on that link.</li>
<li><strong>Hatched box with a thick border and a <code>[n]</code> tag</strong>: this hop rewrote
the source address; note <code>[n]</code> under the drawing quotes the rule or setting that did
it.</li>
<li><strong>Percentages</strong> on branching edges: the share of connections load balancing
sends that way.</li>
<li><strong>Dashed edge, cross-hatched box and ✗</strong>: dropped, rejected, refused, or a node
the load balancer's health check took out of the pool.</li>
<li><strong>✓ the client / ✗ not the client</strong> on the last box: whether the address the
pod (or app) ends up with is the real client's.</li>
</ul></section>"""


CSS = """
:root{--fg:#1b1b1b;--muted:#555;--bg:#fff;--line:#c8c8c8;--accent:#0b5394;--good:#1b6e20;
--bad:#a4000f;--warn:#8a5300;--rw:#b34700;--rwbg:#fff1e0;--xbg:#f4f4f4;--box:#fafafa}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif;color:var(--fg);
background:var(--bg);margin:0}
header,nav,main,footer{max-width:1440px;margin:0 auto;padding:0 24px}
header{border-bottom:3px solid var(--fg);padding-top:16px;padding-bottom:8px}
h1{font-size:26px;margin:8px 0}
h2{font-size:21px;margin:32px 0 8px;padding-top:8px;border-top:2px solid var(--fg)}
h3{font-size:17px;margin:22px 0 6px}
h4{font-size:15px;margin:14px 0 4px}
h5{font-size:14px;margin:10px 0 4px}
code,.addr,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;
font-size:13px}
.muted,.hint,.for,figcaption{color:var(--muted)}
nav ol{columns:2;margin:4px 0}
table{border-collapse:collapse;margin:8px 0;width:100%}
caption{text-align:left;font-weight:600;padding:4px 0;color:var(--muted)}
th,td{border:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
thead th{background:#eee}
td.num{text-align:right;white-space:nowrap}
th button{font:inherit;font-weight:700;background:none;border:0;padding:0;cursor:pointer;
text-align:left;color:inherit}
th button::after{content:" ⇅";color:var(--muted)}
th[aria-sort=ascending] button::after{content:" ▲"}
th[aria-sort=descending] button::after{content:" ▼"}
ul.lost,ul.rules,ul.shares{margin:0;padding-left:18px}
ul.rules code{font-size:12px;overflow-wrap:anywhere}
.fix h4 code{font-size:14px}
p.facts{margin:4px 0}
.fk{font-weight:600}
ol.notes{margin:4px 0;padding-left:12px;list-style:none}
ol.notes code{font-size:12px}
figure.fit svg.path{max-width:100%}
.v{font-weight:700;white-space:nowrap}
.v-yes,.ok{color:var(--good);font-weight:700}
.v-no,.bad{color:var(--bad);font-weight:700}
.v-mixed,.v-uncertain{color:var(--warn)}
.v-none{color:var(--muted)}
tr.row-no td:first-child,tr.row-mixed td:first-child{box-shadow:inset 4px 0 var(--bad)}
dl.meta,dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}
dl.meta dt,dl.facts dt{font-weight:600}
dl.meta dd,dl.facts dd,.app dd{margin:0}
.app dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px}
.app dt{font-weight:600}
article.path{border:1px solid var(--line);border-left:6px solid var(--line);padding:4px 14px 10px;
margin:14px 0;break-inside:avoid-page}
article.row-no,article.row-mixed{border-left:6px double var(--bad)}
article.row-yes{border-left:6px solid var(--good)}
article .n{color:var(--muted)}
.scroll{overflow-x:auto}
figure.drawing{margin:8px 0}
.fix{border-left:4px solid var(--accent);padding:2px 12px;margin:10px 0}
.port{font-weight:400;color:var(--muted)}
svg.path{display:block;max-width:none;height:auto}
svg.path text{user-select:text;-webkit-user-select:text;fill:var(--fg)}
svg .bt{font:700 12px system-ui,"DejaVu Sans",sans-serif}
svg .bs,svg .el,svg .fn,svg .pr{font:11px ui-monospace,"DejaVu Sans Mono",monospace}
svg .pr{font-weight:700}
svg .el{fill:var(--accent)}
svg .tag{font:700 11px system-ui,"DejaVu Sans",sans-serif;fill:var(--rw)}
svg .ok{font:700 12px system-ui,"DejaVu Sans",sans-serif;fill:var(--good)}
svg .bad{font:700 12px system-ui,"DejaVu Sans",sans-serif;fill:var(--bad)}
svg .frame{fill:var(--box);stroke:#666;stroke-width:1.2}
svg .k-client .frame{fill:#eef3fb}
svg .k-lb .frame{fill:#f3eefb}
svg .k-pod .frame,svg .k-app .frame{fill:#eef8ee}
svg .rewrite .frame,svg .crossed .frame{fill:none}
svg .rewrite .frame{stroke:var(--rw);stroke-width:3}
svg .crossed .frame{stroke-dasharray:5 3}
svg .hatch{stroke:#f3b47a;stroke-width:3}
svg .hatch-bg{fill:var(--rwbg)}
svg .cross{stroke:#ddd;stroke-width:1}
svg .cross-bg{fill:var(--xbg)}
svg .edge{fill:none;stroke:#444;stroke-width:1.6}
svg .edge.dashed{stroke-dasharray:6 4}
svg .arrowhead{fill:#444}
svg .xmark{stroke:var(--bad);stroke-width:3;fill:none}
footer{border-top:1px solid var(--line);margin-top:32px;padding:12px 24px;color:var(--muted)}
@media print{
 body{font-size:10.5pt}
 header,main,footer{max-width:none;padding:0}
 nav,th button::after{display:none}
 th button{cursor:auto}
 .scroll{overflow:visible}
 svg.path{max-width:100%;width:100%}
 h2{break-before:auto;break-after:avoid}
 h3,h4{break-after:avoid}
 article.path,figure,tr{break-inside:avoid}
 a{color:inherit;text-decoration:none}
 :root{--accent:#000}
}
"""

SORT_JS = """(function(){
function key(c){var v=c.getAttribute('data-v');if(v===null)v=c.textContent;
return v!==''&&!isNaN(v)?[0,+v]:[1,v.toLowerCase()];}
function cmp(a,b){return a[0]-b[0]||(a[1]<b[1]?-1:a[1]>b[1]?1:0);}
var tables=document.querySelectorAll('table.sortable');
for(var t=0;t<tables.length;t++)(function(table){
 var ths=table.tHead.rows[0].cells;
 for(var i=0;i<ths.length;i++)(function(th,idx){
  var b=document.createElement('button');b.type='button';
  while(th.firstChild)b.appendChild(th.firstChild);th.appendChild(b);
  b.addEventListener('click',function(){
   var asc=th.getAttribute('aria-sort')!=='ascending';
   for(var j=0;j<ths.length;j++)ths[j].removeAttribute('aria-sort');
   th.setAttribute('aria-sort',asc?'ascending':'descending');
   var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
   rows.sort(function(x,y){return cmp(key(x.cells[idx]),key(y.cells[idx]))*(asc?1:-1);});
   for(var k=0;k<rows.length;k++)body.appendChild(rows[k]);
  });
 })(ths[i],i);
})(tables[t]);
})();"""


def _sha(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


# Above this many Services and pod ports the report stays small enough to open (a drawn
# Service costs 5-30 KiB): every Service keeps its overview row, but only the first DETAILED
# Services that lose the client address on some path get a section, drawing only those paths
# (bench/bench_report.py measures size and load time at 10,000 Services).
LARGE = 200
DETAILED = 200


def render_report(doc: dict[str, Any], *, title: str = DEFAULT_TITLE,
                  version: str = "") -> str:
    """The HTML document of explain JSON ``doc`` (see the module docstring). For more than
    ``LARGE`` Services the detail sections are limited as the page says."""
    items = _items(doc)
    large = len(items) > LARGE
    detailed: set[str] | None = None
    if large:
        losing_items = [it for it in items
                        if any(verdict(p) in ("no", "mixed") for p in it.get("paths") or [])]
        detailed = {it["_id"] for it in losing_items[:DETAILED]}
    lab = doc.get("lab")
    has_lab = isinstance(lab, dict)
    n_paths = sum(len(it.get("paths") or []) for it in items)
    losing = sum(1 for it in items if any(verdict(p) in ("no", "mixed")
                                          for p in it.get("paths") or []))
    csp = (f"default-src 'none'; style-src '{_sha(CSS)}'; script-src '{_sha(SORT_JS)}'; "
           "img-src data:; form-action 'none'; base-uri 'none'")
    toc = "".join(f'<li><a href="#{it["_id"]}">{e(it["_heading"])}</a>'
                  + (f' <span class="port">{e(it.get("port"))}</span>' if it.get("port") else "")
                  + "</li>" for it in items if detailed is None or it["_id"] in detailed)
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light">',
        f"<title>{e(title)}</title><style>{CSS}</style></head><body>",
        f'<header><h1>{e(title)}</h1><p>{len(items)} Services and pod ports, {n_paths} paths; '
        f"<strong>{losing}</strong> lose the client address on at least one path. Which "
        "address does each app see for a client, why, and how to get the real one.</p></header>",
        '<nav aria-label="Contents"><h2>Contents</h2><ol><li><a href="#overview">Overview</a>'
        '</li><li><a href="#legend">How to read the drawings</a></li>'
        + ('<li><a href="#lab">Lab evidence</a></li>' if has_lab else "")
        + f"{toc}</ol></nav>",
        "<main>",
    ]
    if large:
        assert detailed is not None
        body.append(f'<p class="hint" id="large">{len(items)} Services and pod ports: every one '
                    "has its row in the overview; the sections below show only the "
                    f"{len(detailed)} first Services that lose the client address, drawing "
                    "only those paths. For the full detail of some Services, run "
                    "<code>sourceip report SERVICE...</code> or <code>-n NAMESPACE</code>."
                    "</p>")
    body += [_overview(items, has_lab, detailed), LEGEND]
    if has_lab:
        assert isinstance(lab, dict)
        body.append(_lab_section(lab))
    body += [_item(it, has_lab, losing_only=large) for it in items
             if detailed is None or it["_id"] in detailed]
    if doc.get("notes"):
        body.append('<section id="notes"><h2>Notes</h2><ul>' + "".join(
            f"<li>{e(n)}</li>" for n in doc["notes"]) + "</ul></section>")
    body.append("</main>")
    body.append(f"<footer>Rendered by sourceip{' ' + e(version) if version else ''} from the "
                "results of <code>sourceip explain -o json</code>; the file loads nothing from "
                "anywhere.</footer>")
    body.append(f"<script>{SORT_JS}</script></body></html>")
    return "\n".join(body) + "\n"
