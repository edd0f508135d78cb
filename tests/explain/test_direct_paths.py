"""Direct paths (issue #16): hostNetwork pod ports and hostPorts reached without a Service,
their verdicts, the nodes that do not answer, their costs as findings, the CLI's output, and
the bad input the API server refuses (file:line: field)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from sourceip.cli.main import main
from sourceip.cluster import Cluster
from sourceip.explain import Explainer
from sourceip.explain.direct_paths import DirectExplanation, explain_direct
from sourceip.sources import load_cluster, load_example


def run(args: list[str]) -> tuple[int, str]:
    """``sourceip ARGS``: exit code and stdout + stderr (main maps errors to exit codes)."""
    runner = CliRunner()
    code = 0
    with runner.isolation() as (out, err, _):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue().decode() + err.getvalue().decode()


def _direct(cluster: Cluster) -> list[DirectExplanation]:
    return explain_direct(Explainer(cluster))


def _block(items: list[DirectExplanation], pod: str, port: int) -> DirectExplanation:
    return next(d for d in items if d.pod == pod and d.host_port == port)


def _verdicts(d: DirectExplanation) -> list[tuple[str, tuple[str, ...], bool | None]]:
    return [(p.title, p.seen, p.real_client) for p in d.paths]


def test_every_hostnetwork_port_and_hostport_has_a_block() -> None:
    items = _direct(load_example("hostnetwork"))
    assert sorted((d.pod, d.mode, d.host_port, d.protocol) for d in items) == [
        ("default/edge-node1", "hostPort", 5353, "udp"),
        ("default/edge-node1", "hostPort", 8080, "tcp"),
        ("default/edge-node2", "hostPort", 5353, "udp"),
        ("default/edge-node2", "hostPort", 8080, "tcp"),
        ("default/edge-node3", "hostPort", 5353, "udp"),
        ("default/edge-node3", "hostPort", 8080, "tcp"),
        ("default/syslog-7d9f-a", "hostNetwork", 5514, "udp"),
        ("default/syslog-7d9f-a", "hostNetwork", 6514, "tcp"),
        ("default/syslog-7d9f-b", "hostNetwork", 5514, "udp"),
        ("default/syslog-7d9f-b", "hostNetwork", 6514, "tcp"),
    ]
    for d in items:
        assert {p.kind for p in d.paths} == {d.mode.lower()}
        assert all(f"(direct, {d.mode})" in p.title for p in d.paths)
        assert all(p.summary.startswith(f"direct, {d.mode}:") for p in d.paths)


def test_hostport_paths_through_the_portmap_rules() -> None:
    d = _block(_direct(load_example("hostnetwork")), "default/edge-node1", 8080)
    assert d.heading == ("Pod default/edge-node1 (direct, hostPort 8080/tcp on node1 -> "
                         "container port 80)")
    assert _verdicts(d) == [
        ("external -> node1:8080 (direct, hostPort)", ("203.0.113.10 (the client)",), True),
        ("pod on node1 -> node1:8080 (direct, hostPort)",
         ("10.244.1.1 (node1's bridge cni0)",), False),
        ("pod on node2 -> node1:8080 (direct, hostPort)", ("10.244.2.20 (the client)",), True),
        ("the pod itself -> node1:8080 (hairpin) (direct, hostPort)",
         ("10.244.1.1 (node1's bridge cni0)",), False),
        ("node node1 itself -> node1:8080 (direct, hostPort)",
         ("10.0.0.11 (node1's address)",), True),
        ("node node1 itself -> 127.0.0.1:8080 (direct, hostPort)",
         ("10.244.1.1 (node1's bridge cni0)",), True),
        ("node node2 -> node1:8080 (direct, hostPort)", ("10.0.0.12 (node2's address)",), True),
    ]
    same_node = d.paths[1]
    assert "CNI-HOSTPORT-SETMARK" in same_node.summary
    assert same_node.rewritten_by == (
        "node1: -A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE",)
    # the fixes compared, on the external path
    assert [f.change for f in d.paths[0].fixes] == [
        "hostPort (what this pod does)", "a Service with externalTrafficPolicy: Local instead",
        "an Ingress / L7 proxy in front (HTTP only)"]


def test_nftables_back_end_keeps_same_node_pods() -> None:
    c = load_example("hostnetwork")
    c = c.with_(kube_proxy=replace(c.kube_proxy, mode="nftables"))
    d = _block(_direct(c), "default/edge-node1", 8080)
    assert d.paths[1].seen == ("10.244.1.20 (the client)",)
    assert d.paths[3].seen == ("10.244.1.1 (node1's bridge cni0)",)  # hairpin still masqueraded


def test_hostnetwork_paths_and_the_nodes_that_refuse() -> None:
    d = _block(_direct(load_example("hostnetwork")), "default/syslog-7d9f-a", 5514)
    assert d.heading == "Pod default/syslog-7d9f-a (direct, hostNetwork, 5514/udp on node1)"
    assert [v[2] for v in _verdicts(d)] == [True, True, True, True, True, None]
    refused = d.paths[-1]
    assert refused.title == ("external -> node3:5514, a node without the pod "
                             "(direct, hostNetwork)")
    assert [o.disposition for o in refused.trace.outcomes] == ["rejected"]
    assert "refused" in refused.summary
    text = " ".join(d.findings)
    assert "answers on node1, node2 only" in text
    assert "NetworkPolicy does not apply" in text
    assert "network identity" in text and "loopback" in text


def _pod(name: str, node: str | None, *, ports: str, host_network: bool = False,
         ip: str = "", phase: str = "Running") -> str:
    spec = [f"  nodeName: {node}"] if node else []
    if host_network:
        spec.append("  hostNetwork: true")
    status = f"status: {{phase: {phase}" + (f", podIP: {ip}" if ip else "") + "}"
    return "\n".join(["apiVersion: v1", "kind: Pod", f"metadata: {{name: {name}}}", "spec:",
                      *spec, "  containers:", "  - name: c", f"    ports: {ports}", status])


NODES = "\n---\n".join(
    f"apiVersion: v1\nkind: Node\nmetadata: {{name: node{i}}}\n"
    f"spec: {{podCIDR: 10.244.{i}.0/24}}\n"
    f"status: {{addresses: [{{type: InternalIP, address: 10.0.0.1{i}}}]}}" for i in (1, 2))


def _load(tmp_path: Path, *docs: str) -> Cluster:
    f = tmp_path / "c.yaml"
    f.write_text("\n---\n".join([NODES, *docs]) + "\n")
    return load_cluster([str(f)])


def test_two_pods_with_one_hostport_on_a_node_and_a_pending_one(tmp_path: Path) -> None:
    hp = "[{containerPort: 80, hostPort: 8080}]"
    c = _load(tmp_path,
              _pod("a", "node1", ports=hp, ip="10.244.1.10"),
              _pod("b", "node1", ports=hp, ip="10.244.1.11"),
              _pod("c", "node2", ports=hp, ip="10.244.2.10"),
              _pod("d", None, ports=hp, phase="Pending"),
              _pod("net", "node2", ports="[{containerPort: 9100}]", host_network=True))
    items = _direct(c)
    a = _block(items, "default/a", 8080)
    assert any(f.startswith("port conflict: default/b also asks for 8080/TCP on node1")
               and "sourceip takes default/a as holding the port" in f for f in a.findings)
    assert any(f.startswith("pod default/d is Pending and asks for the same port: 8080/TCP "
                            "is taken on every node (node1, node2)") for f in a.findings)
    # the rule of the first pod wins (sorted as the plugin's ADDs): a answers on node1
    assert a.paths[0].trace.outcomes[0].endpoint == "10.244.1.10:80"
    net = _block(items, "default/net", 9100)
    assert net.paths[-1].title.startswith("external -> node1:9100, a node without the pod")
    assert not any("conflict" in f for f in net.findings)


def test_hostip_binds_the_hostport_to_one_address(tmp_path: Path) -> None:
    c = _load(tmp_path, _pod("a", "node1", ip="10.244.1.10",
                             ports="[{containerPort: 80, hostPort: 8080, hostIP: 10.0.0.11}]"))
    (d,) = _direct(c)
    assert d.host_ip == "10.0.0.11"
    assert not any("127.0.0.1" in p.title for p in d.paths)  # -d hostIP: localhost misses
    assert d.paths[0].real_client is True


def test_explain_cli_shows_direct_blocks_and_json() -> None:
    code, out = run(["explain", "--example", "hostnetwork"])
    assert code == 0, out
    assert "Pod default/syslog-7d9f-a (direct, hostNetwork, 6514/tcp on node1)" in out
    assert "cost: NetworkPolicy does not apply" in " ".join(out.split())
    code, out = run(["explain", "--example", "hostnetwork", "-o", "json"])
    data = json.loads(out)
    assert data["services"] == []
    kinds = {p["kind"] for d in data["direct"] for p in d["paths"]}
    assert kinds == {"hostnetwork", "hostport"}
    first = data["direct"][0]
    assert {"pod", "node", "mode", "host_port", "container_port", "findings"} <= set(first)
    # Services of other examples gain no "direct" key
    code, out = run(["explain", "--example", "design-table", "-o", "json"])
    assert "direct" not in json.loads(out)


@pytest.mark.parametrize(("ports", "host_network", "want"), [
    ("[{containerPort: 80, hostPort: 70000}]", False,
     "c.yaml:{line}: spec.containers[0].ports[0].hostPort: 70000 is outside 1-65535"),
    ("[{containerPort: 80, hostPort: -1}]", False,
     "c.yaml:{line}: spec.containers[0].ports[0].hostPort: -1 is outside 1-65535"),
    ("[{containerPort: 80, hostPort: 8080}]", True,
     "c.yaml:{line}: spec.containers[0].ports[0].hostPort: 8080 must equal containerPort 80 "
     "on a hostNetwork pod"),
], ids=["hostPort above 65535", "negative hostPort", "hostNetwork hostPort != containerPort"])
def test_bad_hostports_are_errors_with_file_line_field(tmp_path: Path, ports: str,
                                                       host_network: bool, want: str) -> None:
    doc = _pod("bad", "node1", ports=ports, host_network=host_network, ip="10.244.1.10")
    f = tmp_path / "c.yaml"
    f.write_text(NODES + "\n---\n" + doc + "\n")
    line = f.read_text().splitlines().index(f"    ports: {ports}") + 1
    code, out = run(["explain", "-f", str(f)])
    assert code == 1
    assert want.format(line=line) in out
    assert "Traceback" not in out
