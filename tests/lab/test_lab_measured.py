"""The table of docs/architecture.md ("Measured"), measured again: kube-proxy's rules loaded
into real namespaces, real connections, hand-written predictions (the table is the spec).

Routed-veth CNI: the node answers from its own address (docs/architecture.md, "Measured":
"routed-veth CNI: node1's IP"), so paths that show the bridge address on a bridge CNI show
10.0.0.11 there.
Flannel-style tunnel: node2 forwards to node1's pod over flannel.1, so the masquerade address
is flannel.1's (10.244.2.0, k8s_sourceip_matrix P7)."""

from __future__ import annotations

import pytest

from sourceip.lab.compare import compare_all
from sourceip.lab.model import PredictedOutcome, Prediction, ProbeSpec
from sourceip.lab.plan import plan_lab
from sourceip.lab.run import Lab

from .clusters import (
    BRIDGE1_IP,
    CLIENT1_IP,
    CLIENT2_IP,
    CLUSTER_IP,
    EXTERNAL_IP,
    NODE1_IP,
    NODE2_IP,
    SERVER_IP,
    design_cluster,
)
from .helpers import lab_skip_reason, rules_skip_reason

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(lab_skip_reason() is not None, reason=str(lab_skip_reason()))]


def _delivered(seen: str, port: int = 8080) -> tuple[PredictedOutcome, ...]:
    return (PredictedOutcome(probability=1.0, disposition="delivered",
                             endpoint=f"{SERVER_IP}:{port}", seen_source=seen),)


DROPPED = (PredictedOutcome(probability=1.0, disposition="dropped"),)


def design_predictions(pod_attach: str, inter_node: str = "direct") -> list[Prediction]:
    node1_addr = BRIDGE1_IP if pod_attach == "bridge" else NODE1_IP
    node2_fwd = NODE2_IP if inter_node == "direct" else "10.244.2.0"
    rows = [
        # id, client, proto, dst, port, via, outcomes
        ("pod on node1 -> ClusterIP (Cluster)", "pod/default/client1", "tcp", CLUSTER_IP, 80,
         None, _delivered(CLIENT1_IP)),
        ("pod on node2 -> ClusterIP (Cluster)", "pod/default/client2", "tcp", CLUSTER_IP, 80,
         None, _delivered(CLIENT2_IP)),
        ("external -> node2:NodePort (Cluster)", "external", "tcp", NODE2_IP, 30080, "node2",
         _delivered(node2_fwd)),
        ("external -> node1:NodePort (Cluster)", "external", "tcp", NODE1_IP, 30080, "node1",
         _delivered(node1_addr)),
        ("external -> node1:NodePort (Local)", "external", "tcp", NODE1_IP, 30081, "node1",
         _delivered(EXTERNAL_IP)),
        ("external -> node2:NodePort (Local)", "external", "tcp", NODE2_IP, 30081, "node2",
         DROPPED),
        ("server pod -> its own ClusterIP (hairpin)", "pod/default/server", "tcp", CLUSTER_IP,
         80, None, _delivered(node1_addr)),
        ("udp: pod on node2 -> ClusterIP", "pod/default/client2", "udp", CLUSTER_IP, 53, None,
         _delivered(CLIENT2_IP, 5353)),
        ("udp: external -> node2:NodePort (Cluster)", "external", "udp", NODE2_IP, 30053,
         "node2", _delivered(node2_fwd, 5353)),
    ]
    return [Prediction(spec=ProbeSpec(id=r[0], client=r[1], proto=r[2], dst_ip=r[3],
                                      dst_port=r[4], via_node=r[5]), outcomes=r[6])
            for r in rows]


def run_and_compare(cluster, predictions, **plan_kw):  # type: ignore[no-untyped-def]
    plan = plan_lab(cluster, **plan_kw)
    assert plan.external_ip == EXTERNAL_IP
    with Lab(plan) as lab:
        observations = lab.probe([p.spec for p in predictions])
    agreements = compare_all(predictions, observations)
    bad = [f"{a.spec.id}: {a.reason}" for a in agreements if not a.agree]
    assert not bad, "\n".join(bad)
    return agreements


@pytest.mark.parametrize("pod_attach, mode, backend", [
    ("bridge", "iptables", "legacy"),
    ("bridge", "iptables", "nft"),
    ("bridge", "nftables", "legacy"),
    ("routed", "iptables", "legacy"),
    ("routed", "nftables", "legacy"),
])
def test_design_table(clean_host: None, pod_attach: str, mode: str, backend: str) -> None:
    reason = rules_skip_reason(mode)
    if reason:
        pytest.skip(reason)
    run_and_compare(design_cluster(pod_attach=pod_attach, mode=mode),
                    design_predictions(pod_attach), iptables_backend=backend)


def test_design_table_over_a_flannel_tunnel(clean_host: None) -> None:
    reason = rules_skip_reason()
    if reason:
        pytest.skip(reason)
    run_and_compare(design_cluster(inter_node="tunnel"),
                    design_predictions("bridge", "tunnel"))


def test_a_wrong_prediction_is_caught(clean_host: None) -> None:
    """The lab can disagree: predicting the seed article's claim (node2's IP for a pod on
    node2 → ClusterIP) fails against the kernel."""
    reason = rules_skip_reason()
    if reason:
        pytest.skip(reason)
    spec = ProbeSpec(id="seed claim", client="pod/default/client2", dst_ip=CLUSTER_IP,
                     dst_port=80)
    wrong = Prediction(spec=spec, outcomes=_delivered(NODE2_IP))
    plan = plan_lab(design_cluster())
    with Lab(plan) as lab:
        observations = lab.probe([spec])
    (agreement,) = compare_all([wrong], observations)
    assert not agreement.agree
    assert observations[0].seen_source == CLIENT2_IP
