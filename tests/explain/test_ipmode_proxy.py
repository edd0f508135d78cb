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


def test_proxy_mode_lb_ip_is_reached_through_the_load_balancer_only() -> None:
    (e,) = explain(_lb_cluster("VIP"))
    by_kind = {(p.kind, ip): p for p in e.paths for ip in ("172.18.255.10", "172.18.255.11")
               if ip in p.title}
    # kube-proxy programs the VIP-mode IP on every node, not the Proxy-mode one
    assert ("loadbalancer", "172.18.255.10") in by_kind
    assert ("loadbalancer", "172.18.255.11") not in by_kind
    # through the load balancer, the Proxy-mode IP arrives at the nodes' NodePort (KEP-1860)
    lb = by_kind[("through-lb", "172.18.255.11")]
    delivered = [o for o in lb.trace.outcomes if o.disposition == "delivered"]
    assert delivered and sum(o.probability for o in delivered) == 1
    assert all(o.hops[0].packet_out is not None and o.hops[0].packet_out.dport == 30080
               for o in delivered)


def test_traffic_leaving_the_cluster_claims_no_reply_path() -> None:
    tr = Tracer(design_cluster()).trace("pod/client1", "198.51.100.9:443")
    (o,) = tr.outcomes
    assert o.disposition == "passed" and o.reply_ok is None
    assert "outside the cluster" in o.reply
