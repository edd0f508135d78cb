"""The HTML report (``sourceip report``): rendered from the explain JSON and nothing else.

- the report of a saved ``explain -o json`` and of the live explain are the same file;
- the words of every path come from the JSON (change them there, the report changes);
- the file is self-contained (no URL at all, a CSP forbidding every fetch), accessible
  (headings, ``th scope``, titled SVGs with real ``<text>``), and shows lab evidence beside
  the prediction when given.

The reports of the built-in examples are made once (``reports()``) and shared with
``test_html_browser.py``, which opens them in Chromium.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sourceip.cli.main import cli
from sourceip.report.html import render_report, verdict
from sourceip.report.svg import draw_path
from sourceip.sources import list_examples

EXAMPLES = sorted(name for name, _ in list_examples())


def _run(*args: str) -> str:
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


@cache
def explain_json(example: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(_run("explain", "--example", example, "-o", "json"))
    return doc


@cache
def live_report(example: str) -> str:
    """``sourceip report --example NAME -o -``: explained afresh, not from the JSON above."""
    return _run("report", "--example", example, "-o", "-")


def reports() -> dict[str, tuple[dict[str, Any], str]]:
    """example -> (its explain JSON, its HTML report)."""
    return {name: (explain_json(name), live_report(name)) for name in EXAMPLES}


def test_examples_are_listed() -> None:
    assert "seed" in EXAMPLES and "ingress-nginx" in EXAMPLES and "hostnetwork" in EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES)
def test_report_of_saved_json_is_the_live_report(example: str, tmp_path: Path) -> None:
    saved = tmp_path / "explain.json"
    saved.write_text(json.dumps(explain_json(example)))
    out = tmp_path / "from-json.html"
    CliRunner().invoke(cli, ["report", "--from-json", str(saved), "-o", str(out)],
                       catch_exceptions=False)
    assert out.read_text() == live_report(example)


def test_every_word_of_a_path_comes_from_the_json() -> None:
    doc = copy.deepcopy(explain_json("loadbalancer"))
    for s in doc["services"]:
        for i, p in enumerate(s["paths"]):
            p["title"] = f"TITLE-{i}"
            p["summary"] = f"SUMMARY-{i}"
            p["seen"] = [f"198.51.100.{i} (SEEN-{i})"] if p["seen"] else []
            p["shares"] = [{"probability": 1.0, "seen": p["seen"][0], "real_client": False}] \
                if p["seen"] else []
            p["real_client"] = False if p["seen"] else None
            p["rewritten_by"] = [f"nodeX: RULE-{i}"]
            p["what_would_change_this"] = [f"CHANGE-{i}"]
            p["fixes"] = [{"change": f"FIX-{i}", "effect": f"EFFECT-{i}",
                           "side_effects": [f"COST-{i}"]}]
            for o in p["outcomes"]:
                if o["disposition"] == "delivered":
                    o["seen_source"] = f"198.51.100.{i}"
                    o["endpoint_name"] = f"pod/ns/POD-{i}"
    html = render_report(doc)
    for s in doc["services"]:
        for i, p in enumerate(s["paths"]):
            for word in (f"TITLE-{i}", f"SUMMARY-{i}", f"RULE-{i}", f"CHANGE-{i}",
                         f"FIX-{i}", f"EFFECT-{i}", f"COST-{i}"):
                assert word in html
            if p["seen"]:
                assert f"198.51.100.{i} (SEEN-{i})" in html
                assert f"sees 198.51.100.{i}" in html  # the drawing, from outcome + seen
            assert verdict(p) in ("no", "none")
    original = explain_json("loadbalancer")
    for p in original["services"][0]["paths"]:
        assert p["title"] not in html
        assert p["summary"] not in html


def test_a_drawing_quotes_the_rule_explain_names_at_the_node_it_names() -> None:
    doc = explain_json("seed")
    path = next(p for p in doc["services"][0]["paths"] if p["title"].endswith("on node2"))
    d = draw_path(path, "t", label="x")
    assert d is not None
    node, rule = path["rewritten_by"][0].split(": ", 1)
    assert any(n.startswith(f"{node}: {rule}") for n in d.notes)
    # the hatched box is node2's, tagged [1] with the new source address
    box = re.search(r'<g class="box k-node rewrite">(.*?)</g>', d.svg)
    assert box is not None and f"node {node}" in box.group(1) and "[1] SNAT to 10.0.0.12" \
        in box.group(1)


def test_dropped_and_out_of_pool_branches_are_crossed_out() -> None:
    doc = explain_json("loadbalancer")
    paths = {p["title"]: p for p in doc["services"][0]["paths"]}
    drop = draw_path(paths["external -> NodePort on node3"], "a", label="x")
    assert drop is not None and "crossed" in drop.svg and "DROPPED" in drop.svg \
        and "KUBE-EXTERNAL-SERVICES" in drop.svg and "edge dashed" in drop.svg
    lb = next(p for t, p in paths.items() if "through the forwarding" in t)
    d = draw_path(lb, "b", label="x")
    assert d is not None
    assert "503 on 32000" in d.svg and "out of the pool" in d.svg  # node3, crossed out
    assert d.svg.count(">50%<") == 2  # the two pool nodes' shares
    assert "200 on 32000" in d.svg


def test_a_proxying_load_balancer_is_the_hop_that_rewrote_and_says_proxy() -> None:
    doc = explain_json("lb-proxy")
    p = next(p for p in doc["services"][0]["paths"] if p["kind"] == "through-lb")
    d = draw_path(p, "c", label="x")
    assert d is not None
    assert re.search(r'<g class="box k-lb rewrite">.*?proxies from 10\.0\.0\.250', d.svg)
    assert "PROXY v2 header: 203.0.113.10" in d.svg
    assert any("PROXY v2 header it sends carries the client 203.0.113.10" in n
               for n in d.notes)


@pytest.mark.parametrize("example", EXAMPLES)
def test_self_contained_and_accessible(example: str) -> None:
    doc, html = reports()[example]
    assert not re.search(r"https?://", html, re.I)  # no URL at all, not even as text
    assert "default-src 'none'" in html
    assert not re.search(r"<(link|img|iframe|object|embed)\b|\bsrc=|@import|url\((?!#)",
                         html)
    assert html.count("<script>") == 1
    for svg in re.findall(r"<svg\b[^>]*>", html):
        assert 'role="img"' in svg and "aria-labelledby=" in svg
    assert html.count("<svg") == html.count("<title id=") == html.count("<desc id=")
    for th in re.findall(r"<th\b[^>]*>", html):
        assert "scope=" in th
    assert "@media print" in html
    n_items = len(doc["services"]) + len(doc.get("direct", []))
    assert html.count('<section class="item"') == n_items


def test_lab_evidence_beside_the_prediction() -> None:
    doc = copy.deepcopy(explain_json("seed"))
    paths = doc["services"][0]["paths"]
    paths[5]["lab"] = [{"probe": "default/nginx:80/tcp#5", "agree": True,
                        "predicted": "192.168.1.1", "observed": "192.168.1.1 (nginx)",
                        "reason": ""}]
    paths[6]["lab"] = [{"probe": "default/nginx:80/tcp#6", "agree": False,
                        "predicted": "10.0.0.12", "observed": "10.0.0.99", "reason": "differs"}]
    doc["lab"] = {"runid": "abc", "mode": "iptables", "external_ip": "192.168.100.2",
                  "results_total": 2, "results_agree": 1, "health_checks": [], "notes": []}
    html = render_report(doc)
    assert "Lab evidence" in html and "1 of 2 probed paths agree" in html
    assert "Observed in the lab" in html
    assert "192.168.1.1 (nginx)" in html and "10.0.0.99" in html
    assert "✗ DISAGREES: differs" in html and "not probed" in html


def test_lab_health_checks_name_the_family() -> None:
    """A dual-stack LB's checks appear once per family; the IPv6 one says so."""
    doc = copy.deepcopy(explain_json("seed"))
    row = {"service": "default/web", "node": "node1", "kind": "http", "port": 32000,
           "path": "/healthz", "predicted": "200", "observed": "200", "agree": True,
           "in_pool": True}
    doc["lab"] = {"runid": "abc", "mode": "iptables", "external_ip": "192.168.100.2",
                  "results_total": 0, "results_agree": 0, "notes": [],
                  "health_checks": [{**row, "family": 4}, {**row, "family": 6}]}
    html = render_report(doc)
    assert html.count('<th scope="row">node1</th>') == 1
    assert html.count('<th scope="row">node1 (IPv6)</th>') == 1


