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
