"""ipMode Proxy load balancers and destinations outside the cluster."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from sourceip.cluster import LoadBalancerIngress
from sourceip.dataplane.tracer import Tracer
from sourceip.explain import explain
from sourceip.net import parse_ip

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dataplane"))
from clusters import design_cluster  # noqa: E402


def _lb_cluster(mode: str):  # type: ignore[no-untyped-def]
    c = design_cluster()
    svc = replace(c.services[0], type="LoadBalancer", lb_ingress=(
        LoadBalancerIngress(ip=parse_ip("172.18.255.10")),
        LoadBalancerIngress(ip=parse_ip("172.18.255.11"), ip_mode="Proxy")))
    return c.with_(services=(svc,))


def test_proxy_mode_lb_ip_gets_a_note_not_a_path() -> None:
    (e,) = explain(_lb_cluster("VIP"))
    titles = [p.title for p in e.paths]
    assert any("172.18.255.10" in t for t in titles)
    assert not any("172.18.255.11" in t for t in titles)
    assert any("172.18.255.11 has ipMode Proxy" in n for n in e.notes)


def test_traffic_leaving_the_cluster_claims_no_reply_path() -> None:
    tr = Tracer(design_cluster()).trace("pod/client1", "198.51.100.9:443")
    (o,) = tr.outcomes
    assert o.disposition == "passed" and o.reply_ok is None
    assert "outside the cluster" in o.reply
