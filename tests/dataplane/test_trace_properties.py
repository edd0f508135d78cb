"""Properties of traces: probabilities sum to 1, replies un-NAT to the original tuple, and a
trace through rules parsed back from our own rendered text equals the trace through the IR."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sourceip.dataplane.tracer import Tracer
from sourceip.netfilter import render
from sourceip.netfilter.parse_iptables import parse_iptables_save
from sourceip.netfilter.parse_nft import parse_nft_json
from sourceip.netfilter.render_nft_json import render_nft_json

from .clusters import design_cluster

FLOWS = [
    ("pod/client1", "svc/web"), ("pod/client2", "svc/web"), ("pod/server", "svc/web"),
    ("node/node1", "svc/web"), ("node/node2", "svc/web"),
    ("external=192.168.100.2", "node/node1:30080"), ("external=192.168.100.2", "node/node2:30080"),
]

configs = st.fixed_dictionaries({
    "mode": st.sampled_from(["iptables", "nftables"]),
    "attach": st.sampled_from(["bridge", "routed"]),
    "inter_node": st.sampled_from(["direct", "tunnel"]),
    "etp": st.sampled_from(["Cluster", "Local"]),
    "masquerade_all": st.booleans(),
    "cluster_cidr": st.sampled_from(["10.244.0.0/16", "10.200.0.0/16", "10.0.0.0/8"]),
})


def _summary(trace):  # type: ignore[no-untyped-def]
    return sorted((o.probability, o.disposition, o.endpoint, str(o.seen_source), o.masquerade,
                   o.reply_ok) for o in trace.outcomes)


@given(configs, st.sampled_from(FLOWS))
def test_probabilities_sum_to_one_and_replies_unnat(cfg, flow) -> None:  # type: ignore[no-untyped-def]
    tracer = Tracer(design_cluster(**cfg))
    trace = tracer.trace(*flow)
    assert sum(o.probability for o in trace.outcomes) == 1
    for o in trace.outcomes:
        if o.disposition == "delivered":
            # With a clusterCIDR every path here is symmetric: the reply must come back to the
            # client as the exact reverse of what it sent.
            assert o.reply_ok, f"{flow}: {o.reply}\n{trace}"


@given(configs, st.sampled_from(FLOWS))
def test_trace_through_parsed_rules_equals_trace_through_ir(cfg, flow) -> None:  # type: ignore[no-untyped-def]
    cluster = design_cluster(**cfg)
    direct = Tracer(cluster)
    parsed = {}
    for node in ("node1", "node2"):
        rs = direct.ruleset(node)
        if rs.backend == "iptables":
            parsed[node] = parse_iptables_save(render(rs))
        else:
            parsed[node] = parse_nft_json(render_nft_json(rs))
    via_text = Tracer(cluster, rulesets=parsed)
    assert _summary(direct.trace(*flow)) == _summary(via_text.trace(*flow))


def test_lb_probabilities_split_over_endpoints() -> None:
    from sourceip.cluster import Endpoint, EndpointSlice
    from sourceip.net import parse_ip

    c = design_cluster()
    es = c.endpoint_slices[0]
    more = EndpointSlice(namespace="default", name="web-2", service_name="web",
                         endpoints=tuple(Endpoint(addresses=(parse_ip(f"10.244.2.{i}"),),
                                                  node_name="node2") for i in (30, 31)),
                         ports=es.ports)
    c = c.with_(endpoint_slices=(es, more))
    for mode in ("iptables", "nftables"):
        cfg = c.kube_proxy.__class__(mode=mode, cluster_cidrs=c.kube_proxy.cluster_cidrs)
        trace = Tracer(c, cfg).trace("pod/client1", "svc/web")
        eps = sorted(o.endpoint for o in trace.outcomes)  # type: ignore[type-var]
        assert eps == ["10.244.1.10:8080", "10.244.2.30:8080", "10.244.2.31:8080"]
        assert sum(o.probability for o in trace.outcomes) == 1
        # iptables writes probabilities with 10 decimals; nftables numgen is exact thirds.
        for o in trace.outcomes:
            assert abs(float(o.probability) - 1 / 3) < 1e-9


@given(configs, st.sampled_from(FLOWS))
def test_compiling_everything_up_front_changes_no_trace(cfg, flow) -> None:  # type: ignore[no-untyped-def]
    cluster = design_cluster(**cfg)
    lazy, eager = Tracer(cluster), Tracer(cluster, compile_all=True)
    assert str(lazy.trace(*flow)) == str(eager.trace(*flow))
