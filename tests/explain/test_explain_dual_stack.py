"""explain per IP family (issue #12): every path of each family a Service has, the family in
the text and JSON output, and IPv4-only clusters explained exactly as before."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from sourceip.explain.engine import Explainer
from sourceip.report.explain_text import render_explanations
from sourceip.sources import load_cluster, load_example

IPV6_ONLY = """\
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clusterCIDR: "fd00:10:244::/56"
---
apiVersion: v1
kind: Node
metadata: {name: a}
spec: {podCIDRs: ["fd00:10:244:1::/64"]}
status: {addresses: [{type: InternalIP, address: "fd00:10::1"}]}
---
apiVersion: v1
kind: Node
metadata: {name: b}
spec: {podCIDRs: ["fd00:10:244:2::/64"]}
status: {addresses: [{type: InternalIP, address: "fd00:10::2"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec: {nodeName: a, containers: [{name: c, ports: [{containerPort: 8080}]}]}
status: {phase: Running, podIPs: [{ip: "fd00:10:244:1::10"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec: {nodeName: b, containers: [{name: c}]}
status: {phase: Running, podIPs: [{ip: "fd00:10:244:2::20"}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ipFamilies: [IPv6]
  clusterIPs: ["fd00:10:96::10"]
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
"""


def _by(results: list, service: str) -> list:  # type: ignore[type-arg]
    return [r for r in results if r.service == service]


def test_a_dual_stack_service_is_explained_once_per_family() -> None:
    results = Explainer(load_example("dual-stack")).explain(["default/server"])
    v4, v6 = results
    assert (v4.family, v4.cluster_ip, v6.family, v6.cluster_ip) == (
        4, "10.96.0.100", 6, "fd00:10:96::100")
    assert [p.kind for p in v4.paths] == [p.kind for p in v6.paths]
    for p in v6.paths:
        assert p.trace.original.src.version == 6 and p.trace.original.dst.version == 6, p.title
    seen6 = {p.title: p.seen for p in v6.paths}
    assert seen6["external -> NodePort on node2"] == ("fd00:10::12 (node2's address on eth0)",)
    assert seen6["external -> NodePort on node1"] == ("fd00:10:244:1::1 (node1's bridge cni0)",)
    assert seen6["an endpoint pod -> its own Service (hairpin)"] == (
        "fd00:10:244:1::1 (node1's bridge cni0)",)
    assert seen6["pod on node2 (no endpoint there) -> ClusterIP"] == (
        "fd00:10:244:2::20 (the client)",)
    other = next(p for p in v6.paths if p.kind == "pod-other-node")
    assert any("fd00:10::12" in c for c in other.changes)  # masqueradeAll, traced in IPv6


def test_primary_family_first_and_single_stack_notes() -> None:
    results = Explainer(load_example("dual-stack")).explain()
    local = _by(results, "default/server-local")
    assert [r.family for r in local] == [6, 4]  # ipFamilies [IPv6, IPv4]
    etp6 = {p.title: p for p in local[0].paths}
    assert etp6["external -> NodePort on node1"].seen == ("2001:db8:ffff::10 (the client)",)
    assert etp6["external -> NodePort on node2"].real_client is None  # dropped: no endpoint
    (v4only,) = _by(results, "default/server-v4")
    assert v4only.family == 4
    assert any("single-stack IPv4" in n and "IPv6 clients have no path" in n
               for n in v4only.notes)
    (v6only,) = _by(results, "default/server-v6")
    assert v6only.family == 6 and v6only.port == "udp 53/udp"
    assert all(p.trace.original.dst.version == 6 for p in v6only.paths)


def test_the_family_is_in_the_text_and_json() -> None:
    results = Explainer(load_example("dual-stack")).explain(["default/server"])
    text = render_explanations(results)
    assert "Service default/server (NodePort, IPv4, ClusterIP 10.96.0.100" in text
    assert "Service default/server (NodePort, IPv6, ClusterIP fd00:10:96::100" in text
    assert [r.to_dict()["family"] for r in results] == ["IPv4", "IPv6"]


def test_ipv4_only_clusters_read_as_before() -> None:
    results = Explainer(load_example("design-table")).explain()
    assert results and {r.family for r in results} == {4}
    text = render_explanations(results)
    assert "IPv4" not in text and "IPv6" not in text


def test_an_ipv6_only_cluster(tmp_path: Path) -> None:
    f = tmp_path / "v6.yaml"
    f.write_text(IPV6_ONLY)
    (e,) = Explainer(load_cluster([str(f)])).explain(["default/web"])
    assert e.family == 6 and not e.notes
    seen = {p.title: p.seen for p in e.paths}
    assert seen["pod on b (no endpoint there) -> ClusterIP"] == (
        "fd00:10:244:2::20 (the client)",)
    assert seen["external -> NodePort on b"] == ("fd00:10::2 (b's address on eth0)",)
    assert seen["external -> NodePort on a"] == ("fd00:10:244:1::1 (a's bridge cni0)",)
    res = subprocess.run([sys.executable, "-m", "sourceip", "explain", "-f", str(f), "-o", "json",
                          "--external-ip", "2001:db8:7::7"],
                         capture_output=True, text=True, timeout=120, check=True)
    doc = json.loads(res.stdout)
    (svc,) = doc["services"]
    assert svc["family"] == "IPv6" and svc["cluster_ip"] == "fd00:10:96::10"
    local = [p for p in svc["paths"] if p["kind"] == "nodeport"]
    assert {p["client"] for p in local} == {"external 2001:db8:7::7"}


def test_ipvs_mode_explains_ipv4_and_says_why_not_ipv6() -> None:
    c = load_example("dual-stack")
    c = c.with_(kube_proxy=replace(c.kube_proxy, mode="ipvs"))
    results = Explainer(c).explain()
    assert {r.family for r in results if r.paths} == {4}
    (v6only,) = _by(results, "default/server-v6")
    assert not v6only.paths and v6only.family == 6
    assert any("ipvs mode is modelled for IPv4 only" in n for n in v6only.notes)
    (server,) = _by(results, "default/server")
    assert server.paths and any("IPv6 ClusterIP fd00:10:96::100" in n for n in server.notes)


def test_load_balancers_per_family() -> None:
    """``dual-stack-lb``: the dual-stack Service gets a through-LB path per family, each with
    its own VIP and health checks over that family; the IPv6-only proxying LB's TCP checks
    of the NodePort count the IPv6 endpoints (all nodes pass, eTP Cluster)."""
    from sourceip.loadbalancer import plan_load_balancer

    cluster = load_example("dual-stack-lb")
    results = Explainer(cluster).explain()
    lbs = {(r.service, r.family): p for r in results for p in r.paths
           if p.kind == "through-lb"}
    assert set(lbs) == {("default/web", 4), ("default/web", 6), ("default/echo", 6)}
    for fam, vip, client in ((4, "172.18.255.10", "203.0.113.10"),
                             (6, "fd00:18:255::10", "2001:db8:ffff::10")):
        p = lbs[("default/web", fam)]
        assert p.load_balancer is not None and p.load_balancer["vip"] == vip
        assert p.load_balancer["pool"] == ["node1", "node2"]
        assert [c["response"]["status"] for c in p.load_balancer["checks"]] == [200, 200, 503]
        assert p.seen == (f"{client} (the client)",)
        assert all(o.hops[1].packet_in.dst.version == fam for o in p.trace.outcomes)
    echo = lbs[("default/echo", 6)]
    assert echo.load_balancer is not None
    assert echo.load_balancer["source_address"] == "fd00:10::250"
    assert echo.load_balancer["pool"] == ["node1", "node2", "node3"]
    assert set(echo.seen) == {"fd00:10::11 (node1's address on eth0)",
                              "fd00:10:244:2::1 (node2's bridge cni0)",
                              "fd00:10::13 (node3's address on eth0)"}
    web = cluster.service("default/web")
    assert plan_load_balancer(cluster, web).vip == "172.18.255.10"  # type: ignore[union-attr]
    assert plan_load_balancer(cluster, web, family=6).vip == (  # type: ignore[union-attr]
        "fd00:18:255::10")


def test_direct_paths_per_family() -> None:
    """``dual-stack-hostnetwork``: each hostPort and hostNetwork port is explained per family;
    IPv6 hostPort paths go through the portmap plugin's IPv6 rules (the external client kept,
    same-node pods and hairpin masqueraded to the bridge's IPv6 address) and have no
    localhost path (the plugin has no ::1 rule)."""
    from sourceip.explain.direct_paths import DirectExplanation

    results = [r for r in Explainer(load_example("dual-stack-hostnetwork")).explain()
               if isinstance(r, DirectExplanation)]
    edge = [r for r in results if r.pod == "default/edge-node1" and r.host_port == 8080]
    assert [r.family for r in edge] == [4, 6]
    v4, v6 = ({p.title: p for p in r.paths} for r in edge)
    assert set(v4) - set(v6) == {"node node1 itself -> 127.0.0.1:8080 (direct, hostPort)"}
    assert v6["external -> node1:8080 (direct, hostPort)"].seen == (
        "2001:db8:ffff::10 (the client)",)
    assert v6["pod on node1 -> node1:8080 (direct, hostPort)"].seen == (
        "fd00:10:244:1::1 (node1's bridge cni0)",)
    assert v6["pod on node2 -> node1:8080 (direct, hostPort)"].seen == (
        "fd00:10:244:2::20 (the client)",)
    for p in v6.values():
        assert p.trace.original.dst.version == 6, p.title
        assert [o.endpoint for o in p.trace.outcomes] == ["[fd00:10:244:1::10]:80"], p.title
    syslog = [r for r in results if r.pod == "default/syslog-7d9f-a" and r.protocol == "tcp"]
    assert [r.family for r in syslog] == [4, 6]
    assert syslog[1].to_dict()["family"] == "IPv6"
    ext6 = syslog[1].paths[0]
    assert ext6.seen == ("2001:db8:ffff::10 (the client)",)
    assert [o.disposition for o in ext6.trace.outcomes] == ["delivered"]


def test_cni_egress_masquerade_per_family() -> None:
    """``egressMasquerade: true``: a pod leaving the pod pools for another node's address is
    masqueraded by the CNI on its own node, in each family (the lab measures the same); a pod
    to a pod is not, and the external client is unaffected."""
    from sourceip.explain.direct_paths import DirectExplanation

    c = load_example("dual-stack-hostnetwork")
    masq = c.with_(profile=replace(c.profile, egress_masquerade=True))
    for cluster, want in ((c, {4: "10.244.2.20 (the client)",
                               6: "fd00:10:244:2::20 (the client)"}),
                          (masq, {4: "10.0.0.12 (node2's address on eth0)",
                                  6: "fd00:10::12 (node2's address on eth0)"})):
        results = [r for r in Explainer(cluster).explain()
                   if isinstance(r, DirectExplanation) and r.pod == "default/edge-node1"
                   and r.host_port == 8080]
        for r in results:
            paths = {p.title: p for p in r.paths}
            other = paths["pod on node2 -> node1:8080 (direct, hostPort)"]
            assert other.seen == (want[r.family],), (r.family, other.seen)
            ext = paths["external -> node1:8080 (direct, hostPort)"]
            assert ext.seen[0].endswith("(the client)")
    ds = load_example("dual-stack")
    ds = ds.with_(profile=replace(ds.profile, egress_masquerade=True))
    v4, v6 = Explainer(ds).explain(["default/server"])
    for r in (v4, v6):
        seen = {p.title: p.seen for p in r.paths}
        # pod -> ClusterIP -> a pod on another node: inside the pool, no CNI NAT
        assert seen["pod on node2 (no endpoint there) -> ClusterIP"][0].endswith(
            "(the client)")


def test_ipv6_path_targets_are_bracketed() -> None:
    """``[addr]:port`` for IPv6 targets (``fd00:10:96::100:80`` cannot be read back)."""
    targets = [p.target for e in Explainer(load_example("dual-stack")).explain() for p in e.paths]
    v6 = [t for t in targets if t.count(":") > 1]
    assert v6 and all(t.startswith("[") and "]:" in t for t in v6), v6
