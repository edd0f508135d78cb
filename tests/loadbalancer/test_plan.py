"""The load balancer model: provider detection, per-node checks, pool, leader, notes, fixes."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest

from sourceip.cluster import (
    Cluster,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    LoadBalancerIngress,
    LoadBalancerProfile,
    Node,
    Service,
    ServicePort,
)
from sourceip.kubeproxy.healthcheck import service_health
from sourceip.loadbalancer import (
    PROVIDERS,
    detect_profile,
    fixes,
    metallb_l2_leader,
    plan_load_balancer,
)

A = ipaddress.ip_address
VIP = "203.0.113.10"


def svc(*, etp: str = "Local", ann: dict[str, str] | None = None, typ: str = "LoadBalancer",
        vip: str | None = VIP) -> Service:
    return Service(
        namespace="default", name="web", type=typ,  # type: ignore[arg-type]
        cluster_ips=(A("10.96.0.10"),),
        ports=(ServicePort(port=80, target_port=8080, node_port=30080),),
        external_traffic_policy=etp,  # type: ignore[arg-type]
        health_check_node_port=32000 if etp == "Local" and typ == "LoadBalancer" else None,
        lb_ingress=(LoadBalancerIngress(ip=A(vip)),) if vip else (),
        annotations=ann or {},
    )


def ep(ip: str, node: str, **kw: bool | None) -> Endpoint:
    return Endpoint(addresses=(A(ip),), node_name=node, **kw)  # type: ignore[arg-type]


def cluster(service: Service, eps: list[Endpoint], *, nodes: tuple[Node, ...] | None = None,
            profiles: tuple[LoadBalancerProfile, ...] = ()) -> Cluster:
    nodes = nodes if nodes is not None else tuple(
        Node(name=f"node{i}", internal_ips=(A(f"10.0.0.1{i}"),)) for i in (1, 2, 3))
    es = EndpointSlice(namespace="default", name="web-1", service_name="web",
                       endpoints=tuple(eps), ports=(EndpointPort(port=8080),))
    return Cluster(nodes=nodes, services=(service,), endpoint_slices=(es,),
                   lb_profiles=profiles)


TWO_ON_1 = [ep("10.244.1.5", "node1"), ep("10.244.1.6", "node1"), ep("10.244.2.5", "node2")]


# ---- detection -------------------------------------------------------------------------------

DETECT_ROWS = [
    ("no annotation -> generic", {}, "generic", "forwarding", "none", "default:"),
    ("aws-load-balancer-type external + ip -> NLB IP targets, proxying",
     {"service.beta.kubernetes.io/aws-load-balancer-type": "external",
      "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip"},
     "aws-nlb-ip", "proxying", "none", "aws-load-balancer-type: external"),
    ("NLB IP targets with preserve_client_ip -> forwarding",
     {"service.beta.kubernetes.io/aws-load-balancer-type": "external",
      "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
      "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes":
          "preserve_client_ip.enabled=true"},
     "aws-nlb-ip", "forwarding", "none", "preserve_client_ip.enabled=true"),
    ("external + instance + proxy-protocol * -> NLB instance, PROXY v2",
     {"service.beta.kubernetes.io/aws-load-balancer-type": "external",
      "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "instance",
      "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol": "*"},
     "aws-nlb-instance", "forwarding", "v2", "PROXY v2"),
    ("in-tree nlb", {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
     "aws-nlb-instance", "forwarding", "none", "in-tree NLB"),
    ("other aws annotation -> CLB, proxy-protocol * is v1",
     {"service.beta.kubernetes.io/aws-load-balancer-proxy-protocol": "*"},
     "aws-clb", "proxying", "v1", "Classic LB"),
    ("GKE l4-rbs", {"cloud.google.com/l4-rbs": "enabled"}, "gce", "forwarding", "none",
     "cloud.google.com/l4-rbs"),
    ("GKE internal", {"networking.gke.io/load-balancer-type": "Internal"}, "gce",
     "forwarding", "none", "networking.gke.io/load-balancer-type"),
    ("azure", {"service.beta.kubernetes.io/azure-disable-load-balancer-floating-ip": "true"},
     "azure", "forwarding", "none", "azure-disable-load-balancer-floating-ip"),
    ("metallb.universe.tf", {"metallb.universe.tf/address-pool": "pool"}, "metallb-l2",
     "forwarding", "none", "layer 2 assumed"),
    ("metallb.io", {"metallb.io/ip-allocated-from-pool": "pool"}, "metallb-l2",
     "forwarding", "none", "metallb.io/"),
    ("octavia PROXY", {"loadbalancer.openstack.org/proxy-protocol": "true"}, "octavia",
     "proxying", "v1", "PROXY v1"),
]


@pytest.mark.parametrize(("ann", "provider", "mode", "pp", "how"),
                         [r[1:] for r in DETECT_ROWS], ids=[r[0] for r in DETECT_ROWS])
def test_detect_from_annotations(ann: dict[str, str], provider: str, mode: str, pp: str,
                                 how: str) -> None:
    s = svc(ann=ann)
    prof, decided = detect_profile(cluster(s, []), s)
    assert (prof.provider, prof.mode, prof.proxy_protocol) == (provider, mode, pp)
    assert how in decided


def test_profile_by_service_beats_catch_all_and_annotations() -> None:
    s = svc(ann={"cloud.google.com/l4-rbs": "enabled"})
    specific = LoadBalancerProfile(name="lab", provider="octavia", services=("default/web",),
                                   proxy_protocol="v2")
    catch_all = LoadBalancerProfile(name="all", provider="metallb-bgp")
    prof, decided = detect_profile(cluster(s, [], profiles=(catch_all, specific)), s)
    assert (prof.provider, prof.proxy_protocol, prof.mode) == ("octavia", "v2", "proxying")
    assert "'lab' lists default/web" in decided


def test_profile_without_provider_keeps_annotation_provider() -> None:
    s = svc(ann={"service.beta.kubernetes.io/aws-load-balancer-proxy-protocol": "*"})
    prof, decided = detect_profile(
        cluster(s, [], profiles=(LoadBalancerProfile(name="all", health_check_path="/x"),)), s)
    assert prof.provider == "aws-clb" and prof.health_check_path == "/x"
    assert "'all'" in decided and "Classic LB" in decided


@pytest.mark.parametrize(("etp", "kind", "path"), [
    ("Local", "healthCheckNodePort", "/healthz"),
    ("Cluster", "kubeProxyHealthz", "/healthz"),
])
def test_generic_checks_like_gce(etp: str, kind: str, path: str) -> None:
    s = svc(etp=etp)
    prof, _ = detect_profile(cluster(s, []), s)
    assert (prof.health_check_port, prof.health_check_path) == (kind, path)
    gce, _ = detect_profile(cluster(s, []), svc(etp=etp, ann={"cloud.google.com/l4-rbs": "x"}))
    assert (gce.health_check_port, gce.health_check_path) == (kind, path)


def test_every_provider_row_is_cited() -> None:
    for row in PROVIDERS.values():
        assert row.sources and all(row.sources)


# ---- plans ----------------------------------------------------------------------------------

def test_not_a_load_balancer() -> None:
    s = svc(typ="NodePort", etp="Cluster")
    assert plan_load_balancer(cluster(s, []), s) is None


def test_etp_local_health_check_takes_nodes_without_endpoints_out() -> None:
    s = svc()
    c = cluster(s, TWO_ON_1)
    plan = plan_load_balancer(c, s)
    assert plan is not None
    assert plan.pool == ("node1", "node2")
    node3 = plan.check_for("node3")
    assert node3 is not None and not node3.in_pool
    assert node3.reason.startswith("taken out of the pool by the health check: 503 on 32000")
    # One truth: the answer is kubeproxy.healthcheck's.
    assert node3.response == service_health(c, "node3", s)
    assert str(node3.check) == "HTTP GET :32000/healthz"
    assert plan.weights == (("node1", 2), ("node2", 1))
    assert any(n.startswith("imbalance:") for n in plan.notes)
    assert plan.mode == "forwarding" and plan.target == "vip" and plan.target_port == 80
    assert plan.vip == VIP
    assert fixes(plan, s) == ()


def test_etp_cluster_kube_proxy_healthz_keeps_every_node() -> None:
    s = svc(etp="Cluster")
    nodes = (Node(name="node1"), Node(name="node2"),
             Node(name="node3", taints=("ToBeDeletedByClusterAutoscaler",)))
    plan = plan_load_balancer(cluster(s, TWO_ON_1, nodes=nodes), s)
    assert plan is not None
    assert plan.pool == ("node1", "node2")
    n3 = plan.check_for("node3")
    assert n3 is not None and n3.response is not None and n3.response.status == 503
    assert "ToBeDeletedByClusterAutoscaler" in n3.reason
    assert any("also nodes without endpoints" in n for n in plan.notes)
    change, effect, costs = fixes(plan, s)[0]
    assert change == "spec.externalTrafficPolicy: Local"
    assert any("imbalance" in c for c in costs)


def test_node_port_tcp_check() -> None:
    s = svc(etp="Cluster", ann={"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"})
    plan = plan_load_balancer(cluster(s, TWO_ON_1), s)
    assert plan is not None
    assert plan.pool == ("node1", "node2", "node3")  # eTP Cluster: every node forwards
    assert all(c.response is None and c.open for c in plan.checks)
    assert plan.target == "nodePort" and plan.target_port == 30080
    empty = plan_load_balancer(cluster(s, []), s)
    assert empty is not None and empty.pool == ()
    assert "refused" in empty.checks[0].reason
    assert any("no node is in the pool" in n for n in empty.notes)


def test_profile_path_slash_on_kube_proxy_healthz_is_404() -> None:
    s = svc(etp="Cluster")
    prof = LoadBalancerProfile(name="p", health_check_port="kubeProxyHealthz",
                               health_check_path="/")
    plan = plan_load_balancer(cluster(s, TWO_ON_1, profiles=(prof,)), s)
    assert plan is not None and plan.pool == ()
    assert "only /healthz and /livez" in plan.checks[0].reason


def test_aws_nlb_ip_targets_pods_and_proxies() -> None:
    s = svc(ann={"service.beta.kubernetes.io/aws-load-balancer-type": "external",
                 "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip"})
    plan = plan_load_balancer(cluster(s, TWO_ON_1), s)
    assert plan is not None
    assert (plan.mode, plan.target, plan.target_port) == ("proxying", "pod", 8080)
    assert plan.pool == ("node1", "node2")
    assert plan.checks[0].check.kind == "targetPort"
    changes = [f[0] for f in fixes(plan, s)]
    assert changes[0].endswith("target-group-attributes: preserve_client_ip.enabled=true")
    assert any("proxy-protocol" in c for c in changes)


def test_clb_proxying_notes_and_fixes() -> None:
    s = svc(etp="Cluster",
            ann={"service.beta.kubernetes.io/aws-load-balancer-proxy-protocol": "*"})
    plan = plan_load_balancer(cluster(s, TWO_ON_1), s)
    assert plan is not None
    assert (plan.mode, plan.proxy_protocol, plan.target) == ("proxying", "v1", "nodePort")
    assert any("terminates TCP" in n for n in plan.notes)
    assert any("PROXY v1 header" in n for n in plan.notes)
    assert any("send no PROXY header (set ipMode: Proxy)" in n for n in plan.notes)
    assert fixes(plan, s)[0][0].startswith("service.beta.kubernetes.io/aws-load-balancer-type")


def test_proxying_source_address_from_profile() -> None:
    s = svc()
    prof = LoadBalancerProfile(name="p", provider="octavia", proxy_protocol="v2",
                               source_address=A("192.168.100.254"))
    plan = plan_load_balancer(cluster(s, TWO_ON_1, profiles=(prof,)), s)
    assert plan is not None and plan.source_address == "192.168.100.254"
    assert plan.to_dict()["profile"]["sourceAddress"] == "192.168.100.254"


def test_metallb_l2_leader_is_metallbs_election() -> None:
    s = svc(etp="Cluster", ann={"metallb.universe.tf/address-pool": "p"})
    c = cluster(s, TWO_ON_1)
    plan = plan_load_balancer(c, s)
    assert plan is not None
    expected = min(("node1", "node2", "node3"),
                   key=lambda n: hashlib.sha256(f"{n}#{VIP}".encode()).digest())
    assert plan.leader == expected and plan.pool == (expected,)
    assert any(f"{expected} alone answers ARP/NDP" in n for n in plan.notes)
    # eTP Local: only nodes with a serving endpoint stand.
    local = svc(ann={"metallb.universe.tf/address-pool": "p"})
    lplan = plan_load_balancer(cluster(local, TWO_ON_1), local)
    assert lplan is not None and lplan.leader in ("node1", "node2")
    assert metallb_l2_leader(cluster(local, []), local, VIP, ["node1"]) is None


def test_metallb_bgp_pool_follows_policy() -> None:
    prof = LoadBalancerProfile(name="bgp", provider="metallb-bgp")
    for etp, pool in (("Local", ("node1", "node2")), ("Cluster", ("node1", "node2", "node3"))):
        s = svc(etp=etp)
        plan = plan_load_balancer(cluster(s, TWO_ON_1, profiles=(prof,)), s)
        assert plan is not None and plan.pool == pool


def test_excluded_node_and_no_nodes() -> None:
    s = svc()
    nodes = (Node(name="node1",
                  labels={"node.kubernetes.io/exclude-from-external-load-balancers": ""}),
             Node(name="node2"))
    plan = plan_load_balancer(cluster(s, TWO_ON_1, nodes=nodes), s)
    assert plan is not None and plan.pool == ("node2",)
    assert plan.checks[0].reason.startswith("excluded")
    bare = plan_load_balancer(cluster(s, TWO_ON_1, nodes=()), s)
    assert bare is not None and bare.pool == () and bare.checks == ()
    assert any("no Nodes in the input" in n for n in bare.notes)


def test_no_vip_note_and_to_dict_shape() -> None:
    s = svc(vip=None)
    plan = plan_load_balancer(cluster(s, TWO_ON_1), s)
    assert plan is not None and plan.vip is None
    assert any("not provisioned" in n for n in plan.notes)
    d = plan.to_dict()
    assert d["provider"] == "generic" and d["checks"][0]["response"]["status"] == 200
    assert set(d) >= {"service", "decided_by", "mode", "pool", "leader", "target_port", "notes"}
