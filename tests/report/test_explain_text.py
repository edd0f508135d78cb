"""Text renderings of explain: the ASCII path drawing and the per-Service table."""

from __future__ import annotations

from sourceip.explain import explain
from sourceip.report.explain_text import draw_path, render_explanations
from sourceip.sources import load_example


def _paths():  # type: ignore[no-untyped-def]
    (svc,) = explain(load_example("seed"), external_ip="192.168.100.2")
    return svc, {p.title: p for p in svc.paths}


def test_drawing_of_external_nodeport_through_another_node() -> None:
    _, paths = _paths()
    p = paths["external -> NodePort on node2"]
    assert draw_path(p) == (
        "[external 192.168.100.2] --> [node node2]         --> [node node1] --> "
        "[pod/default/nginx-7c5ddbdf54-x7k2p]\n"
        "                             DNAT,SNAT->10.0.0.12                      "
        "sees 10.0.0.12"
    )


def test_table_names_the_rewriting_node_and_the_fix() -> None:
    svc, _ = _paths()
    text = render_explanations([svc], wide=True)
    assert "REWRITTEN BY" in text
    assert "node2: -A KUBE-POSTROUTING" in text
    assert "spec.externalTrafficPolicy: Local" in text
    assert "cost: nodes without a ready endpoint drop this traffic (node2)" in text


def test_summary_line_per_service() -> None:
    from sourceip.report.explain_text import summarize

    (cluster_svc,) = explain(load_example("seed"), external_ip="192.168.100.2")
    assert summarize(cluster_svc) == ("in short: pod clients keep their address; external "
                                      "clients are seen as a rewritten address.")
    # (192.168.100.2 would be inside seed's clusterCIDR 192.168.0.0/16: kube-proxy would take
    # it for a pod; the default external client is outside)
    (local_svc,) = explain(load_example("seed-local"))
    assert summarize(local_svc) == ("in short: pod clients keep their address; external "
                                    "clients keep their address (1 path dropped or rejected).")


def _by_kind(example: str) -> dict[str, list]:  # type: ignore[type-arg]
    out: dict[str, list] = {}  # type: ignore[type-arg]
    for svc in explain(load_example(example)):
        for p in svc.paths:
            out.setdefault(p.kind, []).append(p)
    return out


def test_a_hairpin_with_two_endpoints_is_mixed_not_plain_no() -> None:
    """loadbalancer: web-a reaching its own Service lands on itself half the time (masqueraded
    to node1's bridge) and on web-b on node2 the other half (its own address)."""
    from sourceip.report.explain_text import _verdict, shares

    (hairpin,) = _by_kind("loadbalancer")["hairpin"]
    assert hairpin.real_client is False  # the JSON's verdict is unchanged
    assert sorted(shares(hairpin)) == [(0.5, "10.244.1.1 (node1's bridge cni0)", False),
                                       (0.5, "10.244.1.10 (the client)", True)]
    verdict = _verdict(hairpin)
    assert "50%: 10.244.1.1 (node1's bridge cni0) NO" in verdict
    assert "50%: the client yes" in verdict
    text = " ".join(render_explanations(explain(load_example("loadbalancer"))).split())
    assert "some connections keep the client address, others do not" in text
    assert "50%: 10.244.1.1 (node1's bridge cni0), not the client" in text


def test_paths_with_one_answer_still_read_yes_or_no() -> None:
    svc, paths = _paths()
    text = render_explanations([svc])
    assert "%" not in text.split("fixes:")[0].split("REAL CLIENT?")[1].split(":\n")[0]
    assert "external -> NodePort on node2" in text


def test_the_diagram_draws_every_branch() -> None:
    (hairpin,) = _by_kind("loadbalancer")["hairpin"]
    drawing = draw_path(hairpin)
    assert drawing.count("50% of connections:") == 2
    assert "[pod/default/web-a]" in drawing and "[pod/default/web-b]" in drawing
    assert "DNAT,SNAT->10.244.1.1" in drawing and "sees 10.244.1.10" in drawing


def test_the_diagram_shows_the_load_balancer_and_the_controller() -> None:
    paths = _by_kind("ingress-proxy-protocol")
    (lb,) = [p for p in paths["through-lb"]]
    drawing = draw_path(lb)
    assert "[external 203.0.113.10] --> [load balancer]" in drawing
    assert "proxies from 10.0.0.250 +PROXY v2" in drawing
    (ing,) = paths["ingress"]
    drawing = draw_path(ing, width=80)
    assert max(len(ln) for ln in drawing.splitlines()) <= 80
    assert "[ingress-nginx pod/ingress-nginx/ingress-nginx-controller-" in drawing
    assert "[app http://example.test/]" in drawing
    assert "peer 192.168.2.30, resolves 203.0.113.10" in drawing


def test_explain_text_fits_the_width_and_loses_nothing() -> None:
    from sourceip.report.term import Term

    items = explain(load_example("ingress-nginx"))
    wide = render_explanations(items, term=Term(width=400))
    for width in (100, 60):
        text = render_explanations(items, term=Term(width=width))
        assert max(len(ln) for ln in text.splitlines()) <= width
        assert text.split() == wide.split() or sorted(text.split()) == sorted(wide.split())