def test_from_json_refuses_what_is_not_an_explain_document(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"items": []}')
    r = CliRunner().invoke(cli, ["report", "--from-json", str(bad), "-o", str(tmp_path / "o")])
    assert r.exit_code != 0
    assert "not the output of `sourceip explain -o json`" in str(r.exception or r.output)
    r = CliRunner().invoke(cli, ["report", "--from-json", str(bad), "--example", "seed",
                                 "-o", str(tmp_path / "o")])
    assert r.exit_code == 2


def test_large_cluster_reports_every_service_and_details_only_losing_ones() -> None:
    """Above LARGE Services every Service keeps its overview row; only the first DETAILED that
    lose the client address get a section, drawing only their losing paths."""
    from sourceip.report import html as H

    base = explain_json("loadbalancer")["services"][0]
    seed = explain_json("seed")["services"][0]
    services = []
    for i in range(H.LARGE + 60):
        s = json.loads(json.dumps(seed if i % 2 else base))
        s["service"] = f"ns-{i:03d}/svc"
        services.append(s)
    page = H.render_report({"services": services, "notes": []})
    assert page.count('<th scope="row" data-v="Service ns-') == len(services)
    assert page.count('<section class="item"') == H.DETAILED
    assert 'id="large"' in page
    kept = re.findall(r'<section class="item" id="([^"]+)"', page)
    assert all(f'href="#{k}"' in page for k in kept)
    # drawn paths: only those that lose the client address
    drawn = page.count('<svg class="path"')
    losing = sum(1 for s in services[:H.DETAILED * 2] for p in s["paths"]
                 if H.verdict(p) in ("no", "mixed"))
    assert 0 < drawn <= losing
