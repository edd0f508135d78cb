"""The topology alone (no kube-proxy rules): pod attachment, inter-node routes, the CNI's
egress masquerade, the probe outcomes, and the router's per-node routing of external probes."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address

import pytest

from sourceip.cluster import ContainerPort, Pod
from sourceip.lab.model import ProbeSpec
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

HOST_SERVER = Pod(namespace="kube-system", name="hostsrv", node_name="node1",
                  ips=(ip_address(NODE1_IP),), host_network=True,
                  ports=(ContainerPort(container_port=9000),))


def probe(client: str, dst: str, port: int, proto: str = "tcp", via: str | None = None,
          sid: str | None = None) -> ProbeSpec:
    return ProbeSpec(id=sid or f"{client}->{proto}/{dst}:{port}", client=client, proto=proto,
                     dst_ip=dst, dst_port=port, via_node=via)


def observe(cluster, specs, **kw):  # type: ignore[no-untyped-def]
    with Lab(plan_lab(cluster, rules=False, **kw)) as lab:
        return {o.spec_id: o for o in lab.probe(specs)}


@pytest.mark.parametrize("pod_attach, inter_node, node2_src, node1_src", [
    ("bridge", "direct", NODE2_IP, BRIDGE1_IP),
    ("routed", "direct", NODE2_IP, NODE1_IP),
    ("bridge", "tunnel", "10.244.2.0", BRIDGE1_IP),
    ("routed", "tunnel", "10.244.2.0", NODE1_IP),
])
def test_pod_and_node_traffic(clean_host: None, pod_attach: str, inter_node: str,
                              node2_src: str, node1_src: str) -> None:
    """Pod → pod keeps the pod IP on every profile; a node process talks from the address
    of the interface toward the pod (P3)."""
    specs = [
        probe("pod/default/client1", SERVER_IP, 8080, sid="same node"),
        probe("pod/default/client2", SERVER_IP, 8080, sid="other node"),
        probe("pod/default/client2", SERVER_IP, 5353, "udp", sid="other node udp"),
        probe("node/node2", SERVER_IP, 8080, sid="node2 process"),
        probe("node/node1", SERVER_IP, 8080, sid="node1 process"),
    ]
    got = observe(design_cluster(pod_attach=pod_attach, inter_node=inter_node), specs)
    assert got["same node"].seen_source == CLIENT1_IP
    assert got["other node"].seen_source == CLIENT2_IP
    assert got["other node"].endpoint == f"{SERVER_IP}:8080"
    assert got["other node"].pod == "default/server"
    assert got["other node udp"].seen_source == CLIENT2_IP
    assert got["other node udp"].endpoint == f"{SERVER_IP}:5353"
    assert got["node2 process"].seen_source == node2_src
    assert got["node1 process"].seen_source == node1_src


def test_probe_outcomes(clean_host: None) -> None:
    specs = [
        probe("pod/default/client2", SERVER_IP, 9999, sid="closed tcp"),
        probe("pod/default/client2", SERVER_IP, 9999, "udp", sid="closed udp"),
        probe("external", "10.0.0.99", 80, sid="nobody"),
        probe("external", NODE2_IP, 1, sid="node port closed"),
        probe("pod/default/nobody", SERVER_IP, 8080, sid="unknown client"),
    ]
    got = observe(design_cluster(), specs)
    assert got["closed tcp"].disposition == "rejected"
    assert got["closed udp"].disposition == "rejected"
    assert got["nobody"].disposition == "dropped"
    assert 900 <= got["nobody"].elapsed_ms < 2500, "a dropped path costs about a second"
    assert got["node port closed"].disposition == "rejected"
    assert got["unknown client"].disposition == "error"


@pytest.mark.parametrize("masq, seen", [(False, CLIENT2_IP), (True, NODE2_IP)])
def test_cni_egress_masquerade(clean_host: None, masq: bool, seen: str) -> None:
    """Pod → hostNetwork server on another node: the CNI's egress NAT (flannel --ip-masq,
    calico natOutgoing) turns the pod IP into the client node's IP (P2/P18)."""
    c = design_cluster(egress_masquerade=masq)
    c = c.with_(pods=(*c.pods, HOST_SERVER))
    got = observe(c, [probe("pod/default/client2", NODE1_IP, 9000, sid="to host"),
                      probe("pod/default/client2", SERVER_IP, 8080, sid="to pod")])
    assert got["to host"].seen_source == seen
    assert got["to host"].pod == "kube-system/hostsrv"
    assert got["to pod"].seen_source == CLIENT2_IP  # pod → pod is never masqueraded


def test_external_probe_reaches_the_node_it_names(clean_host: None) -> None:
    """The router sends an external probe for a Service VIP to the node named by via_node
    (policy routing on the source port); kube-proxy's rules on that node then decide."""
    reason = rules_skip_reason()
    if reason:
        pytest.skip(reason)
    c = design_cluster()
    specs = [probe("external", CLUSTER_IP, 80, via="node1", sid="via node1"),
             probe("external", CLUSTER_IP, 80, via="node2", sid="via node2"),
             probe("external", CLUSTER_IP, 80, via="node3", sid="via nowhere")]
    with Lab(plan_lab(c)) as lab:
        got = {o.spec_id: o for o in lab.probe(specs, attempts=2)}
    # off-cluster → ClusterIP is masqueraded by the receiving node (P4)
    assert got["via node1"].seen_source == BRIDGE1_IP
    assert got["via node2"].seen_source == NODE2_IP
    assert got["via nowhere"].disposition == "error"


def test_external_client_keeps_its_address_to_a_pod(clean_host: None) -> None:
    """No NAT on the router: external → node IP shows the client address (hostNetwork)."""
    c = design_cluster()
    c = c.with_(pods=(*c.pods, replace(HOST_SERVER, name="hostsrv2")))
    got = observe(c, [probe("external", NODE1_IP, 9000, sid="x")])
    assert got["x"].seen_source == EXTERNAL_IP
