"""The load balancer in the lab (issue #9 item 4): kube-proxy health servers in the nodes,
health checks from the router, the pool built from what they observed (ECMP route, nft DNAT,
or haproxy with PROXY protocol), and ``through-lb`` paths probed end to end.

Unit tests (no root) cover the plan, the pool configuration and the dry run; the ``lab`` tests
build ``--example loadbalancer`` (iptables and nftables), ``metallb-l2`` and
``ingress-proxy-protocol`` for real."""

from __future__ import annotations

import json

import pytest

from sourceip.lab.compare import compare_all, explain_predictions
from sourceip.lab.lb import pool_config
from sourceip.lab.model import LabLoadBalancer, LBCheck
from sourceip.lab.plan import plan_lab, render_script
from sourceip.lab.run import Lab
from sourceip.sources import load_example

from .helpers import lab_skip_reason

needs_lab = pytest.mark.skipif(lab_skip_reason() is not None, reason=str(lab_skip_reason()))
LB_ATTEMPTS = 6


def test_plan_health_checks_and_ecmp_pool_for_the_loadbalancer_example() -> None:
    plan = plan_lab(load_example("loadbalancer"))
    (lb,) = plan.load_balancers
    assert (lb.mode, lb.target, lb.vip) == ("forwarding", "vip", "172.18.255.10")
    assert [(c.node, c.kind, c.port, c.path, c.predicted) for c in lb.checks] == [
        ("node1", "http", 32000, "/healthz", "200"),
        ("node2", "http", 32000, "/healthz", "200"),
        ("node3", "http", 32000, "/healthz", "503")]
    health = [p for p in plan.processes if p.role == "health"]
    assert sorted(p.node for p in health) == ["node1", "node2", "node3"]
    for p in health:
        (path, text), = p.files
        listen = {e["port"]: e["responses"] for e in json.loads(text)["listen"]}
        assert set(listen) == {32000, 10256} and set(p.listen) == {32000, 10256}
        assert listen[32000]["*"]["status"] == (503 if p.node == "node3" else 200)
        assert path.startswith(f"/run/sourceip-lab/{plan.runid}.d/health/")
    ip_lines, nft, haproxy = pool_config(plan.load_balancers, None, workdir=plan.workdir,
                                         router_ns="r")
    assert ip_lines == ["route replace 172.18.255.10/32 nexthop via 10.0.0.11 "
                        "nexthop via 10.0.0.12"]
    assert nft == "" and haproxy is None
    # observed 503 on node2 takes it out
    observed = {"default/web node1": "200", "default/web node2": "503",
                "default/web node3": "503"}
    assert pool_config(plan.load_balancers, observed, workdir=plan.workdir,
                       router_ns="r")[0] == ["route replace 172.18.255.10/32 via 10.0.0.11"]
    rtr = next(s for s in plan.setups if s.ns.endswith("-rtr"))
    assert any(s.key == "net.ipv4.fib_multipath_hash_policy" for s in rtr.sysctls)
    script = render_script(plan)
    assert "-m sourceip.lab.lbcheck" in script and "nexthop via 10.0.0.12" in script
    assert "-m sourceip.lab.health_server --responses" in script


def test_metallb_l2_pool_is_the_leader_alone() -> None:
    plan = plan_lab(load_example("metallb-l2"))
    (lb,) = plan.load_balancers
    assert lb.leader is not None
    assert [c.node for c in lb.pool()] == [lb.leader]
    assert all(c.kind == "none" and c.predicted == "-" for c in lb.checks)


def test_proxying_lb_is_haproxy_on_the_router_with_proxy_v2_from_its_source() -> None:
    plan = plan_lab(load_example("ingress-proxy-protocol"))
    (lb,) = plan.load_balancers
    assert (lb.mode, lb.proxy_protocol, lb.source_address) == ("proxying", "v2", "10.0.0.250")
    rtr = next(s for s in plan.setups if s.ns.endswith("-rtr"))
    assert f"addr add {lb.vip}/32 dev lo" in rtr.ip
    assert "addr add 10.0.0.250/24 dev nodes" in rtr.ip
    _ip, _nft, haproxy = pool_config(plan.load_balancers, None, workdir=plan.workdir,
                                     router_ns=rtr.ns)
    assert haproxy is not None and haproxy.ns == rtr.ns and haproxy.listen == (80,)
    cfg = haproxy.files[0][1]
    assert "mode tcp" in cfg and f"bind {lb.vip}:80" in cfg and "source 10.0.0.250" in cfg
    assert "server node1 10.0.0.11:30180 send-proxy-v2" in cfg


