"""docs/architecture.md, "Measured": the source IPs measured in a real kernel, reproduced by
the tracer.

Both pod-attachment profiles, both kube-proxy modes. With a routed-veth CNI the node answers
from its own address where a bridge CNI uses the bridge gateway."""

from __future__ import annotations

import pytest

from sourceip.dataplane.tracer import Tracer

from .clusters import design_cluster

EXTERNAL = "192.168.100.2"

# (path id, etp, from, to, {attach: expected seen source or None for dropped})
TABLE = [
    ("pod on node1 -> ClusterIP", "Cluster", "pod/client1", "svc/web",
     {"bridge": "10.244.1.20", "routed": "10.244.1.20"}),
    ("pod on node2 -> ClusterIP", "Cluster", "pod/client2", "svc/web",
     {"bridge": "10.244.2.20", "routed": "10.244.2.20"}),
    ("external -> node2 NodePort, no pod on node2", "Cluster", "external", "node/node2:30080",
     {"bridge": "10.0.0.12", "routed": "10.0.0.12"}),
    ("external -> node1 NodePort, pod on node1", "Cluster", "external", "node/node1:30080",
     {"bridge": "10.244.1.1", "routed": "10.0.0.11"}),
    ("external -> node1 NodePort, ETP Local", "Local", "external", "node/node1:30080",
     {"bridge": EXTERNAL, "routed": EXTERNAL}),
    ("external -> node2 NodePort, ETP Local", "Local", "external", "node/node2:30080",
     {"bridge": None, "routed": None}),
    ("server pod -> its own ClusterIP (hairpin)", "Cluster", "pod/server", "svc/web",
     {"bridge": "10.244.1.1", "routed": "10.0.0.11"}),
]


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
@pytest.mark.parametrize("attach", ["bridge", "routed"])
@pytest.mark.parametrize(("path", "etp", "src", "dst", "expected"), TABLE,
                         ids=[row[0] for row in TABLE])
def test_design_table(mode: str, attach: str, path: str, etp: str, src: str, dst: str,
                      expected: dict[str, str | None]) -> None:
    tracer = Tracer(design_cluster(attach=attach, etp=etp, mode=mode), external_ip=EXTERNAL)
    trace = tracer.trace(src, dst)
    assert sum(o.probability for o in trace.outcomes) == 1
    (outcome,) = trace.outcomes
    want = expected[attach]
    if want is None:
        assert outcome.disposition == "dropped", str(trace)
    else:
        assert outcome.disposition == "delivered", str(trace)
        assert outcome.endpoint == "10.244.1.10:8080"
        assert str(outcome.seen_source) == want, str(trace)
        assert outcome.reply_ok, outcome.reply


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_masquerade_all_makes_pod_to_clusterip_show_node(mode: str) -> None:
    tracer = Tracer(design_cluster(masquerade_all=True, mode=mode))
    (o,) = tracer.trace("pod/client2", "svc/web").outcomes
    assert o.masquerade and str(o.seen_source) == "10.0.0.12"
    assert o.snat_node == "node2"


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_pod_range_outside_cluster_cidr_is_masqueraded(mode: str) -> None:
    tracer = Tracer(design_cluster(cluster_cidr="10.200.0.0/16", mode=mode))
    (o,) = tracer.trace("pod/client2", "svc/web").outcomes
    assert o.masquerade and str(o.seen_source) == "10.0.0.12"


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_hostnetwork_client_shows_node_address(mode: str) -> None:
    tracer = Tracer(design_cluster(mode=mode))
    (o,) = tracer.trace("node/node2", "svc/web").outcomes
    assert str(o.seen_source) == "10.0.0.12" and o.masquerade


def test_tunnel_profile_masquerades_to_tunnel_address() -> None:
    tracer = Tracer(design_cluster(inter_node="tunnel"), external_ip=EXTERNAL)
    (o,) = tracer.trace("external", "node/node2:30080").outcomes
    assert str(o.seen_source) == "10.244.2.0"
    assert o.snat_iface == "flannel.1"