def test_forwarding_to_node_ports_is_an_nft_dnat() -> None:
    checks = tuple(LBCheck(service="d/w", node=n, node_ip=ip, kind="tcp", port=30080, path="",
                           predicted=st, candidate=True, target=f"{ip}:30080")
                   for n, ip, st in (("n1", "10.0.0.11", "open"), ("n2", "10.0.0.12", "open"),
                                     ("n3", "10.0.0.13", "closed")))
    lb = LabLoadBalancer(service="d/w", title="t", vip="172.18.0.1", port=80,
                         mode="forwarding", target="nodePort", target_port=30080,
                         proxy_protocol=None, source_address=None, checks=checks)
    ip_lines, nft, haproxy = pool_config([lb], None, workdir="/x", router_ns="r")
    assert ip_lines == [] and haproxy is None
    assert ("ip daddr 172.18.0.1 tcp dport 80 dnat ip to numgen random mod 2 map "
            "{ 0 : 10.0.0.11 . 30080, 1 : 10.0.0.12 . 30080 }") in nft


# ----------------------------------------------------------------------------- the lab


def _run(example: str, mode: str = "iptables"
         ) -> tuple[list[object], list[dict[str, object]], str]:
    cluster = load_example(example)
    plan = plan_lab(cluster, mode=mode)
    predictions, notes = explain_predictions(cluster, external_ip=plan.external_ip)
    attempts = {p.spec.id: LB_ATTEMPTS if p.spec.via_lb else 3 if p.split else 1
                for p in predictions}
    with Lab(plan) as lab:
        observations = lab.probe([p.spec for p in predictions], attempts=attempts)
        checks = list(lab.health_checks)
    return compare_all(predictions, observations), checks, plan.external_ip


@needs_lab
@pytest.mark.lab
@pytest.mark.parametrize(("example", "mode"), [
    ("loadbalancer", "iptables"), ("loadbalancer", "nftables"),
    ("metallb-l2", "iptables"), ("ingress-proxy-protocol", "iptables"),
    ("lb-proxy", "nftables")])
def test_lb_examples_agree_in_the_lab(clean_host: None, example: str, mode: str) -> None:
    agreements, checks, client = _run(example, mode)
    bad = [f"{a.spec.id}: {a.reason}" for a in agreements if not a.agree]  # type: ignore[attr-defined]
    assert not bad, "\n".join(bad)
    assert checks and all(c["agree"] for c in checks), checks
    through = [a for a in agreements if a.spec.via_lb]  # type: ignore[attr-defined]
    assert through
    for a in through:
        assert len(a.observations) == LB_ATTEMPTS
    if example == "loadbalancer":  # eTP Local behind a forwarding LB: the client survives
        (a,) = [a for a in through if a.spec.proto == "tcp"]  # type: ignore[attr-defined]
        assert {o.seen_source for o in a.observations} == {client}
        assert {c["node"]: c["observed"] for c in checks} == {
            "node1": "200", "node2": "200", "node3": "503"}
    if example == "lb-proxy":  # the pod's peer is a node; the PROXY header names the client
        (a,) = through
        assert all(o.seen_source != client for o in a.observations)
        assert all(isinstance(o.proxy, dict) and o.proxy.get("source") == client
                   for o in a.observations), [o.proxy for o in a.observations]
    if example == "ingress-proxy-protocol":  # PROXY v2 carries the client to nginx
        http = [a for a in through if a.spec.proto == "http"]  # type: ignore[attr-defined]
        assert http
        for a in http:
            for o in a.observations:
                assert o.header("X-Forwarded-For") == client
                assert o.resolved_client == client
